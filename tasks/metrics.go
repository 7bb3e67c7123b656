package tasks

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// Metrics are the worker's own Prometheus metrics (prefix orderworker_). A
// nil *Metrics records nothing.
type Metrics struct {
	outcomes       *prometheus.CounterVec
	requests       *prometheus.HistogramVec
	orderAttempts  *prometheus.HistogramVec
	retries        *prometheus.CounterVec
	dedupeHits     *prometheus.CounterVec
	outcomeLatency *prometheus.HistogramVec
	configWaits    *prometheus.CounterVec
	stopped        *prometheus.CounterVec
	lateCalls      *prometheus.CounterVec
	listedLate     *prometheus.CounterVec
	createdAgain   *prometheus.CounterVec
	deadline       *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered, useful in tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderworker_orders_total",
			Help: "Orders that reached an outcome (paid, pending, errored), by provider.",
		}, []string{"provider", "outcome"}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orderworker_provider_request_duration_seconds",
			Help:    "Duration of provider calls, by provider, call (prepare, submit, lookup, poll, pay) and result (ok or error code).",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"provider", "call", "result"}),
		orderAttempts: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orderworker_order_attempts",
			Help:    "Provider calls an order took, observed when it reaches paid or errored.",
			Buckets: []float64{1, 2, 3, 5, 8, 13, 21},
		}, []string{"provider"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderworker_retries_total",
			Help: "Order attempts that will be retried, by provider and reason (error code).",
		}, []string{"provider", "reason"}),
		dedupeHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderworker_dedupe_hits_total",
			Help: "Orders stopped by deduplication: duplicate (same order again), conflict (same number, other params), terminal (task for a finished order).",
		}, []string{"provider", "kind"}),
		outcomeLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orderworker_enqueue_to_outcome_seconds",
			Help:    "Time from enqueue to an order's outcome, by provider and outcome.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2.5, 12),
		}, []string{"provider", "outcome"}),
		configWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderworker_config_waits_total",
			Help: "Order runs held back, unchanged, by a configuration problem, by provider and kind.",
		}, []string{"provider", "kind"}),
		stopped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderworker_tasks_stopped_total",
			Help: "Order tasks this worker ended for good (returned to asynq not to be retried, which archives them), by queue. asynq's archive is trimmed (10,000 tasks, 90 days), so its size stops showing new ones; this counter does not.",
		}, []string{"queue"}),
		lateCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderworker_late_provider_calls_total",
			Help: "Creates and pays (call) that lost the order's lease while under way and found it taken by another run when they ended (the process stalled mid-call, a frozen VM or a paused container, a failover lost the lease, or Redis lost the order's record and another run recorded it again): the request may have left after another run had created or paid the order. Check the provider for the order twice.",
		}, []string{"provider", "call"}),
		listedLate: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderworker_orders_listed_late_total",
			Help: "Orders a lookup found by their number or id after an earlier lookup, half the listing lag or more after the order's last create (ORDERWORKER_LISTING_LAG; for UniCloud with UNICLOUD_CREATE_OVERRUN), had not found them: the provider's listing showed them close to the lag, past which a not-found is believed and the order created again. Raise the lag well above how late the provider lists orders.",
		}, []string{"provider"}),
		createdAgain: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderworker_orders_created_again_total",
			Help: "Orders about to be created again because a lookup did not find them a listing lag or more after a create of theirs that may have been received (an answer of unknown effect, a worker killed mid-create, a throttle no document places before the order is made). With ORDERWORKER_LISTING_LAG well above how late the provider lists orders, each is an order whose first create made nothing; with a lag shorter than that, each is an order made twice. Compare a few with the provider's console (the worker logs each: \"order to be created again\").",
		}, []string{"provider"}),
		deadline: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderworker_order_deadline_seconds",
			Help: "The deadline this worker gives each provider's orders (ORDERWORKER_ORDER_DEADLINE, ORDERWORKER_ORDER_DEADLINES): an order not submitted this long after enqueue, or after an operator re-drove it, is errored, and one whose create may have been received is left unknown for a person. No order stays queued or submitting much past it while its task runs.",
		}, []string{"provider"}),
	}
	if reg != nil {
		reg.MustRegister(m.outcomes, m.requests, m.orderAttempts, m.retries, m.dedupeHits, m.outcomeLatency, m.configWaits, m.stopped, m.lateCalls, m.listedLate, m.createdAgain, m.deadline)
	}
	return m
}

// InitQueues creates the stopped-task counter at zero for the named
// queues (see Init).
func (m *Metrics) InitQueues(queues []string) {
	if m == nil {
		return
	}
	for _, q := range queues {
		m.stopped.WithLabelValues(q)
	}
}

func (m *Metrics) taskStopped(queue string) {
	if m != nil {
		m.stopped.WithLabelValues(queue).Inc()
	}
}

// Init creates the labelled counters at zero for the named providers, so
// that their first event shows in rate() and increase(): a series born at 1
// hides it.
func (m *Metrics) Init(providerNames []string) {
	if m == nil {
		return
	}
	for _, p := range providerNames {
		for _, s := range []State{StatePaid, StatePending, StateErrored} {
			m.outcomes.WithLabelValues(p, string(s))
		}
		for _, k := range []string{"duplicate", "conflict", "terminal"} {
			m.dedupeHits.WithLabelValues(p, k)
		}
		for _, c := range []string{"submit", "pay"} {
			m.lateCalls.WithLabelValues(p, c)
		}
		m.listedLate.WithLabelValues(p)
		m.createdAgain.WithLabelValues(p)
		for c := providers.Unknown; c <= providers.NotFound; c++ {
			m.retries.WithLabelValues(p, c.String())
		}
		for _, k := range problemKinds {
			m.configWaits.WithLabelValues(p, k)
		}
	}
}

// deadlines sets the deadline gauge of each provider in set.
func (m *Metrics) deadlines(providerNames []string, deadline func(string) time.Duration) {
	if m == nil {
		return
	}
	for _, p := range providerNames {
		m.deadline.WithLabelValues(p).Set(deadline(p).Seconds())
	}
}

func (m *Metrics) orderCreatedAgain(provider string) {
	if m != nil {
		m.createdAgain.WithLabelValues(provider).Inc()
	}
}

func (m *Metrics) orderListedLate(provider string) {
	if m != nil {
		m.listedLate.WithLabelValues(provider).Inc()
	}
}

func (m *Metrics) lateCall(provider, call string) {
	if m != nil {
		m.lateCalls.WithLabelValues(provider, call).Inc()
	}
}

func (m *Metrics) dedupe(provider, kind string) {
	if m != nil {
		m.dedupeHits.WithLabelValues(provider, kind).Inc()
	}
}

func (m *Metrics) configWait(provider, kind string) {
	if m != nil {
		m.configWaits.WithLabelValues(provider, kind).Inc()
	}
}

func (m *Metrics) request(provider, call string, err error, d time.Duration) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = providers.CodeOf(err).String()
	}
	m.requests.WithLabelValues(provider, call, result).Observe(d.Seconds())
}

func (m *Metrics) retry(provider string, code providers.Code) {
	if m != nil {
		m.retries.WithLabelValues(provider, code.String()).Inc()
	}
}

// outcome counts an order reaching s after attempts provider calls.
func (m *Metrics) outcome(r *Record, s State, attempts int, now time.Time) {
	if m == nil {
		return
	}
	m.outcomes.WithLabelValues(r.Provider, string(s)).Inc()
	m.outcomeLatency.WithLabelValues(r.Provider, string(s)).Observe(now.Sub(r.CreatedAt).Seconds())
	if s.Terminal() {
		m.orderAttempts.WithLabelValues(r.Provider).Observe(float64(attempts))
	}
}

// pendingRead is how many of the oldest pending orders of each provider
// the collector reads to tell what they wait for (Ledger.PendingStats),
// split over the ledger's shards (at least 10 of each).
const pendingRead = 100

// LedgerCollector exports orders per state, the age of the oldest
// non-terminal order per state and the enqueues deduplicated by the
// ledger, read from it at scrape time, plus orderworker_redis_up. Every
// replica reports the same global numbers.
type LedgerCollector struct {
	ledger    *ledger.Ledger
	providers []string
	orders    *prometheus.Desc
	oldest    *prometheus.Desc
	pending   *prometheus.Desc
	pendAge   *prometheus.Desc
	dedupe    *prometheus.Desc
	redisUp   *prometheus.Desc
}

// NewLedgerCollector returns a collector for the named providers' orders.
func NewLedgerCollector(l *ledger.Ledger, providerNames []string) *LedgerCollector {
	return &LedgerCollector{
		ledger:    l,
		providers: providerNames,
		orders: prometheus.NewDesc("orderworker_orders",
			"Orders in the ledger by provider and state.", []string{"provider", "state"}, nil),
		oldest: prometheus.NewDesc("orderworker_order_oldest_age_seconds",
			"Age of the oldest order in each non-terminal state (time since it entered the state).", []string{"provider", "state"}, nil),
		pending: prometheus.NewDesc("orderworker_pending_orders",
			"Pending orders by provider and what they wait for: plain (the provider: polled until paid or the pending window ends), matched (found by matching the provider's orders; held for a person where the worker would pay it but may not), pay_sent (the worker paid it and the pay may have gone through). Counted among the 100 oldest pending orders of each provider (split over the ledger's shards, at least 10 of each); not exported when they could not be read.", []string{"provider", "kind"}, nil),
		pendAge: prometheus.NewDesc("orderworker_pending_orders_oldest_age_seconds",
			"Age of the oldest pending order of each kind (see orderworker_pending_orders), time since it became pending; beyond those read, a kind not among them counts as old as the last one read, and when they could not be read every kind counts as old as the oldest pending order.", []string{"provider", "kind"}, nil),
		dedupe: prometheus.NewDesc("orderworker_enqueue_dedupe_total",
			"Enqueues of an order number already in the ledger, by provider and kind: duplicate (same params: the existing order answered, nothing queued) or conflict (other params: refused). Counted in Redis by every producer's claim; global.", []string{"provider", "kind"}, nil),
		redisUp: prometheus.NewDesc("orderworker_redis_up",
			"1 when the worker could read the ledger from Redis at scrape time.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *LedgerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.orders
	ch <- c.oldest
	ch <- c.pending
	ch <- c.pendAge
	ch <- c.dedupe
	ch <- c.redisUp
}

// Collect implements prometheus.Collector.
func (c *LedgerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	stats, err := c.ledger.Stats(ctx, c.providers)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.redisUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.redisUp, prometheus.GaugeValue, 1)
	if dd, err := c.ledger.DedupeCounts(ctx); err == nil {
		for _, p := range c.providers {
			for _, kind := range []string{"duplicate", "conflict"} {
				ch <- prometheus.MustNewConstMetric(c.dedupe, prometheus.CounterValue, float64(dd[p][kind]), p, kind)
			}
		}
	}
	// Ages on Redis's clock, which the ledger's stamps are on.
	now, err := c.ledger.NotAfterNow(ctx, ledger.Ref{})
	if err != nil {
		now = time.Now()
	}
	// Its own time: a ledger too large to read in it must not cost the
	// series above.
	pctx, pcancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer pcancel()
	perShard := max(pendingRead/c.ledger.Shards(), 10)
	kinds, err := c.ledger.PendingStats(pctx, c.providers, perShard)
	for _, p := range c.providers {
		for _, kind := range ledger.PendingKinds {
			st := kinds[p][kind]
			if err != nil {
				// Unread: every kind as old as the oldest pending order,
				// so that no alert on pending orders goes silent.
				st = stats[p][StatePending]
			} else {
				ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(st.Count), p, kind)
			}
			age := 0.0
			if !st.Oldest.IsZero() {
				age = now.Sub(st.Oldest).Seconds()
			}
			ch <- prometheus.MustNewConstMetric(c.pendAge, prometheus.GaugeValue, age, p, kind)
		}
	}
	for _, p := range c.providers {
		for _, s := range States {
			st := stats[p][s]
			ch <- prometheus.MustNewConstMetric(c.orders, prometheus.GaugeValue, float64(st.Count), p, string(s))
			if s.Terminal() {
				continue
			}
			age := 0.0
			if st.Count > 0 {
				age = now.Sub(st.Oldest).Seconds()
			}
			ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age, p, string(s))
		}
	}
}
