package tasks

import (
	"fmt"
	"strconv"
	"strings"

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

// NewLedger returns a Ledger on rdb with default options (one shard).
func NewLedger(rdb redis.UniversalClient) *Ledger { return ledger.New(rdb, nil) }

// NewShardedLedger returns a Ledger on rdb of shards shards (see
// ledger.ShardTag), with default options otherwise.
func NewShardedLedger(rdb redis.UniversalClient, shards int) *Ledger {
	return ledger.New(rdb, &ledger.Options{Shards: shards})
}

// ParseShards reads ORDERWORKER_LEDGER_SHARDS: empty for 1, else a number
// from 1 to ledger.MaxShards.
func ParseShards(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > ledger.MaxShards {
		return 0, fmt.Errorf("ORDERWORKER_LEDGER_SHARDS=%q: want a number from 1 to %d", s, ledger.MaxShards)
	}
	return n, nil
}
