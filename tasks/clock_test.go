package tasks_test

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// The ledger stamps its index scores on Redis's clock, and the
// LedgerCollector measures ages on it too: a worker whose clock is 2 h
// ahead of Redis's does not report an order accepted a moment ago as 2 h
// old (firing the queued-too-long alert), nor one 2 h behind negative ages
// (silencing it).
func TestCollectorAgesOnRedisClock(t *testing.T) {
	t.Parallel()
	for _, off := range []time.Duration{-2 * time.Hour, 2 * time.Hour} {
		m := miniredis.RunT(t)
		m.SetTime(time.Now().Add(off)) // Redis's clock, 2 h off this process's
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
		defer rdb.Close()
		l := ledger.New(rdb, nil)
		ctx := context.Background()
		if _, err := l.Claim(ctx, ledger.Ref{Provider: "tencent", OrderNo: "AGE-1"}, []byte(`{}`), "h"); err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(tasks.NewLedgerCollector(l, []string{"tencent"}))
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		seen := false
		for _, mf := range mfs {
			if mf.GetName() != "orderworker_order_oldest_age_seconds" {
				continue
			}
			for _, mm := range mf.GetMetric() {
				for _, lp := range mm.GetLabel() {
					if lp.GetName() == "state" && lp.GetValue() == "queued" {
						seen = true
						if age := mm.GetGauge().GetValue(); age < -1 || age > 60 {
							t.Errorf("Redis %v off: oldest queued age of an order accepted just now = %.0f s; want about 0", off, age)
						}
					}
				}
			}
		}
		if !seen {
			t.Errorf("Redis %v off: no orderworker_order_oldest_age_seconds{state=queued}", off)
		}
	}
}
