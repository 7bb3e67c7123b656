package tasks

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderworker/orderworker/tasks/order"
)

// Kinds of configuration problem that hold orders back.
const (
	// ProblemProviderDisabled: the provider has no credentials on this
	// worker.
	ProblemProviderDisabled = "provider_disabled"
	// ProblemCredentials: the provider refused this worker's credentials
	// or signature.
	ProblemCredentials = "credentials_rejected"
	// ProblemPrepare: the provider refused what an order's prepare step
	// asks before any create (Aliyun's snapshot listing: the API not
	// enabled for the project, its parameters refused). Unlike
	// ProblemCredentials, which any call that succeeds clears, only a
	// prepare step that succeeds clears it: other calls may succeed while
	// every prepare is refused.
	ProblemPrepare = "prepare_refused"
	// ProblemClock: the provider refused the requests' timestamps
	// (providers.ErrClock): this worker's clock is off.
	ProblemClock = "clock_rejected"
	// ProblemAccount: the provider refused the account itself
	// (providers.ErrAccount: arrears, an exhausted quota, a permission
	// its user lacks).
	ProblemAccount = "account_rejected"
	// ProblemDataKey: sealed params this worker cannot open (no data key,
	// or another one than the producers').
	ProblemDataKey = "data_key"
	// ProblemReplicas: the Redis master reports fewer replicas than
	// ORDERWORKER_MIN_REPLICAS, or fewer than it was seen with
	// (ledger.TooFewReplicasError), so no order may be marked in flight.
	ProblemReplicas = "redis_replicas"
	// ProblemTarget: an order whose create went to another endpoint or
	// account than this worker's provider is configured for (the record's
	// create target): a lookup, a poll or a pay here would ask the wrong
	// provider, whose silence is no proof of absence.
	ProblemTarget = "create_target_elsewhere"
)

// problemKinds are the kinds of configuration problem, for Metrics.Init.
var problemKinds = []string{ProblemProviderDisabled, ProblemCredentials, ProblemPrepare, ProblemClock, ProblemAccount, ProblemDataKey, ProblemReplicas, ProblemTarget}

// ProblemKinds lists every kind of configuration problem (the kind label
// of orderworker_config_problem).
func ProblemKinds() []string { return slices.Clone(problemKinds) }

// problemTTL is how long a reported problem counts after it was last seen.
const problemTTL = 2 * time.Minute

// Problems collects the configuration problems a worker met, for /readyz,
// the orderworker_config_problem gauge and one loud log line per problem.
// It is safe for concurrent use.
type Problems struct {
	mu   sync.Mutex
	seen map[[2]string]problem
	// probed is when a call of each provider last went as a probe while
	// a problem held its calls (Probe).
	probed map[string]time.Time
	// went is, for each provider and step, when the latest call that went
	// through began (Went), and how many calls went through and were
	// refused for the credentials lately (OthersWent).
	went map[wentKey]*wentCalls
	now  func() time.Time
	desc *prometheus.Desc
}

type problem struct {
	reason      string
	first, last time.Time
}

// NewProblems returns an empty collection.
func NewProblems() *Problems {
	return &Problems{seen: map[[2]string]problem{}, now: time.Now,
		desc: prometheus.NewDesc("orderworker_config_problem",
			"1 while a configuration problem (by provider and kind: provider_disabled, credentials_rejected, clock_rejected, account_rejected, prepare_refused, data_key, redis_replicas) held an order back in the last two minutes.",
			[]string{"provider", "kind"}, nil)}
}

// Report records a problem and reports whether it is new (not seen in the
// last problemTTL), so the caller logs it once.
func (p *Problems) Report(provider, kind, reason string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	k := [2]string{provider, kind}
	cur, ok := p.seen[k]
	isNew := !ok || now.Sub(cur.last) > problemTTL
	if isNew {
		cur.first = now
	}
	cur.reason, cur.last = reason, now
	p.seen[k] = cur
	return isNew
}

// Probe says whether an order step that calls provider is held without a
// call while one of kinds holds the provider's calls back (a problem seen
// in the last problemTTL that every call of this worker's would meet
// again: its credentials or its clock refused): one step every interval
// goes, as a probe, and the others wait, so that a worker with a wrong
// secret does not send the provider a refused request for every order it
// holds (dozens a minute, which a gateway may answer by throttling or
// locking the key). held reports the kind and reason of the problem that
// holds it. A probe that succeeds clears the problem (Clear): every step
// goes again.
func (p *Problems) Probe(provider string, interval time.Duration, kinds ...string) (held bool, kind, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	for _, k := range kinds {
		cur, ok := p.seen[[2]string{provider, k}]
		if !ok || now.Sub(cur.last) > problemTTL {
			continue
		}
		if last, ok := p.probed[provider]; ok && now.Sub(last) < interval {
			return true, k, cur.reason
		}
		if p.probed == nil {
			p.probed = map[string]time.Time{}
		}
		p.probed[provider] = now
		return false, "", ""
	}
	return false, "", ""
}

// Clear forgets the provider's problems of the given kinds (a call with
// the same configuration succeeded).
func (p *Problems) Clear(provider string, kinds ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.seen) == 0 {
		return
	}
	for _, kind := range kinds {
		delete(p.seen, [2]string{provider, kind})
	}
}

type wentKey struct {
	provider string
	step     order.Step
}

// wentCalls are the calls of one provider's step lately (Problems.went).
type wentCalls struct {
	last          time.Time // when the latest call that went through began
	went, refused decayed   // calls that went through; refused for the credentials
	// byOrder is, for each order refused lately, its own refusals.
	byOrder map[string]*orderRefusals
}

// orderRefusals are one order's refusals of a step lately.
type orderRefusals struct {
	n    decayed
	last time.Time // when its latest refused call began
}

// decayed is a count whose past counts halve every refusalHalfLife.
type decayed struct {
	n  float64
	at time.Time
}

// value is the count at now.
func (d *decayed) value(now time.Time) float64 {
	if d.at.IsZero() {
		return 0
	}
	return d.n * math.Exp2(-float64(now.Sub(d.at))/float64(refusalHalfLife))
}

func (d *decayed) add(now time.Time) { d.n, d.at = d.value(now)+1, now }

func (p *Problems) calls(provider string, step order.Step) *wentCalls {
	if p.went == nil {
		p.went = map[wentKey]*wentCalls{}
	}
	k := wentKey{provider, step}
	c := p.went[k]
	if c == nil {
		c = &wentCalls{byOrder: map[string]*orderRefusals{}}
		p.went[k] = c
	}
	return c
}

// Went records that a call of provider's step, begun at began (this
// process's clock), went through.
func (p *Problems) Went(provider string, step order.Step, began time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.calls(provider, step)
	c.went.add(p.now())
	if began.After(c.last) {
		c.last = began
	}
}

// OthersWent counts a call of provider's step for order orderNo, begun at
// began, that the provider refused for its credentials (not its clock, nor
// its account), and reports whether the refusal is the order's own
// (order.Outcome.OthersWent): refusals of other orders have been rare
// among the step's calls lately (under refusedShare, weighed over about
// refusalHalfLife), and another call of the step went through that began
// after began less othersWentSlack and after this order's previous
// refusal. The slack lets a call begun just before count (calls take
// about as long, and one begun just after would often end after the
// refusal is judged); a call that went through after the order's previous
// refusal counts however long ago (a worker sending the provider few
// orders); but no call counts for two refusals of one order, so that a
// key revoked at T costs an order whose call began within the slack after
// T one failure of its budget at most, however quiet the worker.
//
// The share keeps a refusal that comes and goes (a key revoked on some of
// the provider's servers before others, a token another deployment keeps
// replacing) a configuration problem, which holds the orders unchanged,
// rather than the orders' own, which spends their failure budgets.
func (p *Problems) OthersWent(provider string, step order.Step, orderNo string, began time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.calls(provider, step)
	now := p.now()
	c.refused.add(now)
	o := c.byOrder[orderNo]
	if o == nil {
		if len(c.byOrder) >= maxRefusedOrders {
			for no, x := range c.byOrder {
				if now.Sub(x.last) > 10*refusalHalfLife {
					delete(c.byOrder, no)
				}
			}
		}
		o = &orderRefusals{}
		if len(c.byOrder) < maxRefusedOrders {
			c.byOrder[orderNo] = o
		}
	}
	since := began.Add(-othersWentSlack)
	if !o.last.IsZero() {
		since = o.last
	}
	o.n.add(now)
	o.last = began
	went, others := c.went.value(now), max(c.refused.value(now)-o.n.value(now), 0)
	return others < refusedShare*(went+others) && c.last.After(since)
}

// maxRefusedOrders bounds the orders OthersWent remembers per provider and
// step.
const maxRefusedOrders = 1024

const (
	// othersWentSlack is how long before a refused call another that
	// went through may have begun and still show that the provider took
	// the worker's credentials (OthersWent).
	othersWentSlack = 5 * time.Second
	// refusedShare is the share of a step's calls lately refused for the
	// credentials under which a refusal may be an order's own.
	refusedShare = 0.05
	// refusalHalfLife is how fast past calls weigh less in that share.
	refusalHalfLife = 30 * time.Second
)

// Err describes the current problems but those of the kinds except, nil
// when there are none.
func (p *Problems) Err(except ...string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	var msgs []string
	for k, v := range p.seen {
		if now.Sub(v.last) <= problemTTL && !slices.Contains(except, k[1]) {
			msgs = append(msgs, fmt.Sprintf("%s: %s: %s", k[0], k[1], v.reason))
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	slices.Sort(msgs)
	return errors.New("orders held back by configuration: " + strings.Join(msgs, "; "))
}

// Describe implements prometheus.Collector.
func (p *Problems) Describe(ch chan<- *prometheus.Desc) { ch <- p.desc }

// Collect implements prometheus.Collector.
func (p *Problems) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	for k, v := range p.seen {
		if now.Sub(v.last) <= problemTTL {
			ch <- prometheus.MustNewConstMetric(p.desc, prometheus.GaugeValue, 1, k[0], k[1])
		}
	}
}
