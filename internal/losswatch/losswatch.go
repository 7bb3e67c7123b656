// Package losswatch notices that Redis lost the ledger's data while a
// process runs on it (ledger.Watch): the worker, and enqueue serve, which
// may be the only process running while Redis restarts empty between
// deploys of the workers. A loss a process notices is recorded in the
// ledger's epoch, so that every worker, started before or after, looks
// the orders recorded since up at the provider before their first create.
package losswatch

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderworker/orderworker/tasks/ledger"
)

// Every is how often a running process reads the ledger's epochs: a shard
// that goes back to an older state is noticed when that state is older
// than the last reading.
var Every = 10 * time.Second

// Watch logs each loss it notices and counts it in
// orderworker_ledger_data_losses_total (when given a registerer).
type Watch struct {
	ledger *ledger.Ledger
	log    *slog.Logger
	losses *prometheus.CounterVec
}

// New returns a Watch of l; reg nil registers no metric.
func New(l *ledger.Ledger, reg prometheus.Registerer, log *slog.Logger) *Watch {
	w := &Watch{ledger: l, log: log, losses: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orderworker_ledger_data_losses_total",
		Help: "Losses of the ledger's data this worker noticed, by kind: wiped (Redis came back without the ledger's keys) or rolled_back (it came back at an older state). Every order not final is looked at once after one (looked up at the provider before a create; a lookup or pay waits the listing lag from when it was found); orders accepted before it may be lost (their producers are not told).",
	}, []string{"kind"})}
	for _, k := range []string{"wiped", "rolled_back"} {
		w.losses.WithLabelValues(k) // at zero from the start, so the first shows in increase()
	}
	if reg != nil {
		reg.MustRegister(w.losses)
	}
	return w
}

// Check watches once; a failed reading is logged and tried again at the
// next tick (it proves nothing either way).
func (w *Watch) Check(ctx context.Context) {
	losses, err := w.ledger.Watch(ctx) // 5 s a shard at most
	for _, l := range losses {
		kind, what := "rolled_back", "went back to an older state (restarted from an older snapshot or AOF, or a failover onto a replica behind the writes it acknowledged)"
		if l.Wiped {
			kind, what = "wiped", "came back without the ledger's keys (restarted without persistence, or flushed)"
		}
		w.losses.WithLabelValues(kind).Inc()
		w.log.Error("Redis lost the ledger's data: it "+what+". Orders accepted before the loss may be lost (their producers may send them again); every order not final is looked at once for it (looked up at the provider before a create; a lookup or a pay waits the listing lag from now)",
			"shard", l.Shard, "since", l.Since.UTC().Format(time.RFC3339Nano))
	}
	if err != nil && ctx.Err() == nil {
		w.log.Warn("cannot read the ledger's epoch to notice a loss of Redis's data", "error", err)
	}
}

// Run checks every d until ctx ends.
func (w *Watch) Run(ctx context.Context, d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.Check(ctx)
		}
	}
}
