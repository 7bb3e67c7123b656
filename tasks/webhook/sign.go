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
// id.timestamp.body. With several secrets (a rotation) it signs with each
// and sends the signatures space-separated, as the spec allows: a receiver
// that knows any one of the secrets accepts the message. It is safe for
// concurrent use and never prints its keys.
type Signer struct {
	whs []*standardwebhooks.Webhook
}

// NewSigner reads one secret "whsec_" + base64 (at least MinSecretBytes
// once decoded), or several separated by whitespace (to rotate: the new
// one beside the old until every receiver has the new one). Errors never
// repeat a secret.
func NewSigner(secrets string) (*Signer, error) {
	fields := strings.Fields(secrets)
	if len(fields) == 0 {
		return nil, errors.New("want " + SecretPrefix + " followed by the key in base64")
	}
	s := &Signer{}
	for i, secret := range fields {
		wh, err := newWebhook(secret)
		if err != nil {
			if len(fields) > 1 {
				err = fmt.Errorf("secret %d of %d: %w", i+1, len(fields), err)
			}
			return nil, err
		}
		s.whs = append(s.whs, wh)
	}
	return s, nil
}

func newWebhook(secret string) (*standardwebhooks.Webhook, error) {
	rest, ok := strings.CutPrefix(secret, SecretPrefix)
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
	return wh, nil
}

// Sign returns the webhook-signature value for a message: one "v1,…"
// signature per secret, in the secrets' order, space-separated.
func (s *Signer) Sign(id string, ts time.Time, body []byte) string {
	sigs := make([]string, len(s.whs))
	for i, wh := range s.whs {
		sigs[i], _ = wh.Sign(id, ts, body) // the library's Sign cannot fail
	}
	return strings.Join(sigs, " ")
}

// Header sets the three Standard Webhooks headers of a message sent at ts.
func (s *Signer) Header(h http.Header, id string, ts time.Time, body []byte) {
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, s.Sign(id, ts, body))
}

// Verify checks a received message's headers against body, as a receiver
// does: a v1 signature that matches one of the secrets, and a timestamp
// within five minutes.
func (s *Signer) Verify(body []byte, h http.Header) error {
	var err error
	for _, wh := range s.whs {
		if err = wh.Verify(body, h); err == nil {
			return nil
		}
	}
	return err
}

func (s *Signer) String() string { return "webhook.Signer{***}" }
