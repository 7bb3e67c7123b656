package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// Defaults of Options.
const (
	DefaultMaxAge    = 72 * time.Hour
	DefaultRetryBase = time.Second
	DefaultRetryMax  = 5 * time.Minute
	DefaultTimeout   = 10 * time.Second
	DefaultSenders   = 8
	DefaultPoll      = time.Second
)

// Options configure a Dispatcher. nil means defaults.
type Options struct {
	// MaxAge is how long an event is retried, counted from the event's
	// time (or its re-send), before it is kept as failed. Default
	// DefaultMaxAge (72h).
	MaxAge time.Duration
	// RetryBase is the first retry's backoff; it doubles up to RetryMax,
	// with jitter (each wait is between half and all of it). Defaults 1s
	// and 5m.
	RetryBase, RetryMax time.Duration
	// Timeout bounds one delivery (connect, send, answer). Default 10s. A
	// delivery's lease lasts 2 × Timeout + 1s: a process that dies
	// mid-delivery leaves the event to the others after that.
	Timeout time.Duration
	// Streams are the ledger's events streams (Ledger.EventStreams), one
	// per shard; required. Each endpoint reads each stream on goroutines
	// of its own.
	Streams []ledger.EventStream
	// Senders is how many deliveries one process has in flight per
	// endpoint (shared out over the streams, at least one each). Default
	// 8.
	Senders int
	// Poll is how often an idle endpoint looks for retries that another
	// process scheduled or left behind. Default 1s.
	Poll time.Duration
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Transport sends the requests; default a clone of
	// http.DefaultTransport per endpoint, so that endpoints share no
	// connection pool.
	Transport http.RoundTripper
	// Durable, when set, leases the events to deliver with a durable
	// write (a ledger.Ledger on the dispatcher's Redis client, with the
	// worker's durability options): an event goes out only once the
	// replicas hold it, so a failover cannot take back a change whose
	// event was delivered, and deliver the change's redone event under
	// another id. Leased events not yet acknowledged wait for their lease
	// to run out, then are leased again. nil: delivered as soon as read.
	Durable DurableRunner
}

// DurableRunner runs a script as a durable write; *ledger.Ledger is one.
type DurableRunner interface {
	RunDurable(ctx context.Context, s *redis.Script, keys []string, args ...any) (v any, acked bool, err error)
}

// errNotReplicated is a lease whose write the replicas did not
// acknowledge in time.
var errNotReplicated = errors.New("the leased events are not acknowledged by the replicas yet: they are delivered once they are (their leases run out, and they are leased again)")

// Dispatcher delivers outcome events from the ledger's events stream to
// webhook endpoints: at least once, signed, one order's events in order,
// each endpoint on its own goroutines so that a slow or dead endpoint
// holds up neither order processing nor the other endpoints. Any number of
// processes may run one for the same endpoints: they share the work
// through Redis. It is safe for concurrent use.
type Dispatcher struct {
	rdb        redis.UniversalClient
	signer     *Signer
	eps        []*endpoint
	opts       Options
	log        *slog.Logger
	consumer   string
	deliveries *prometheus.CounterVec
	now        func() time.Time
}

// endpoint is one URL, one events stream, and what delivering that
// stream's events to the URL needs.
type endpoint struct {
	senders int
	index   int
	label   string // the metrics' endpoint label: its index
	url     string
	display string
	k       keys
	client  *http.Client
	wake    chan struct{}
	failing atomic.Bool
}

func (ep *endpoint) poke() {
	select {
	case ep.wake <- struct{}{}:
	default:
	}
}

// ParseURLs reads ORDERWORKER_WEBHOOK_URLS: comma-separated absolute http
// or https URLs, none twice. Errors name a URL by its index, counted from 0
// among the URLs given as the endpoints' listing (enqueue webhooks) and
// metrics count them, and show it without credentials or query (one that
// does not parse, not at all: it may be a secret pasted in the wrong
// place).
func ParseURLs(s string) ([]string, error) {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if err := checkURL(len(out), item, out); err != nil {
			return nil, err
		}
		out = append(out, item)
	}
	return out, nil
}

// checkURL refuses the URL at index i, after the URLs before, as
// ParseURLs does.
func checkURL(i int, item string, before []string) error {
	u, err := url.Parse(item)
	switch {
	case err != nil || u.Host == "":
		return fmt.Errorf("URL at index %d: not an absolute URL: want one like https://example.com/hook", i)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("URL at index %d (%s): want an http:// or https:// URL", i, DisplayURL(item))
	}
	for j, o := range before {
		if o == item {
			return fmt.Errorf("URL at index %d (%s) is the one at index %d again", i, DisplayURL(item), j)
		}
	}
	return nil
}

// New returns a Dispatcher for the endpoints urls (their order gives each
// its metrics label), signing with signer.
func New(rdb redis.UniversalClient, urls []string, signer *Signer, opts *Options) (*Dispatcher, error) {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.RetryBase <= 0 {
		o.RetryBase = DefaultRetryBase
	}
	if o.RetryMax <= 0 {
		o.RetryMax = DefaultRetryMax
	}
	if o.RetryMax < o.RetryBase {
		return nil, fmt.Errorf("webhook retry cap %s is below the first retry %s", o.RetryMax, o.RetryBase)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Senders <= 0 {
		o.Senders = DefaultSenders
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if signer == nil {
		return nil, errors.New("webhooks need a secret to sign with")
	}
	if len(o.Streams) == 0 {
		return nil, errors.New("webhooks need the ledger's events streams")
	}
	senders := max(1, (o.Senders+len(o.Streams)-1)/len(o.Streams))
	host, _ := os.Hostname()
	d := &Dispatcher{
		rdb: rdb, signer: signer, opts: o, log: o.Logger, now: newRedisClock(rdb).Now,
		consumer: fmt.Sprintf("%s-%d-%s", host, os.Getpid(), uuid.NewString()[:8]),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderworker_webhook_deliveries_total",
			Help: "Webhook delivery attempts by this process, by endpoint (its index in ORDERWORKER_WEBHOOK_URLS) and result: ok (2xx), http_error (any other answer), network_error (no answer).",
		}, []string{"endpoint", "result"}),
	}
	for i, u := range urls {
		if err := checkURL(i, u, urls[:i]); err != nil {
			return nil, fmt.Errorf("webhook %w", err)
		}
		tr := o.Transport
		if tr == nil {
			t := http.DefaultTransport.(*http.Transport).Clone()
			t.MaxIdleConnsPerHost = o.Senders
			tr = t
		}
		id := EndpointID(u)
		client := &http.Client{Transport: tr, Timeout: o.Timeout,
			// A redirect is an answer other than 2xx: the endpoint's
			// URL is what is configured.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		for _, stream := range o.Streams {
			d.eps = append(d.eps, &endpoint{
				index: i, label: strconv.Itoa(i), url: u, display: DisplayURL(u), k: keysFor(id, stream),
				wake: make(chan struct{}, 1), client: client, senders: senders,
			})
		}
	}
	for _, ep := range d.eps {
		for _, l := range []string{"ok", "http_error", "network_error"} {
			d.deliveries.WithLabelValues(ep.label, l)
		}
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(d.deliveries); err != nil {
			return nil, err
		}
		if err := o.Registerer.Register(&collector{d: d}); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Connections is how many Redis connections a Dispatcher for the given
// number of endpoints may use at once with opts: per endpoint and events
// stream one held by a blocking read and one by the loop that leases due
// events, plus one per sender. Give the Dispatcher a client of its own with
// a pool at least this large: its blocking reads hold their connections
// for seconds, and in a pool shared with the ledger they would hold up
// order processing.
func Connections(endpoints int, opts *Options) int {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	streams := max(1, len(o.Streams))
	senders := o.Senders
	if senders <= 0 {
		senders = DefaultSenders
	}
	perStream := max(1, (senders+streams-1)/streams)
	return endpoints*streams*(2+perStream) + 4
}

// Setup registers every endpoint and creates its consumer groups, as Run
// does before it reads. Call it before orders are processed, so that no
// event written between the start and Run's first read escapes a new
// endpoint's group (which starts at the stream's end).
func (d *Dispatcher) Setup(ctx context.Context) error {
	for _, ep := range d.eps {
		if err := d.setup(ctx, ep); err != nil {
			return err
		}
	}
	return nil
}

// Run delivers until ctx ends, then lets deliveries in flight finish (at
// most Timeout) and returns.
func (d *Dispatcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, ep := range d.eps {
		wg.Go(func() { d.read(ctx, ep) })
		wg.Go(func() { d.send(ctx, ep) })
	}
	wg.Wait()
}

// sleep waits for d or ctx; it reports whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// setup registers the endpoint and creates its consumer group
// (groupScript). A new group starts at the stream's end: an endpoint
// receives the events that happen from its first configuration on (the
// worker sets the groups up before it takes orders: Setup).
func (d *Dispatcher) setup(ctx context.Context, ep *endpoint) error {
	if err := NewStore(d.rdb, d.opts.Streams).register(ctx, ep.k.id, ep.display, ep.index); err != nil {
		return err
	}
	return groupScript.Run(ctx, d.rdb, []string{ep.k.stream.Key}, ep.k.group, ep.k.base).Err()
}

// read takes events from the endpoint's consumer group and admits them.
func (d *Dispatcher) read(ctx context.Context, ep *endpoint) {
	log := d.log.With("endpoint", ep.label, "url", ep.display)
	wait := 100 * time.Millisecond
	var lastErr string
	problem := func(what string, err error) bool {
		if ctx.Err() != nil {
			return false
		}
		if msg := err.Error(); msg != lastErr {
			log.Warn("webhooks: "+what, "error", err)
			lastErr = msg
		}
		ok := sleep(ctx, wait)
		wait = min(2*wait, 5*time.Second)
		return ok
	}
	for {
		err := d.setup(ctx, ep)
		if err == nil {
			break
		}
		if !problem("cannot set up the endpoint's consumer group", err) {
			return
		}
	}
	lastClean := time.Now()
	for ctx.Err() == nil {
		res, err := d.admit(ctx, ep, log, readBatch)
		if err != nil {
			if isNoGroup(err) {
				_ = d.setup(ctx, ep)
			}
			if !problem("cannot admit events", err) {
				break
			}
			continue
		}
		wait, lastErr = 100*time.Millisecond, ""
		if time.Since(lastClean) > 10*time.Minute {
			d.dropIdleConsumers(ctx, ep)
			lastClean = time.Now()
		}
		if res.read >= readBatch || !res.done {
			continue // more to read or to admit
		}
		// The group has read the whole stream: wait for a new entry.
		// Only admitScript reads the group, after it has counted what
		// the stream lost before the group read it; this read does not
		// move the group.
		from := res.last
		if from == "" {
			from = "$"
		}
		err = d.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{ep.k.stream.Key, from}, Count: 1, Block: 2 * time.Second}).Err()
		if err != nil && !errors.Is(err, redis.Nil) {
			if !problem("cannot read the events stream", err) {
				break
			}
		}
	}
	d.leave(ctx, ep, log)
}

// readBatch is how many new entries one admit reads.
const readBatch = 200

// leave admits what this process read, then leaves the endpoint's group.
// One admit goes through at most 20 × 200 pending entries, and XGROUP
// DELCONSUMER drops whatever the consumer still holds, so admit runs again
// until it has gone through the whole pending list; only then is the
// consumer deleted. When time runs out first, the consumer stays with its
// entries: another process's admit takes them over (XAUTOCLAIM), and
// dropIdleConsumers deletes the consumer once it holds nothing.
func (d *Dispatcher) leave(ctx context.Context, ep *endpoint, log *slog.Logger) {
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	for {
		res, err := d.admit(c, ep, log, 0)
		if err != nil {
			log.Warn("webhooks: could not admit every event read before leaving; another worker admits the rest", "error", err)
			return
		}
		if res.done {
			break
		}
	}
	_ = d.rdb.XGroupDelConsumer(c, ep.k.stream.Key, ep.k.group, d.consumer).Err()
}

func isNoGroup(err error) bool { return err != nil && strings.Contains(err.Error(), "NOGROUP") }

// admission is what one admitScript call did.
type admission struct {
	admitted int64
	// lostRead were read and trimmed before they were admitted;
	// lostUnread trimmed before any worker read them.
	lostRead, lostUnread int64
	done                 bool   // it went through the group's whole pending list
	read                 int64  // new entries it read
	last                 string // the group's last read entry ("" when unknown)
}

// admit runs admitScript, reading up to read new entries, logs what was
// lost and wakes the senders when it admitted events.
func (d *Dispatcher) admit(ctx context.Context, ep *endpoint, log *slog.Logger, read int) (admission, error) {
	v, err := admitScript.Run(ctx, d.rdb, []string{ep.k.stream.Key, ep.k.ev, ep.k.due, ep.k.backlog, ep.k.failed, ep.k.st, ep.k.lost},
		ep.k.group, d.consumer, ep.k.base, d.now().UnixMilli(), 200, read, ep.k.id).Slice()
	if err != nil {
		return admission{}, err
	}
	if len(v) != 6 {
		return admission{}, fmt.Errorf("admit: unexpected reply %v", v)
	}
	n := make([]int64, 5)
	for i := range n {
		x, ok := v[i].(int64)
		if !ok {
			return admission{}, fmt.Errorf("admit: unexpected reply %v", v)
		}
		n[i] = x
	}
	last, _ := v[5].(string)
	res := admission{admitted: n[0], lostRead: n[1], done: n[2] == 1, lostUnread: n[3], read: n[4], last: last}
	if lost := res.lostRead + res.lostUnread; lost > 0 {
		log.Warn("webhooks: events left the stream (retention) before they were admitted; they will not be delivered (orderworker_webhook_events_lost_total counts them)",
			"lost", lost, "never_read", res.lostUnread, "read_not_admitted", res.lostRead)
	}
	if res.admitted > 0 {
		ep.poke()
	}
	return res, nil
}

// dropIdleConsumers removes consumers of dead processes (idle for an hour,
// holding nothing) from the endpoint's group.
func (d *Dispatcher) dropIdleConsumers(ctx context.Context, ep *endpoint) {
	cs, err := d.rdb.XInfoConsumers(ctx, ep.k.stream.Key, ep.k.group).Result()
	if err != nil {
		return
	}
	for _, c := range cs {
		if c.Name != d.consumer && c.Pending == 0 && c.Idle > time.Hour {
			_ = d.rdb.XGroupDelConsumer(ctx, ep.k.stream.Key, ep.k.group, c.Name).Err()
		}
	}
}

// leased is one event a sender holds the lease of.
type leased struct {
	id, fields, state string
	lease             int64 // the due score the lease set: the lease's token
}

// send leases due events of ep and hands them to Senders goroutines.
func (d *Dispatcher) send(ctx context.Context, ep *endpoint) {
	log := d.log.With("endpoint", ep.label, "url", ep.display)
	n := ep.senders
	jobs := make(chan leased, n)
	finished := make(chan struct{}, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for j := range jobs {
				d.deliver(ctx, ep, j, log)
				finished <- struct{}{}
			}
		})
	}
	defer func() {
		close(jobs)
		wg.Wait()
	}()
	inflight := 0
	errWait := 100 * time.Millisecond
	var lastErr string
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wait := time.Duration(-1) // until a delivery finishes
		if free := n - inflight; free > 0 && ctx.Err() == nil {
			now := d.now()
			items, next, err := d.lease(ctx, ep, now, free)
			switch {
			case err != nil:
				if msg := err.Error(); msg != lastErr && ctx.Err() == nil {
					log.Warn("webhooks: cannot lease events", "error", err)
					lastErr = msg
				}
				wait, errWait = errWait, min(2*errWait, 5*time.Second)
			case len(items) < free:
				errWait, lastErr = 100*time.Millisecond, ""
				wait = d.opts.Poll
				if next > 0 {
					wait = min(wait, max(time.UnixMilli(next).Sub(now), 5*time.Millisecond))
				}
			}
			for _, it := range items {
				inflight++
				jobs <- it
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		var tc <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			// Deliveries in flight finish (at most Timeout); nothing
			// new is leased.
			for ; inflight > 0; inflight-- {
				<-finished
			}
			return
		case <-ep.wake:
		case <-finished:
			inflight--
		case <-tc:
		}
	}
}

// leaseTTL is how long a lease lasts.
func (d *Dispatcher) leaseTTL() time.Duration { return 2*d.opts.Timeout + time.Second }

// lease takes up to max due events of ep; next is the earliest due score
// left (unix ms; 0 when none).
func (d *Dispatcher) lease(ctx context.Context, ep *endpoint, now time.Time, limit int) ([]leased, int64, error) {
	until := now.Add(d.leaseTTL()).UnixMilli()
	keys := []string{ep.k.due, ep.k.ev, ep.k.st}
	var v []any
	if d.opts.Durable != nil {
		// The lease is written after the events it takes: acknowledged,
		// it tells that they are on the replicas too.
		r, acked, err := d.opts.Durable.RunDurable(ctx, leaseScript, keys, now.UnixMilli(), until, limit)
		if err != nil {
			return nil, 0, err
		}
		if v, _ = r.([]any); !acked && len(v) == 2 {
			if rows, _ := v[0].([]any); len(rows) > 0 {
				return nil, 0, errNotReplicated
			}
		}
	} else {
		var err error
		if v, err = leaseScript.Run(ctx, d.rdb, keys, now.UnixMilli(), until, limit).Slice(); err != nil {
			return nil, 0, err
		}
	}
	if len(v) != 2 {
		return nil, 0, fmt.Errorf("lease: unexpected reply %v", v)
	}
	rows, _ := v[0].([]any)
	out := make([]leased, 0, len(rows))
	for _, r := range rows {
		f, _ := r.([]any)
		if len(f) != 3 {
			continue
		}
		id, _ := f[0].(string)
		fields, _ := f[1].(string)
		st, _ := f[2].(string)
		out = append(out, leased{id: id, fields: fields, state: st, lease: until})
	}
	var next int64
	if s, _ := v[1].(string); s != "" {
		if fl, err := strconv.ParseFloat(s, 64); err == nil {
			next = int64(fl)
		}
	}
	return out, next, nil
}

// deliver sends one event and records the outcome: delivered, retried
// later, or given up on (with its order's later events) once older than
// MaxAge.
func (d *Dispatcher) deliver(ctx context.Context, ep *endpoint, j leased, log *slog.Logger) {
	// Redis writes outlive a shutdown that began during the attempt, and
	// each gets its own time: one counted from before the request would
	// run out while a slow endpoint answers (up to Timeout), and its
	// delivery, or its retry's backoff, would never be recorded.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisWriteTimeout)
	defer cancel()
	if j.fields == "" {
		// Admitted without its fields: nothing can be sent.
		log.Error("webhooks: event without its content dropped", "event_id", j.id)
		_ = doneScript.Run(rctx, d.rdb, []string{ep.k.due, ep.k.ev, ep.k.st, ep.k.backlog, ep.k.failed}, ep.k.base, j.id, d.now().UnixMilli()).Err()
		return
	}
	ev := eventOf(ep.k.stream, j.id, j.fields)
	st := parseState(j.state, j.id)
	if late := d.now().Sub(time.UnixMilli(st.Since).Add(d.opts.MaxAge)); late > d.opts.Timeout {
		// Older than MaxAge by more than one delivery takes: a backlog
		// behind an endpoint that holds every request until its timeout.
		// Kept as failed without being sent: a stale event is not
		// delivered, and the events behind it are given up on when their
		// time comes, not after a delivery attempt each.
		prev := st.Err
		// (An attempt cut off by a worker's end is not counted, and
		// may have reached the endpoint: "not sent again" says only
		// what this turn did.)
		st.Err = fmt.Sprintf("not sent again: older than ORDERWORKER_WEBHOOK_MAX_AGE (%s) when its turn came", d.opts.MaxAge)
		if st.Attempts == 0 {
			st.Err += "; no attempt recorded (one a stopped worker was making may have reached the endpoint)"
		}
		if prev != "" {
			st.Err += "; last error: " + prev
		}
		now := d.now()
		st.LastAt = now.UnixMilli()
		n, err := giveUpScript.Run(rctx, d.rdb, []string{ep.k.due, ep.k.ev, ep.k.st, ep.k.backlog, ep.k.failed},
			ep.k.base, j.id, j.lease, now.UnixMilli(), st.json()).Int()
		if err == nil && n > 0 {
			log.Warn("webhooks: event kept as failed, unsent, past its MAX_AGE (enqueue webhooks failed lists it, enqueue webhooks resend sends it again)",
				"event_id", j.id, "type", ev.Type, "provider", ev.Data.Provider, "order_no", ev.Data.OrderNo,
				"attempts", st.Attempts, "late", late.Round(time.Millisecond), "moved", n)
		}
		return
	}
	result, reason := d.post(ctx, ep, ev)
	d.deliveries.WithLabelValues(ep.label, result).Inc()
	cancel()
	rctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), redisWriteTimeout)
	defer cancel()
	now := d.now()
	if result == "ok" {
		if err := doneScript.Run(rctx, d.rdb, []string{ep.k.due, ep.k.ev, ep.k.st, ep.k.backlog, ep.k.failed}, ep.k.base, j.id, now.UnixMilli()).Err(); err != nil {
			// The lease runs out and the event is sent again:
			// at least once.
			log.Warn("webhooks: delivered, but could not record it; it will be sent again", "event_id", j.id, "error", err)
		}
		if ep.failing.CompareAndSwap(true, false) {
			log.Info("webhooks: endpoint accepts deliveries again")
		}
		return
	}
	if ep.failing.CompareAndSwap(false, true) {
		log.Warn("webhooks: endpoint refuses or misses deliveries; retrying with backoff", "error", reason)
	}
	st.Attempts++
	st.Err = reason
	st.LastAt = now.UnixMilli()
	deadline := time.UnixMilli(st.Since).Add(d.opts.MaxAge)
	if !now.Before(deadline) {
		n, err := giveUpScript.Run(rctx, d.rdb, []string{ep.k.due, ep.k.ev, ep.k.st, ep.k.backlog, ep.k.failed},
			ep.k.base, j.id, j.lease, now.UnixMilli(), st.json()).Int()
		if err == nil && n > 0 {
			log.Warn("webhooks: event kept as failed after its retries (enqueue webhooks failed lists it, enqueue webhooks resend sends it again)",
				"event_id", j.id, "type", ev.Type, "provider", ev.Data.Provider, "order_no", ev.Data.OrderNo,
				"attempts", st.Attempts, "error", reason, "moved", n)
		}
		return
	}
	next := now.Add(d.backoff(st.Attempts))
	if next.After(deadline) {
		next = deadline // a last attempt when MaxAge is up
	}
	if err := retryScript.Run(rctx, d.rdb, []string{ep.k.due, ep.k.st}, j.id, j.lease, next.UnixMilli(), st.json()).Err(); err != nil {
		log.Warn("webhooks: could not schedule a retry; it is sent again when its lease ends", "event_id", j.id, "error", err)
	}
	log.Debug("webhooks: delivery failed", "event_id", j.id, "attempts", st.Attempts, "error", reason, "next", next)
}

// redisWriteTimeout bounds each of a delivery's Redis writes.
const redisWriteTimeout = 5 * time.Second

// backoff is the wait before retry n (1 for the first): RetryBase doubled
// n-1 times, capped at RetryMax, with jitter: between half and all of it.
func (d *Dispatcher) backoff(n int) time.Duration {
	b := d.opts.RetryMax
	if n < 40 {
		b = min(d.opts.RetryBase<<(n-1), d.opts.RetryMax)
	}
	if b <= 0 {
		b = d.opts.RetryMax
	}
	return b/2 + rand.N(b/2+1)
}

// post sends ev to ep once: result is ok, http_error or network_error,
// reason says what went wrong (never with the URL, which may carry a
// token).
func (d *Dispatcher) post(ctx context.Context, ep *endpoint, ev ledger.Event) (result, reason string) {
	body, err := ev.Body()
	if err != nil {
		return "network_error", "encode event: " + err.Error()
	}
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, ep.url, bytes.NewReader(body))
	if err != nil {
		return "network_error", "build request"
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "orderworker-webhooks")
	// The receiver checks the timestamp against its own clock: this
	// host's (NTP-kept) time, not Redis's.
	d.signer.Header(req.Header, ev.ID, time.Now(), body)
	resp, err := ep.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "network_error", providers.Truncate(err.Error(), 200)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return "ok", ""
	}
	return "http_error", "HTTP " + strconv.Itoa(resp.StatusCode)
}

// collector exports each endpoint's backlog, the age of its oldest
// undelivered event, its failed events and its lost events, read from
// Redis at scrape time: every replica reports the same numbers, and the
// lost total (a counter) goes on across restarts. Besides the configured endpoints
// (labelled by their index), it exports every endpoint Redis knows that
// is no longer configured and still holds undelivered or failed events,
// labelled by its id: no worker delivers them, and they must not grow
// unseen. Its lost total, which no worker adds to any more, is not.
type collector struct{ d *Dispatcher }

var (
	backlogDesc = prometheus.NewDesc("orderworker_webhook_backlog_events",
		"Outcome events not yet delivered to a webhook endpoint (waiting, retrying, or behind an earlier event of their order), by endpoint (its index in ORDERWORKER_WEBHOOK_URLS; its id for one no longer listed there).", []string{"endpoint"}, nil)
	oldestDesc = prometheus.NewDesc("orderworker_webhook_oldest_undelivered_age_seconds",
		"Age of the oldest outcome event not yet delivered to a webhook endpoint (0 when none), by endpoint (its index in ORDERWORKER_WEBHOOK_URLS; its id for one no longer listed there).", []string{"endpoint"}, nil)
	failedDesc = prometheus.NewDesc("orderworker_webhook_failed_events",
		"Outcome events given up on after ORDERWORKER_WEBHOOK_MAX_AGE and kept as failed, by endpoint (its index in ORDERWORKER_WEBHOOK_URLS; its id for one no longer listed there; enqueue webhooks failed lists them).", []string{"endpoint"}, nil)
	lostDesc = prometheus.NewDesc("orderworker_webhook_events_lost_total",
		"Outcome events trimmed from the events stream (retention) before any worker admitted them for a webhook endpoint, read or never read: never delivered to it, by endpoint (its index in ORDERWORKER_WEBHOOK_URLS). Kept in Redis: every worker reports the same total, which survives restarts.", []string{"endpoint"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- backlogDesc
	ch <- oldestDesc
	ch <- failedDesc
	ch <- lostDesc
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	store := NewStore(c.d.rdb, c.d.opts.Streams)
	now := c.d.now()
	done := map[int]bool{}
	for _, ep := range c.d.eps {
		if done[ep.index] {
			continue // an endpoint's other streams: counted with the first
		}
		done[ep.index] = true
		info, err := store.Stats(ctx, ep.k.id)
		if err != nil {
			continue // orderworker_redis_up says why
		}
		oldest := info.OldestUndelivered
		for _, o := range c.d.eps {
			if o.index != ep.index {
				continue
			}
			if u, err := c.d.oldestUnadmitted(ctx, o); err == nil && !u.IsZero() && (oldest.IsZero() || u.Before(oldest)) {
				oldest = u
			}
		}
		age := 0.0
		if !oldest.IsZero() {
			age = max(now.Sub(oldest).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(info.Backlog), ep.label)
		ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, age, ep.label)
		ch <- prometheus.MustNewConstMetric(failedDesc, prometheus.GaugeValue, float64(info.Failed), ep.label)
		ch <- prometheus.MustNewConstMetric(lostDesc, prometheus.CounterValue, float64(info.Lost), ep.label)
	}
	// Endpoints no longer configured: their backlog and failed events,
	// and the age of their oldest undelivered event (not of the events
	// their group has not read: nothing reads it any more).
	configured := map[string]bool{}
	for _, ep := range c.d.eps {
		configured[ep.k.id] = true
	}
	known, err := c.d.rdb.HKeys(ctx, endpointsKey).Result()
	if err != nil {
		return
	}
	known = slices.DeleteFunc(known, func(id string) bool { return configured[id] })
	slices.Sort(known)
	// One round trip tells the few that hold something from the many
	// that hold nothing; only those are read in full.
	held, err := store.holding(ctx, known)
	if err != nil {
		return
	}
	for _, id := range held {
		info, err := store.Stats(ctx, id)
		if err != nil || info.Backlog == 0 && info.Failed == 0 {
			continue
		}
		age := 0.0
		if !info.OldestUndelivered.IsZero() {
			age = max(now.Sub(info.OldestUndelivered).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(info.Backlog), id)
		ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, age, id)
		ch <- prometheus.MustNewConstMetric(failedDesc, prometheus.GaugeValue, float64(info.Failed), id)
	}
}

// oldestUnadmitted is the time of the oldest event no process has
// admitted for ep yet: the oldest pending entry of its group, or the first
// entry after what the group has read. Zero when there is none.
func (d *Dispatcher) oldestUnadmitted(ctx context.Context, ep *endpoint) (time.Time, error) {
	var oldest string
	if p, err := d.rdb.XPending(ctx, ep.k.stream.Key, ep.k.group).Result(); err == nil && p.Count > 0 {
		oldest = p.Lower
	}
	if oldest == "" {
		groups, err := d.rdb.XInfoGroups(ctx, ep.k.stream.Key).Result()
		if err != nil {
			return time.Time{}, err
		}
		for _, g := range groups {
			if g.Name != ep.k.group {
				continue
			}
			msgs, err := d.rdb.XRangeN(ctx, ep.k.stream.Key, "("+g.LastDeliveredID, "+", 1).Result()
			if err != nil {
				return time.Time{}, err
			}
			if len(msgs) > 0 {
				oldest = msgs[0].ID
			}
		}
	}
	if oldest == "" {
		return time.Time{}, nil
	}
	return time.UnixMilli(idMillis(oldest)).UTC(), nil
}
