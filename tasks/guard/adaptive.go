package guard

import (
	"sync"
	"time"
)

// adaptive is the rate of requests this process allows itself to one
// provider once the provider throttled them: none until then; at a
// throttle, when a tenth or more (adaptiveShare) of the last second's
// requests were throttled, cut to adaptiveCut of what the process sent in
// that second, later of the rate in force (at least adaptiveMin; a
// throttle before the last cut's burst calmed, cuts nothing more); while
// no throttle comes and requests use it all (each waits for its place),
// raised by adaptiveGrowth a second; and dropped adaptiveForget after the
// last cut. Requests go evenly spaced under it (Transport), each
// waiting for its place as long as its deadline allows. So a process
// settles a little under what the provider lets through, as TCP's
// congestion control and the adaptive retry mode of cloud SDKs do:
// neither sending on what the provider refuses (half of all requests
// throttled, in a black-box run against a gateway's flow control, without
// a limit set) nor stopping every call a while and sending them all at
// once when the wait ends (a tenth of what that gateway let through, in a
// run against the holds this replaced).
//
// A cut is judged at the next throttle that would cut again (within
// adaptiveJudge of it, requests using the rate, adaptiveJudgeMin answers or
// more in the second before it): a provider that throttles for the pace
// answers as many requests a second at the lower rate as before it (what
// its limit lets through), while one that throttles a share of requests
// whatever the pace (a fault, a quota others fill) answers fewer, in
// proportion. A cut that cost more than a share 1-adaptiveKeep of the
// answers is undone (the rate in force before it comes back), and the
// throttle share seen then counts as the provider's noise: only a share
// adaptiveShare above it cuts again, until a cut keeps the answers or
// adaptiveNoiseFor passes. Without this, throttles of a tenth of the requests
// at any pace cut the rate at every second until it settled at about five
// requests a second, whatever the provider took (a fifth: three). A single
// throttle in the last second cuts nothing (adaptiveFew) unless it was
// half its requests: at a few requests a second, where no cut can be
// judged, one in five would cut on.
type adaptive struct {
	mu     sync.Mutex
	rate   float64   // requests a second; 0: none
	next   time.Time // the earliest the next request may go
	cut    time.Time // the last cut
	calm   time.Time // throttles before this are of the last cut's burst
	raised time.Time // the last raise, or cut
	used   time.Time // the place the last request took
	held   time.Time // the end of the last Retry-After
	// sent counts the requests let go in the last second, throttles the
	// throttles reported, answered the other answers.
	sent, throttles, answers window
	// before is what held when the last cut came, until it is judged.
	before struct {
		rate    float64 // the rate in force (0: none)
		sent    float64 // requests a second before it (see paces)
		answers float64 // answers a second before it
		counted int     // answers in the second before it
		share   float64 // the share of requests throttled
		judged  bool
	}
	// noise is a share of requests the provider throttles whatever the
	// pace (0: none known), judged at noiseAt.
	noise   float64
	noiseAt time.Time
}

// window counts events in each adaptiveSlot of the last second (about:
// its ten slots cover 0.9 to 1 s before now), by
// slot index modulo adaptiveSlots, counted from base (set at its first
// use: with time.Now, whose readings carry the monotonic clock, a step of
// the wall clock moves no count); newest is the index of the newest slot
// counted.
type window struct {
	n      [adaptiveSlots]int
	base   time.Time
	newest int64
}

// slot is the index of now's slot (never below 0).
func (w *window) slot(now time.Time) int64 {
	if w.base.IsZero() {
		w.base = now.Add(-time.Hour)
	}
	return max(int64(now.Sub(w.base)/adaptiveSlot), 0)
}

// add counts an event at now.
func (w *window) add(now time.Time) {
	i := w.slot(now)
	if i > w.newest {
		for j := max(w.newest+1, i-adaptiveSlots+1); j <= i; j++ {
			w.n[j%adaptiveSlots] = 0
		}
		w.newest = i
	}
	if i > w.newest-adaptiveSlots {
		w.n[i%adaptiveSlots]++
	}
}

// oldest is the start of the oldest slot of the last second that counted
// an event (now when none did).
func (w *window) oldest(now time.Time) time.Time {
	i := w.slot(now)
	for j := max(w.newest-adaptiveSlots+1, i-adaptiveSlots+1, 0); j <= min(w.newest, i); j++ {
		if w.n[j%adaptiveSlots] > 0 {
			return w.base.Add(time.Duration(j) * adaptiveSlot)
		}
	}
	return now
}

// paces is the requests sent and the answers a second over the last
// second, or over the part of it since requests were sent, when they began
// later (a burst after a quiet spell: its count over a whole second would
// understate its pace).
func (a *adaptive) paces(now time.Time) (sent, answers float64) {
	span := min(max(now.Sub(a.sent.oldest(now)), adaptiveSlot), time.Second).Seconds()
	return float64(a.sent.lastSecond(now)) / span, float64(a.answers.lastSecond(now)) / span
}

// lastSecond is how many events were counted in the second before now.
func (w *window) lastSecond(now time.Time) int {
	i := w.slot(now)
	n := 0
	for j := max(w.newest-adaptiveSlots+1, i-adaptiveSlots+1, 0); j <= min(w.newest, i); j++ {
		n += w.n[j%adaptiveSlots]
	}
	return n
}

const (
	// adaptiveCut is the share of the rate in force (at the first cut,
	// of what was sent the second before) that a cut leaves.
	adaptiveCut = 0.7
	// adaptiveGrowth is the share by which the rate rises a second while
	// requests use it all and no throttle comes (at least adaptiveStep a
	// second).
	adaptiveGrowth = 0.1
	adaptiveStep   = 1.0
	// adaptiveShare is the share of the last second's requests that must
	// have been throttled for a throttle to cut the rate.
	adaptiveShare = 0.1
	// adaptiveMin is the lowest rate a cut sets, requests a second.
	adaptiveMin = 0.5
	// adaptiveFew: fewer throttles than this in the last second cut only
	// when adaptiveNoiseMax or more of its requests were throttled.
	adaptiveFew = 2
	// adaptiveJudge: a cut is judged at a throttle this soon after it
	// (see adaptive), on adaptiveJudgeMin answers or more in the second
	// before it; one that kept less than adaptiveKeep of them is undone.
	adaptiveJudge    = 10 * time.Second
	adaptiveJudgeMin = 10
	adaptiveKeep     = 0.85
	// adaptiveLost: a cut is undone only when the share of answers it
	// kept is within adaptiveLost of the share of requests it kept, and
	// its inverse: answers that fell further than the requests did say
	// the second before it held a burst the provider let through once.
	adaptiveLost = 0.75
	// adaptiveNoiseMax: a cut made when this share or more of the
	// requests were throttled is never undone (throttles of most requests
	// are the pace's, whatever the answers), nor is a share over it taken
	// for the provider's noise; adaptiveNoiseFor is how long the noise is
	// kept (a cut undone wrongly costs at most that long at the rate
	// before it).
	adaptiveNoiseMax = 0.5
	adaptiveNoiseFor = 30 * time.Second
	// adaptiveBurst: throttles this soon after a cut are of the burst
	// that cut it (requests under way when it came), and cut nothing more.
	adaptiveBurst = time.Second
	// adaptiveForget is how long after the last cut the rate is
	// dropped: the provider's limit may have been a moment's.
	adaptiveForget = 5 * time.Minute
	// maxRetryAfter bounds how far ahead a provider's Retry-After puts
	// the next request.
	maxRetryAfter = 30 * time.Second

	adaptiveSlot  = 100 * time.Millisecond
	adaptiveSlots = 10
)

// reserve takes the place of a request that may wait up to maxWait, or,
// when the interval between two requests at the rate is longer, up to it
// within stretch (a read, so that a lookup's later pages find a place at
// a rate under one a second; 0 for none): how long it waits (0: it goes
// now), and whether its place was taken; when not, the wait is how long
// until one would be free.
func (a *adaptive) reserve(now time.Time, maxWait, stretch time.Duration) (time.Duration, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rate > 0 && now.Sub(a.cut) >= adaptiveForget {
		a.rate = 0
	}
	if a.rate > 0 {
		if iv := time.Duration(float64(time.Second) / a.rate); iv > maxWait {
			maxWait = max(maxWait, min(iv, stretch))
		}
	}
	at := a.next
	if at.Before(now) {
		at = now
	}
	wait := at.Sub(now)
	if wait > maxWait {
		return wait, false
	}
	if a.rate > 0 {
		a.next = at.Add(time.Duration(float64(time.Second) / a.rate))
	}
	a.used = at
	return wait, true
}

// sentNow counts a request sent at now.
func (a *adaptive) sentNow(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sent.add(now)
}

// throttled notes the provider's throttling of a request, after being the
// wait it asked for (0: none): whether it cut the rate.
func (a *adaptive) throttled(now time.Time, after time.Duration) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if after > 0 {
		t := now.Add(min(after, maxRetryAfter))
		if t.After(a.next) {
			a.next = t
		}
		if t.After(a.held) {
			a.held = t
		}
	}
	a.throttles.add(now)
	if now.Before(a.calm) {
		// Of the burst the last cut answered: requests under way then,
		// or sent before its Retry-After ended.
		return false
	}
	// Each throttle answered a request sent, whatever the count says (a
	// call longer than a second).
	throttles := a.throttles.lastSecond(now)
	sent := max(a.sent.lastSecond(now), throttles)
	if a.noise > 0 && now.Sub(a.noiseAt) >= adaptiveNoiseFor {
		a.noise = 0
	}
	share := float64(throttles) / float64(sent)
	if share < adaptiveShare+a.noise {
		// A throttle now and then, not the rate's: a provider that
		// throttles a few requests whatever the pace (a shared quota
		// others fill) would have the rate cut at each, to nothing.
		return false
	}
	if throttles < adaptiveFew && share < adaptiveNoiseMax {
		// One or two throttles say nothing of a share: at a few
		// requests a second, one throttled request in five is a fifth,
		// and a provider throttling a fifth of all requests whatever
		// the pace cut the rate at nearly every second, down to a few a
		// second, where no cut has answers enough to be judged.
		return false
	}
	inForce := a.rate > 0 && now.Sub(a.cut) < adaptiveForget
	sentPace, answerPace := a.paces(now)
	if inForce && !a.before.judged && now.Sub(a.cut) < adaptiveJudge && a.before.counted >= adaptiveJudgeMin && a.using(now) {
		// The last cut, judged (see adaptive): requests use the rate.
		a.before.judged = true
		paced, kept := sentPace/a.before.sent, answerPace/a.before.answers
		if kept < adaptiveKeep && kept >= adaptiveLost*paced && kept <= paced/adaptiveLost &&
			a.before.share < adaptiveNoiseMax && share < a.before.share+adaptiveShare {
			// It cost answers in proportion to the requests it cut:
			// the throttles are not the pace's.
			a.rate = a.before.rate
			a.noise, a.noiseAt = min(max(a.before.share, share), adaptiveNoiseMax), now
			return false
		}
		a.noise = 0
	}
	// The rate in force, cut (as TCP cuts its window); the first, from
	// what was sent: a quiet second (this process waiting out a
	// Retry-After, a slow call) says nothing of what the provider takes.
	base := float64(sent)
	a.before.rate = 0
	if inForce {
		base = a.rate
		a.before.rate = a.rate
	}
	a.before.sent, a.before.answers, a.before.counted = sentPace, answerPace, a.answers.lastSecond(now)
	a.before.share, a.before.judged = share, false
	a.rate = max(adaptiveMin, adaptiveCut*base)
	a.cut, a.raised = now, now
	if a.next.Before(now) {
		a.next = now
	}
	a.calm = now.Add(adaptiveBurst)
	if a.next.After(a.calm) {
		a.calm = a.next // and until its Retry-After ends
	}
	return true
}

// answered notes an answer of the provider that was not a throttle (ok:
// nor a failure; only those count as answers when a cut is judged): while
// requests use the whole rate, it rises.
func (a *adaptive) answered(now time.Time, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ok {
		a.answers.add(now)
	}
	if a.rate == 0 {
		return
	}
	dt := now.Sub(a.raised)
	if dt <= 0 {
		return
	}
	a.raised = now
	if now.Before(a.calm) {
		// The last second still holds what was sent before the cut.
		return
	}
	if !a.using(now) {
		// Not using it: no sign the provider would take more.
		return
	}
	if now.Before(a.held) {
		// A Retry-After holds requests back, not the rate: places
		// taken behind it say nothing of what the provider takes (a
		// rate raised on them rose a tenth a second without end, to
		// about a million a second in 300 s of throttles with a
		// Retry-After of a second).
		return
	}
	a.rate += max(a.rate*adaptiveGrowth, adaptiveStep) * min(dt, time.Second).Seconds()
}

// using reports whether requests use the rate in force: one took a place
// within the last two intervals (so that the next place, an interval after
// it, is at most one interval behind now). Not a.next, which a Retry-After
// puts ahead whether or not anything waits for it. a.mu held; the rate is
// in force.
func (a *adaptive) using(now time.Time) bool {
	iv := time.Duration(float64(time.Second) / a.rate)
	return !a.used.IsZero() && !a.used.Before(now.Add(-2*iv))
}

// current is the rate now (0: none).
func (a *adaptive) current(now time.Time) float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rate > 0 && now.Sub(a.cut) >= adaptiveForget {
		return 0
	}
	return a.rate
}
