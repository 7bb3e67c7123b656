package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderworker/orderworker/tasks/ledger"
)

// lossEvery is how often a running worker reads the ledger's epochs
// (ledger.Watch): a shard that goes back to an older state is noticed
// when that state is older than the last reading.
var lossEvery = 10 * time.Second

// lossWatch notices that Redis lost the ledger's data while the worker ran
// (restarted empty, or from an older snapshot): it logs each loss and
// counts it in orderworker_ledger_data_losses_total. The orders recorded
// since are looked up before their first create (ledger.BeginArgs.LookFirst,
// set by the handler), whichever worker runs them.
type lossWatch struct {
	ledger *ledger.Ledger
	log    *slog.Logger
	losses *prometheus.CounterVec
}

func newLossWatch(l *ledger.Ledger, reg prometheus.Registerer, log *slog.Logger) *lossWatch {
	w := &lossWatch{ledger: l, log: log, losses: prometheus.NewCounterVec(prometheus.CounterOpts{
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

// check watches once; a failed reading is logged and tried again at the
// next tick (it proves nothing either way).
func (w *lossWatch) check(ctx context.Context) {
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

// run checks every lossEvery until ctx ends.
func (w *lossWatch) run(ctx context.Context) { every(ctx, lossEvery, w.check) }
