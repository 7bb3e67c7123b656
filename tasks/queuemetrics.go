package tasks

import (
	"slices"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
)

// QueueCollector exports asynq's queue metrics, read through an
// asynq.Inspector at scrape time. The names follow asynq's x/metrics
// collector (which has no tagged release compatible with this asynq). Its
// two gauges named like counters, asynq_tasks_enqueued_total and
// asynq_queue_paused_total, are exported under those names, for queries
// and dashboards written for asynq's collector, and again as
// asynq_tasks_enqueued and asynq_queue_paused, the names to use: a gauge
// named like a counter invites rate(), and promtool check metrics flags
// exactly those two.
//
// The numbers are global: every replica reports the same values, so
// aggregate with max by (queue), never sum.
type QueueCollector struct {
	inspector *asynq.Inspector
	queues    []string

	enqueued, size, latency, memory, processed, failed, paused *prometheus.Desc
	// asynq's own names for enqueued and paused
	enqueuedTotal, pausedTotal *prometheus.Desc
}

// NewQueueCollector returns a collector for the given queues.
func NewQueueCollector(inspector *asynq.Inspector, queues []string) *QueueCollector {
	q := []string{"queue"}
	return &QueueCollector{
		inspector:     inspector,
		queues:        queues,
		enqueued:      prometheus.NewDesc("asynq_tasks_enqueued", "Number of tasks enqueued; broken down by queue and state.", []string{"queue", "state"}, nil),
		size:          prometheus.NewDesc("asynq_queue_size", "Number of tasks in a queue.", q, nil),
		latency:       prometheus.NewDesc("asynq_queue_latency_seconds", "Number of seconds the oldest pending task is waiting in pending state to be processed.", q, nil),
		memory:        prometheus.NewDesc("asynq_queue_memory_usage_approx_bytes", "Number of memory used by a given queue (approximated number by sampling).", q, nil),
		processed:     prometheus.NewDesc("asynq_tasks_processed_total", "Number of tasks processed (both succeeded and failed); broken down by queue.", q, nil),
		failed:        prometheus.NewDesc("asynq_tasks_failed_total", "Number of tasks failed; broken down by queue.", q, nil),
		paused:        prometheus.NewDesc("asynq_queue_paused", "1 when the queue is paused.", q, nil),
		enqueuedTotal: prometheus.NewDesc("asynq_tasks_enqueued_total", "Number of tasks enqueued; broken down by queue and state (a gauge, named as asynq's collector names it: use asynq_tasks_enqueued).", []string{"queue", "state"}, nil),
		pausedTotal:   prometheus.NewDesc("asynq_queue_paused_total", "1 when the queue is paused (a gauge, named as asynq's collector names it: use asynq_queue_paused).", q, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *QueueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.enqueued, c.size, c.latency, c.memory, c.processed, c.failed, c.paused, c.enqueuedTotal, c.pausedTotal} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A queue that does not exist yet
// (nothing was ever enqueued) reports zeros; a queue that could not be read
// (Redis unreachable) reports nothing: zeros would read as every archived
// task gone and back again, and as counters reset.
func (c *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	known, err := c.inspector.Queues()
	if err != nil {
		return
	}
	for _, q := range c.queues {
		info := &asynq.QueueInfo{Queue: q}
		if slices.Contains(known, q) {
			if info, err = c.inspector.GetQueueInfo(q); err != nil {
				continue
			}
		}
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
		}
		for state, n := range map[string]int{
			"active": info.Active, "pending": info.Pending, "scheduled": info.Scheduled, "retry": info.Retry,
			"archived": info.Archived, "completed": info.Completed, "aggregating": info.Aggregating,
		} {
			gauge(c.enqueued, float64(n), q, state)
			gauge(c.enqueuedTotal, float64(n), q, state)
		}
		gauge(c.size, float64(info.Size), q)
		gauge(c.latency, info.Latency.Seconds(), q)
		gauge(c.memory, float64(info.MemoryUsage), q)
		ch <- prometheus.MustNewConstMetric(c.processed, prometheus.CounterValue, float64(info.ProcessedTotal), q)
		ch <- prometheus.MustNewConstMetric(c.failed, prometheus.CounterValue, float64(info.FailedTotal), q)
		paused := 0.0
		if info.Paused {
			paused = 1
		}
		gauge(c.paused, paused, q)
		gauge(c.pausedTotal, paused, q)
	}
}
