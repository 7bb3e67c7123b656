package aliyun

import "encoding/json"

// Validate checks order/create params; it needs no client (the enqueue CLI
// validates without credentials).
func Validate(params json.RawMessage) error {
	_, err := Parse(params)
	return err
}
