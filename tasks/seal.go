package tasks

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// sealedPrefix starts a sealed params value.
const sealedPrefix = "sealed:v1:"

// Sealer encrypts order params at rest (AES-256-GCM), so personal data in
// them never sits in Redis in clear: not in the ledger, not in the task
// payload the dashboard shows. Producers and workers share its key
// (ORDERWORKER_DATA_KEY). A nil *Sealer seals nothing.
type Sealer struct {
	aead   cipher.AEAD
	mac    []byte
	rivals []byte
	id     string
}

// NewSealer returns a Sealer for a base64-encoded 32-byte key.
func NewSealer(key string) (*Sealer, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(key))
	if err != nil || len(raw) != 32 {
		return nil, errors.New("data key: want 32 random bytes, base64-encoded (openssl rand -base64 32)")
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	// A separate key for hashing params, derived from the data key.
	m := hmac.New(sha256.New, raw)
	m.Write([]byte("orderworker params hash"))
	idm := hmac.New(sha256.New, raw)
	idm.Write([]byte("orderworker data key id"))
	rm := hmac.New(sha256.New, raw)
	rm.Write([]byte("orderworker rivals key"))
	return &Sealer{aead: aead, mac: m.Sum(nil), rivals: rm.Sum(nil), id: hex.EncodeToString(idm.Sum(nil))[:16]}, nil
}

// RivalSecret is the key of the hash that names an order's rivals set
// (ledger.Options.RivalSecret), derived from the data key so that every
// worker sharing it names the same sets; nil for a nil Sealer.
func (s *Sealer) RivalSecret() []byte {
	if s == nil {
		return nil
	}
	return s.rivals
}

// KeyID is a public id of the data key (it reveals nothing about the key),
// recorded in the ledger so that a process with another key is caught at
// start; "" for a nil Sealer.
func (s *Sealer) KeyID() string {
	if s == nil {
		return ""
	}
	return s.id
}

// Seal returns params encrypted, as a JSON string value.
func (s *Sealer) Seal(params json.RawMessage) (json.RawMessage, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	ct := s.aead.Seal(nonce, nonce, params, nil)
	return json.Marshal(sealedPrefix + base64.StdEncoding.EncodeToString(ct))
}

// IsSealed reports whether params is a sealed value.
func IsSealed(params json.RawMessage) bool {
	return strings.HasPrefix(string(params), `"`+sealedPrefix)
}

// ErrSealed is returned when sealed params meet a worker without the key.
var ErrSealed = errors.New("order params are sealed: set ORDERWORKER_DATA_KEY to the producers' data key")

// Open returns params in clear: sealed ones decrypted, others as they are.
func (s *Sealer) Open(params json.RawMessage) (json.RawMessage, error) {
	if !IsSealed(params) {
		return params, nil
	}
	if s == nil {
		return nil, ErrSealed
	}
	var v string
	if err := json.Unmarshal(params, &v); err != nil {
		return nil, fmt.Errorf("sealed params: %w", err)
	}
	ct, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(v, sealedPrefix))
	if err != nil || len(ct) < s.aead.NonceSize() {
		return nil, errors.New("sealed params: malformed")
	}
	plain, err := s.aead.Open(nil, ct[:s.aead.NonceSize()], ct[s.aead.NonceSize():], nil)
	if err != nil {
		return nil, errors.New("sealed params: cannot decrypt with this data key")
	}
	return plain, nil
}

// hash is the params hash the ledger keeps for dedupe: keyed (HMAC) when
// sealing, so the hash of params holding personal data cannot be
// brute-forced from Redis.
//
// It hashes the validated, normalized params (parsed, see
// providers.Params.Canonical) when the provider decodes them, so that
// orders whose provider requests are identical hash alike ("2.0" and "2",
// an optional field sent as null or "" and one left out); else the params
// in canonical JSON.
// hashAsRecorded hashes params as rec's were hashed: keyed (HMAC) when its
// params are sealed, plain when a producer without a data key recorded
// them, whatever key s holds (a sealed record needs s's key, which the
// ledger's data key check makes the one it was sealed with).
func (s *Sealer) hashAsRecorded(rec *ledger.Record, params json.RawMessage, parsed providers.Params) (string, error) {
	if !IsSealed(rec.Params) {
		s = nil
	}
	return s.hash(params, parsed)
}

func (s *Sealer) hash(params json.RawMessage, parsed providers.Params) (string, error) {
	var canon []byte
	if parsed != nil {
		canon = parsed.Canonical()
	} else {
		var err error
		if canon, err = canonicalJSON(params); err != nil {
			return "", err
		}
	}
	if s == nil {
		sum := sha256.Sum256(canon)
		return hex.EncodeToString(sum[:]), nil
	}
	m := hmac.New(sha256.New, s.mac)
	m.Write(canon)
	return hex.EncodeToString(m.Sum(nil)), nil
}
