package aliyun

import (
	"encoding/json"

	"github.com/orderworker/orderworker/providers"
)

// Validate checks order/create params; it needs no client (the enqueue CLI
// validates without credentials).
func Validate(params json.RawMessage) error {
	_, err := providers.DecodeParams(paramsOp, params, Fields)
	return err
}
