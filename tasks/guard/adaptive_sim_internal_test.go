package guard

import (
	"container/heap"
	"math/rand"
	"testing"
	"time"
)

const (
	evTry = iota
	evSend
	evAnswer
)

type ev struct {
	at   time.Time
	kind int
	thr  bool
	seq  int
}
type evq []ev

func (q evq) Len() int { return len(q) }
func (q evq) Less(i, j int) bool {
	if q[i].at.Equal(q[j].at) {
		return q[i].seq < q[j].seq
	}
	return q[i].at.Before(q[j].at)
}
func (q evq) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *evq) Push(x any)   { *q = append(*q, x.(ev)) }
func (q *evq) Pop() any     { o := *q; x := o[len(o)-1]; *q = o[:len(o)-1]; return x }

type model interface {
	throttle(now time.Time, rng *rand.Rand) bool
}
type random float64

func (p random) throttle(_ time.Time, rng *rand.Rand) bool { return rng.Float64() < float64(p) }

type bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func (b *bucket) throttle(now time.Time, _ *rand.Rand) bool {
	if b.last.IsZero() {
		b.tokens = b.burst
	} else {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return false
	}
	return true
}

// simulate runs slots callers against a provider that answers after lat
// and throttles as m says, for d of simulated time, each caller sending
// again as soon as its answer comes, at the adaptive rate: the answers a
// second over the second half, and the share of requests throttled over
// the first 20 s.
func simulate(slots int, lat, d time.Duration, m model) (answers, throttledEarly float64) {
	var a adaptive
	rng := rand.New(rand.NewSource(1))
	start := time.Unix(1e9, 0)
	q := &evq{}
	seq := 0
	push := func(e ev) { seq++; e.seq = seq; heap.Push(q, e) }
	for range slots {
		push(ev{at: start, kind: evTry})
	}
	end := start.Add(d)
	half := start.Add(d / 2)
	var ok, sent, early, earlyThr int
	var now time.Time
	for q.Len() > 0 {
		e := heap.Pop(q).(ev)
		now = e.at
		if now.After(end) {
			break
		}
		switch e.kind {
		case evTry:
			wait, got := a.reserve(now, time.Second, 0)
			if !got {
				push(ev{at: now.Add(wait), kind: evTry})
			} else {
				push(ev{at: now.Add(wait), kind: evSend})
			}
		case evSend:
			a.sentNow(now)
			th := m.throttle(now, rng)
			if now.Before(start.Add(20 * time.Second)) {
				early++
				if th {
					earlyThr++
				}
			}
			if now.After(half) {
				sent++
			}
			push(ev{at: now.Add(lat), kind: evAnswer, thr: th})
		case evAnswer:
			if e.thr {
				a.throttled(now, 0)
			} else {
				a.answered(now)
				if now.After(half) {
					ok++
				}
			}
			push(ev{at: now, kind: evTry})
		}
	}
	secs := (d / 2).Seconds()
	return float64(ok) / secs, float64(earlyThr) / float64(max(early, 1))
}

// A provider that throttles a share of requests whatever the pace (a
// fault, a quota others fill) keeps this process's rate where it was: a cut
// that cost answers in proportion to the requests it cut is undone. Before,
// a tenth throttled at any pace cut the rate every second, to about five
// requests a second.
func TestThrottlesWhateverThePaceLeaveTheRate(t *testing.T) {
	t.Parallel()
	for _, p := range []float64{0.1, 0.2} {
		answers, _ := simulate(50, 50*time.Millisecond, 300*time.Second, random(p))
		if most := 50 / 0.05 * (1 - p); answers < 0.9*most {
			t.Errorf("%.0f %% of requests throttled at random: %.1f answers a second, want about %.0f", 100*p, answers, most)
		}
	}
}

// A provider that throttles for the pace (a token bucket) still has the
// process settle near its limit, with few requests throttled, from the
// start: the run the README reports (80 a second, burst 20, concurrency
// 10).
func TestAFlowControlStillSetsTheRate(t *testing.T) {
	t.Parallel()
	for _, lat := range []time.Duration{5 * time.Millisecond, 30 * time.Millisecond} {
		answers, early := simulate(10, lat, 60*time.Second, &bucket{rate: 80, burst: 20})
		if answers < 75 || early > 0.05 {
			t.Errorf("latency %s: %.1f answers a second (want about 80), %.3f of the first 20 s' requests throttled (want under 0.05)", lat, answers, early)
		}
	}
}
