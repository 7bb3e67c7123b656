package main

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// clockSteps logs each step forward of a Redis master's clock this worker's
// Begins found (ledger.Options.OnClockStep) and counts it in
// orderworker_redis_clock_steps_total. The ledger has recorded it: every
// worker judges leases and listing lags that much longer while it holds.
type clockSteps struct {
	log   *slog.Logger
	steps prometheus.Counter
}

func newClockSteps(reg prometheus.Registerer, log *slog.Logger) *clockSteps {
	c := &clockSteps{log: log, steps: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "orderworker_redis_clock_steps_total",
		Help: "Steps forward of a Redis master's clock this worker found (a failover to a master whose clock is ahead, or a master's clock set forward): leases and listing lags are judged that much longer for a while, so that no time stamped before the step is taken as older than it is. Keep the Redis servers' clocks synchronized (NTP).",
	})}
	if reg != nil {
		reg.MustRegister(c.steps)
	}
	return c
}

// found is ledger.Options.OnClockStep.
func (c *clockSteps) found(shard int, step, hold time.Duration) {
	c.steps.Inc()
	c.log.Error("Redis's clock stepped forward (a failover to a master whose clock is ahead, or the master's clock set forward): times recorded before it would look older than they are, so leases and listing lags are judged longer by the step for a while; keep the Redis servers' clocks synchronized (NTP)",
		"shard", shard, "step", step.Round(time.Millisecond).String(), "hold", hold.Round(time.Millisecond).String())
}
