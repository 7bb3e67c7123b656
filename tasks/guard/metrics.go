package guard

import "github.com/prometheus/client_golang/prometheus"

// metrics are the guard's Prometheus metrics. A nil *metrics records
// nothing.
type metrics struct {
	waits *prometheus.CounterVec
	holds *prometheus.CounterVec
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
		holds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderworker_throttle_holds_total",
			Help: "Holds this worker put on its steps to a provider because the provider throttled its calls (each at least 0.5 s or the provider's Retry-After, doubled for each hold in a row, at most 30 s), by provider. Many: the provider's quota is lower than the workers' pace; set ORDERWORKER_RATE_LIMITS under it.",
		}, []string{"provider"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderworker_breaker_state",
			Help: "This worker's circuit breaker state per provider: 0 closed, 1 half-open, 2 open.",
		}, []string{"provider"}),
	}
	reg.MustRegister(m.waits, m.holds, &stateCollector{g: g, gauge: m.state})
	return m
}

// initWaits creates the provider's wait counter at zero, so that its first
// wait shows in rate() and increase().
func (m *metrics) initWaits(provider string) {
	if m != nil {
		m.waits.WithLabelValues(provider)
		m.holds.WithLabelValues(provider)
	}
}

func (m *metrics) held(provider string) {
	if m != nil {
		m.holds.WithLabelValues(provider).Inc()
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
// has asked since.
type stateCollector struct {
	g     *Guard
	gauge *prometheus.GaugeVec
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { c.gauge.Describe(ch) }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.g.now()
	for _, b := range c.g.snapshot() {
		b.state(now)
	}
	c.gauge.Collect(ch)
}
