// Package providers defines the contract between orderworker and the order
// APIs it submits to: the Provider interface, the Order and Result types, one
// typed Error with a small set of codes, and the single place where a code is
// judged retryable.
//
// Each provider lives in its own subpackage (tencent, aliyun, unicloud) and
// depends only on this package. The worker's handler (package tasks) depends
// only on this package too; cmd/worker wires concrete providers in.
//
// Every provider is held to the same behaviour by the conformance suite in
// package providertest, run against the provider's sandbox: a faithful fake
// of its HTTP API that verifies signatures and injects faults.
package providers
