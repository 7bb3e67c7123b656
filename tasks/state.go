package tasks

import (
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks/ledger"
)

// The ledger's types, named here for producers and tools that only import
// tasks.
type (
	State      = ledger.State
	Record     = ledger.Record
	Attempt    = ledger.Attempt
	OrderRef   = ledger.Ref
	Ledger     = ledger.Ledger
	StateStats = ledger.StateStats
)

const (
	StateQueued     = ledger.StateQueued
	StateSubmitting = ledger.StateSubmitting
	StateUnknown    = ledger.StateUnknown
	StatePending    = ledger.StatePending
	StatePaid       = ledger.StatePaid
	StateErrored    = ledger.StateErrored
)

// States lists every state, in lifecycle order.
var States = ledger.States

// NewLedger returns a Ledger on rdb with default options.
func NewLedger(rdb redis.UniversalClient) *Ledger { return ledger.New(rdb, nil) }
