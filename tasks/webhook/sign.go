package webhook

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// SecretPrefix starts a Standard Webhooks secret: "whsec_" and the key in
// base64.
const SecretPrefix = "whsec_"

// MinSecretBytes is the shortest key accepted: the spec's 24 bytes.
const MinSecretBytes = 24

// The Standard Webhooks headers.
const (
	HeaderID        = standardwebhooks.HeaderWebhookID
	HeaderTimestamp = standardwebhooks.HeaderWebhookTimestamp
	HeaderSignature = standardwebhooks.HeaderWebhookSignature
)

// Signer signs messages per the Standard Webhooks spec: "v1," and the
// base64 HMAC-SHA256, keyed with the secret's decoded bytes, of
// id.timestamp.body. It is safe for concurrent use and never prints its
// key.
type Signer struct {
	wh *standardwebhooks.Webhook
}

// NewSigner reads a secret "whsec_" + base64 (at least MinSecretBytes
// once decoded). Errors never repeat the secret.
func NewSigner(secret string) (*Signer, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(secret), SecretPrefix)
	if !ok {
		return nil, errors.New("want " + SecretPrefix + " followed by the key in base64")
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, errors.New("the key after " + SecretPrefix + " is not valid base64")
	}
	if len(key) < MinSecretBytes {
		return nil, fmt.Errorf("the key is %d bytes; want at least %d (openssl rand -base64 32)", len(key), MinSecretBytes)
	}
	wh, err := standardwebhooks.NewWebhookRaw(key)
	if err != nil {
		return nil, errors.New("unusable webhook secret")
	}
	return &Signer{wh: wh}, nil
}

// Sign returns the webhook-signature value for a message.
func (s *Signer) Sign(id string, ts time.Time, body []byte) string {
	sig, _ := s.wh.Sign(id, ts, body) // the library's Sign cannot fail
	return sig
}

// Header sets the three Standard Webhooks headers of a message sent at ts.
func (s *Signer) Header(h http.Header, id string, ts time.Time, body []byte) {
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, s.Sign(id, ts, body))
}

// Verify checks a received message's headers against body, as a receiver
// does: a matching v1 signature and a timestamp within five minutes.
func (s *Signer) Verify(body []byte, h http.Header) error {
	return s.wh.Verify(body, h)
}

func (s *Signer) String() string { return "webhook.Signer{***}" }
