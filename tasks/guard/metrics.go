package guard

import "github.com/prometheus/client_golang/prometheus"

// metrics are the guard's Prometheus metrics. A nil *metrics records
// nothing.
type metrics struct {
	waits *prometheus.CounterVec
	cuts  *prometheus.CounterVec
	rate  *prometheus.GaugeVec
	state *prometheus.GaugeVec
}

func newMetrics(g *Guard, reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		waits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderworker_rate_limit_waits_total",
			Help: "Provider HTTP requests the shared rate limiter held back (made to wait, or refused when their place was further off than they may wait), by provider.",
		}, []string{"provider"}),
		cuts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderworker_throttle_cuts_total",
			Help: "Times a provider's throttling cut this worker's rate of requests to it (to 0.7 of the rate in force, the first time of what it sent in the last second: at once when half or more of the last second's requests were refused, else after a second at the pace showed a tenth or more throttled; a cut after which the share refused did not fall is undone, not uncounted), by provider. Many: the provider's quota is lower than the workers' pace; ORDERWORKER_RATE_LIMITS set under it keeps the workers there without a throttle.",
		}, []string{"provider"}),
		rate: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderworker_throttle_rate",
			Help: "The rate of requests a second this worker allows itself to a provider since the provider throttled them (raised while no throttle comes, dropped 5 minutes after the last cut); 0: none.",
		}, []string{"provider"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderworker_breaker_state",
			Help: "This worker's circuit breaker state per provider: 0 closed, 1 half-open, 2 open.",
		}, []string{"provider"}),
	}
	reg.MustRegister(m.waits, m.cuts, &stateCollector{g: g, gauge: m.state, rate: m.rate})
	return m
}

// initWaits creates the provider's wait counter at zero, so that its first
// wait shows in rate() and increase().
func (m *metrics) initWaits(provider string) {
	if m != nil {
		m.waits.WithLabelValues(provider)
		m.cuts.WithLabelValues(provider)
	}
}

func (m *metrics) cut(provider string) {
	if m != nil {
		m.cuts.WithLabelValues(provider).Inc()
	}
}

func (m *metrics) waited(provider string) {
	if m != nil {
		m.waits.WithLabelValues(provider).Inc()
	}
}

func (m *metrics) setState(provider string, s State) {
	if m != nil {
		m.state.WithLabelValues(provider).Set(float64(s))
	}
}

// stateCollector brings the breakers up to date before each scrape, so an
// open breaker whose cool-down ended shows half-open even when no order
// has asked since, and reads each provider's rate (see adaptive).
type stateCollector struct {
	g     *Guard
	gauge *prometheus.GaugeVec
	rate  *prometheus.GaugeVec
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	c.gauge.Describe(ch)
	c.rate.Describe(ch)
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.g.now()
	for _, b := range c.g.snapshot() {
		b.state(now)
		c.rate.WithLabelValues(b.provider).Set(b.rate.current(now))
	}
	c.gauge.Collect(ch)
	c.rate.Collect(ch)
}
