package deploy

import (
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/internal/settings"
)

// producerShared are the settings every producer of a ledger must have as
// its workers do (the README's configuration table: "Read by producers
// too", "the same on every worker and producer").
var producerShared = []string{
	"ORDERWORKER_QUEUE", "ORDERWORKER_LEDGER_SHARDS", "ORDERWORKER_DATA_KEY",
	"ORDERWORKER_DURABLE_WRITES", "ORDERWORKER_MIN_REPLICAS",
}

// The producers compose runs (the enqueue CLI and the HTTP API) get the
// worker's ledger settings, as the same expression, so that one .env sets
// them all (ORDERWORKER_MIN_REPLICAS=1 on a replicated deployment, as the
// README asks of every worker and producer).
func TestComposeProducersShareTheLedgerSettings(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	w := service(t, c, "worker")
	for _, name := range []string{"enqueue", "api"} {
		p := service(t, c, name)
		for _, k := range producerShared {
			wv, ok := w.Environment[k]
			if !ok {
				t.Errorf("worker: environment does not set %s", k)
				continue
			}
			if pv, ok := p.Environment[k]; !ok || pv != wv {
				t.Errorf("%s: %s = %q (set: %v), want the worker's %q", name, k, pv, ok, wv)
			}
		}
	}
}

// The worker's defaults in compose are the worker's own (the README's
// configuration table), and it drains before compose kills it.
func TestComposeWorkerDefaultsAreTheWorkers(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	w := service(t, c, "worker")
	defaults := map[string]string{}
	for _, v := range settings.Worker() {
		defaults[v.Name] = v.Default
	}
	for k, v := range w.Environment {
		m := interpolation.FindStringSubmatch(v)
		if m == nil || m[0] != v || m[1] != k || m[2] == "" {
			continue // a value of compose's own (REDIS_URL), or a pass-through
		}
		if def, ok := defaults[k]; ok && m[2] != def {
			t.Errorf("worker: %s defaults to %q in compose, but to %q in the worker: make them agree, or say why in a comment and here", k, m[2], def)
		}
	}
	shutdown, err := time.ParseDuration(interpolate(w.Environment["ORDERWORKER_SHUTDOWN_TIMEOUT"]))
	if err != nil {
		t.Fatalf("worker: ORDERWORKER_SHUTDOWN_TIMEOUT: %v", err)
	}
	grace, err := time.ParseDuration(strings.TrimSpace(w.StopGracePeriod))
	if err != nil || grace <= shutdown {
		t.Errorf("worker: stop_grace_period %q (%v) is not longer than ORDERWORKER_SHUTDOWN_TIMEOUT %s: compose would kill a draining worker", w.StopGracePeriod, err, shutdown)
	}
}
