package guard

import (
	"sync"
	"time"
)

// adaptive is the rate of requests this process allows itself to one
// provider once the provider throttled them: none until then. Requests go
// evenly spaced under it (Transport), each waiting for its place as long
// as its deadline allows, so that a process settles a little under what
// the provider lets through, as TCP's congestion control and the adaptive
// retry mode of cloud SDKs do: neither sending on what the provider
// refuses (half of all requests throttled, in a black-box run against a
// gateway's flow control, without a limit set) nor stopping every call a
// while and sending them all at once when the wait ends.
//
// Throttles of most requests (adaptiveMost of adaptiveTrialMin or more in
// the last second, failures counted with them; or adaptiveMostRun answers
// in a row) cut the rate at once, to adaptiveCut of the rate in force
// (none: of what was sent, at most what was not refused, at least
// adaptiveTrialMin). Throttles of a share of them (adaptiveShare or more)
// start a trial, since a provider may throttle a share of requests
// whatever the pace (injected faults, a quota others fill), which a cut
// cannot help: the share of answers refused is counted over a span at the
// pace as it is (the last second, when it holds answers enough), the rate
// is cut, and the share counted again over a span at the rate cut. A
// limit of the pace lets through as many requests as before, so refuses a
// larger part of fewer requests less (1-(1-r)/adaptiveCut of them, for r
// before); throttles whatever the pace refuse the same share. The cut is
// kept when the share after it is nearer the first, and the next cut
// follows at once while it is still throttled; else it is undone (the
// rate before the cuts not yet shown to be the pace's comes back) and the
// throttled share counts as the provider's noise for adaptiveNoiseFor:
// only a share adaptiveShare above it starts a trial. Without trials, a
// tenth of requests throttled whatever the pace cut a process to about
// five requests a second, and a fifth to one or two, whatever the
// provider took. The rate rises by adaptiveGrowth a second while requests
// use it all, no trial is under way and no Retry-After holds them, and is
// dropped adaptiveForget after the last cut.
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
	// throttles reported, failures the failures, answers the other
	// answers.
	sent, throttles, failures, answers window
	// refused counts the throttles and failures, thr the throttles, and
	// all every answer, since the process began.
	refused, thr, all int64
	// run counts the answers refused in a row.
	run int
	// busy is when answers began to come after a second or more without
	// one; last, the last answer.
	busy, last time.Time
	// restore is the rate an undone cut restores: the one in force
	// before the cuts since the last one shown to be the pace's
	// (untested: a cut since was not).
	restore  float64
	untested bool
	// trial is the test under way, if any (see adaptive).
	trial trial
	// noise is a share of requests the provider throttles whatever the
	// pace (0: none known), judged at noiseAt.
	noise   float64
	noiseAt time.Time
	// undone: a cut was undone, not yet reported (undoneShare).
	undone bool
}

// trial is a test of whether the throttles are the pace's: the share of
// answers refused (throttles and failures) over a span at the pace before
// a cut (trialBefore), then over a span at the rate cut (trialAfter).
type trial struct {
	phase int
	// started is set when the span began (from), with the counts then.
	started              bool
	from                 time.Time
	refused0, thr0, all0 int64
	need                 int64   // answers the span needs
	refused, share       float64 // the span before's shares refused and throttled
}

const (
	trialNone = iota
	trialBefore
	trialAfter
)

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
	// have been throttled for a throttle to start a trial.
	adaptiveShare = 0.1
	// adaptiveMin is the lowest rate a cut sets, requests a second.
	adaptiveMin = 0.5
	// adaptiveFew: fewer throttles than this in the last second start
	// nothing unless adaptiveMost or more of its requests were throttled.
	adaptiveFew = 2
	// adaptiveMost: this share of adaptiveTrialMin requests or more
	// throttled in the last second cuts at once, without a trial.
	adaptiveMost = 0.5
	// adaptiveMostRun answers refused in a row, at a pace where the last
	// second holds fewer than adaptiveTrialMin, count as most.
	adaptiveMostRun = 8
	// A trial's span lasts adaptiveTrialSpan or more, and holds
	// adaptiveTrialMin answers or more and about adaptiveTrialRefused
	// refusals at the share that started it, or that many refusals seen;
	// one that has not in adaptiveTrialMax ends.
	adaptiveTrialSpan    = time.Second
	adaptiveTrialMin     = 20
	adaptiveTrialRefused = 10
	adaptiveTrialMax     = 30 * time.Second
	adaptiveTrialNone    = 3
	// adaptiveNoiseFor is how long a share found to be the provider's
	// noise is kept.
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
	if a.rate > 0 && !a.inForce(now) {
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
	a.note(now, true)
	a.thr++
	if a.step(now) {
		return true
	}
	if now.Before(a.calm) {
		// Of the burst the last cut answered: requests under way then,
		// or sent before its Retry-After ended.
		return false
	}
	// Each throttle answered a request sent, whatever the count says (a
	// call longer than a second).
	throttles := a.throttles.lastSecond(now)
	sent := max(a.sent.lastSecond(now), throttles)
	share := float64(throttles) / float64(sent)
	if share < adaptiveShare+a.noise {
		// A throttle now and then, not the rate's.
		return false
	}
	if throttles < adaptiveFew && share < adaptiveMost {
		// One or two throttles say nothing of a share.
		return false
	}
	inForce := a.inForce(now)
	ref := throttles + a.failures.lastSecond(now)
	if sent = max(sent, ref); float64(ref)/float64(sent) >= adaptiveMost && (sent >= adaptiveTrialMin || a.run >= adaptiveMostRun) {
		// Most requests refused (throttled, or shed as failures
		// beside throttles), of enough to tell: the pace's, cut now.
		base := a.rate
		if !inForce {
			// What was sent, but no more than was not refused (after
			// an undone cut, a burst at no rate: cut from it, a rate
			// took a second a step to come down to a flow control's),
			// nor less than adaptiveTrialMin (a burst all refused, or
			// a moment's outage beside a throttle, is no measure).
			base = min(float64(sent), max(float64(sent-ref)/(1-adaptiveShare), adaptiveTrialMin))
		}
		a.trial.phase = trialNone
		a.untested = false
		a.cutTo(now, base)
		return true
	}
	if a.trial.phase != trialNone {
		return false
	}
	// A share of the requests: whether they are the pace's is tried
	// (see adaptive).
	ok := a.answers.lastSecond(now)
	if a.noise == 0 && int64(ref+ok) >= need(share) && now.Sub(a.busy) >= adaptiveTrialSpan {
		// The last second is span enough, before any share was found
		// to be the provider's noise (a share a little over it would
		// be the last second's only because it started the trial).
		a.trialCut(now, float64(ref)/float64(ref+ok), share)
		return true
	}
	a.trial = trial{phase: trialBefore, need: need(share)}
	return false
}

// note counts an answer at now (refused: a throttle or a failure), and
// forgets a noise share past adaptiveNoiseFor. a.mu held.
func (a *adaptive) note(now time.Time, refused bool) {
	if now.Sub(a.last) >= time.Second {
		a.busy = now
	}
	a.last = now
	if a.noise > 0 && now.Sub(a.noiseAt) >= adaptiveNoiseFor {
		a.noise = 0
	}
	a.all++
	if refused {
		a.refused++
		a.run++
	} else {
		a.run = 0
	}
}

// need is the answers a trial's span needs at a share of throttles:
// adaptiveTrialMin, and about adaptiveTrialRefused refusals.
func need(share float64) int64 {
	return max(adaptiveTrialMin, int64(adaptiveTrialRefused/max(share, 0.05)))
}

// step moves the trial under way on at an answer at now: whether it cut
// the rate. a.mu held.
func (a *adaptive) step(now time.Time) bool {
	t := &a.trial
	if t.phase == trialNone || now.Before(a.calm) {
		return false
	}
	if !t.started {
		t.started, t.from = true, now
		t.refused0, t.thr0, t.all0 = a.refused, a.thr, a.all
		return false
	}
	n := a.all - t.all0
	// After a cut, answers enough that throttles of its share at any
	// pace would have refused about adaptiveTrialNone of them, and none
	// refused, say as much as a whole span.
	none := t.phase == trialAfter && a.refused == t.refused0 && float64(n)*t.refused >= adaptiveTrialNone
	// Enough: the answers its share needs, or adaptiveTrialRefused
	// refusals among adaptiveTrialMin answers or more (a share larger
	// than the one that started it needs fewer).
	enough := n >= t.need || n >= adaptiveTrialMin && a.refused-t.refused0 >= adaptiveTrialRefused
	if (!enough && !none) || now.Sub(t.from) < adaptiveTrialSpan {
		if now.Sub(t.from) >= adaptiveTrialMax {
			// Too few answers to tell: nothing cut, or the cut
			// kept, as a cut of the pace (the rate may rise from it
			// before the next: an undo then going back to the rate
			// before it went back too far).
			t.phase, a.untested = trialNone, false
		}
		return false
	}
	refused := float64(a.refused-t.refused0) / float64(n)
	share := float64(a.thr-t.thr0) / float64(n)
	if t.phase == trialBefore {
		if share < adaptiveShare+a.noise {
			// Over the span, a throttle now and then.
			t.phase = trialNone
			return false
		}
		a.trialCut(now, refused, share)
		return true
	}
	t.phase = trialNone
	a.untested = false
	// What a limit of the pace would refuse at the rate cut (as many
	// let through as before), and what throttles of a share at any pace
	// would (the same share): nearer the first, the throttles are the
	// pace's.
	limit := max(0, 1-(1-t.refused)/adaptiveCut)
	if refused < (limit+t.refused)/2 {
		a.noise = 0
		if share >= adaptiveShare && n >= need(share) {
			// Still throttled at the rate cut: its span is the next
			// trial's before, and the rate is cut again.
			a.trialCut(now, refused, share)
			return true
		}
		return false
	}
	a.rate = a.restore
	// Places taken at the cut rate are given back (not a Retry-After's
	// hold); the second after is the restored pace's.
	a.next, a.calm = now, now.Add(adaptiveBurst)
	if a.held.After(now) {
		a.next = a.held
	}
	a.noise, a.noiseAt = min(max(t.share, share), adaptiveMost), now
	a.undone = true
	return false
}

// undoneShare reports a cut undone since the last call, and the share of
// requests then taken for the provider's noise.
func (a *adaptive) undoneShare() (float64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.undone {
		return 0, false
	}
	a.undone = false
	return a.noise, true
}

// trialCut cuts the rate in force (none: what was sent the last second)
// after a span before it refused and throttled these shares, and starts
// the trial's span after it. a.mu held.
func (a *adaptive) trialCut(now time.Time, refused, share float64) {
	inForce := a.inForce(now)
	base := float64(a.sent.lastSecond(now))
	if !a.untested || !inForce {
		a.restore = 0
		if inForce {
			a.restore = a.rate
		}
	}
	if inForce {
		base = a.rate
	}
	a.untested = true
	a.trial = trial{phase: trialAfter, need: need(share), refused: refused, share: share}
	a.cutTo(now, base)
}

// cutTo sets the rate to adaptiveCut of base (at least adaptiveMin). a.mu
// held.
func (a *adaptive) cutTo(now time.Time, base float64) {
	a.rate = max(adaptiveMin, adaptiveCut*base)
	a.cut, a.raised = now, now
	if a.next.Before(now) {
		a.next = now
	}
	a.calm = now.Add(adaptiveBurst)
	if a.next.After(a.calm) {
		a.calm = a.next // and until its Retry-After ends
	}
}

// answered notes an answer of the provider that was not a throttle (ok:
// nor a failure): whether it cut the rate (the end of a trial's span
// before a cut). While requests use the whole rate, it rises.
func (a *adaptive) answered(now time.Time, ok bool) (cut bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.note(now, !ok)
	if ok {
		a.answers.add(now)
	} else {
		a.failures.add(now)
	}
	cut = a.step(now)
	if a.rate == 0 {
		return cut
	}
	dt := now.Sub(a.raised)
	if dt <= 0 {
		return cut
	}
	a.raised = now
	if now.Before(a.calm) {
		// The last second still holds what was sent before the cut.
		return cut
	}
	if a.trial.phase != trialNone {
		// A trial measures the pace as it is.
		return cut
	}
	if !a.using(now) {
		// Not using it: no sign the provider would take more.
		return cut
	}
	if now.Before(a.held) {
		// A Retry-After holds requests back, not the rate: places
		// taken behind it say nothing of what the provider takes (a
		// rate raised on them rose a tenth a second without end, to
		// about a million a second in 300 s of throttles with a
		// Retry-After of a second).
		return cut
	}
	a.rate += max(a.rate*adaptiveGrowth, adaptiveStep) * min(dt, time.Second).Seconds()
	return cut
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

// inForce reports whether a rate is set and not yet dropped
// (adaptiveForget after the last cut). a.mu held.
func (a *adaptive) inForce(now time.Time) bool {
	return a.rate > 0 && now.Sub(a.cut) < adaptiveForget
}

// current is the rate now (0: none).
func (a *adaptive) current(now time.Time) float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rate > 0 && !a.inForce(now) {
		return 0
	}
	return a.rate
}
