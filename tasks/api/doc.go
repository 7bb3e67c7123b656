// Package api is orderworker's HTTP API for producers in any language:
// POST /v1/orders and /v1/orders/batch accept orders with the enqueue
// CLI's answers, GET /v1/orders/{provider}/{order_no} reads one (and
// long-polls with ?wait= until it is paid or errored), GET /v1/events
// pulls outcome events, and GET /v1/openapi.json is the OpenAPI 3.1
// document that describes it all (openapi.json in this directory).
//
// It is plain net/http: Go 1.22 ServeMux patterns route it, answers other
// than order results are RFC 9457 problem details. Both enqueue serve and
// worker -dev serve a Handler with Serve.
package api
