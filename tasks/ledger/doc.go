// Package ledger is the order ledger in Redis: one record per (provider,
// order_no), its attempt history, the per-order lease, and the indexes
// (orders by state, provider order ids by owner). It owns the Redis layout:
// no other package names a ledger key or a record field. Callers read typed
// Records and change them only through the transitions built by this
// package's named constructors (SetPaid, SetPending, SetUnknown, …), applied
// atomically by Settle.
//
// The life of one step of an order, in two round trips:
//
//	b, err := l.Begin(ctx, ref, ledger.BeginArgs{Token: token, ...})
//	// b.Record is the order as it stands; b.Marked says the record now
//	// shows a create in flight (attempt b.Record.Inflight), written before
//	// any request leaves.
//	// ... call the provider ...
//	err = l.Settle(ctx, ref, token, ledger.SetPaid(id).WithAttempt(a))
//
// Begin reads the record, refuses a finished order, takes the order's lease
// (so a second run of the same task waits) and, when the next call creates
// the order, marks it in flight. Settle checks the lease is still ours,
// writes the outcome, the history entry and the indexes, and releases the
// lease. A client retry of either after a lost reply finds its own work
// done and reports success.
//
// An order is claimed (ClaimQueue, ClaimMany with ClaimArgs.Task) by one
// script that creates its record and queues its asynq task, written in
// asynq's own layout (asynqtask.go): the two are written together or not
// at all (a task already there under its id is left as it is). Where
// QueuesTasks is false (Redis Cluster, or a Redis that refused a script
// across hash slots) the claim and asynq's enqueue are separate writes
// (Claim, then asynq's client).
//
// Begin and Settle scripts that goroutines run at the same moment share a
// round trip: one caller sends them as one pipeline while the others wait
// (group commit, see batcher); each script still runs atomically on its
// own.
//
// The ledger spreads orders over Options.Shards shards (default 1), each
// with its own hash tag, state indexes and events stream (see shard.go):
// every script touches the keys of one shard (but the claim that queues
// its task, which is not used there), so they run on Redis Cluster,
// and with one shard per master the ledger uses every master.
package ledger
