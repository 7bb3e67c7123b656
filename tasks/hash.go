package tasks

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strings"
)

// ParamsHash is the hash that decides whether two orders with one number
// are the same order: SHA-256 of the params in canonical JSON (keys sorted,
// numbers as written).
func ParamsHash(params json.RawMessage) (string, error) {
	canon, err := canonicalJSON(params)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:]), nil
}

// canonicalJSON is raw, one JSON value, in canonical form; an error for
// anything else (trailing data included: two documents are not one
// order's params).
func canonicalJSON(raw json.RawMessage) ([]byte, error) {
	var v any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("params: data after the first JSON value")
	}
	return json.Marshal(v) // map keys come out sorted
}
