// Package fault injects failures into the providers' sandboxes, so tests can
// show what the worker does when a provider throttles, fails before or
// after creating an order, or hangs.
package fault

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// Kind is one injected failure.
type Kind string

const (
	// None: the call goes through.
	None Kind = ""
	// Throttle: the provider rejects the call as throttled; nothing is
	// created.
	Throttle Kind = "throttle"
	// FailBefore: a 5xx before the order is created.
	FailBefore Kind = "fail_before"
	// FailAfter: the order is created, then the answer is a 5xx.
	FailAfter Kind = "fail_after"
	// HangAfter: the order is created, then the answer never comes (until
	// the client gives up or the sandbox's hang limit passes).
	HangAfter Kind = "hang_after"
)

// Kinds lists every fault.
var Kinds = []Kind{Throttle, FailBefore, FailAfter, HangAfter}

// AfterCreate reports whether the fault strikes after the order exists.
func (k Kind) AfterCreate() bool { return k == FailAfter || k == HangAfter }

// Injector decides which fault, if any, the next call suffers: first from a
// script of upcoming faults, then at random by rate. The zero value injects
// nothing. It is safe for concurrent use.
type Injector struct {
	mu     sync.Mutex
	script []Kind
	rates  map[Kind]float64
	rng    *rand.Rand
	counts map[Kind]int
	// hang bounds HangAfter so a test never waits forever.
	hang time.Duration
}

// Script queues faults for the next create calls, in order (lookups are
// not affected).
func (i *Injector) Script(kinds ...Kind) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.script = append(i.script, kinds...)
}

// Reset drops the scripted faults not injected yet.
func (i *Injector) Reset() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.script = nil
}

// SetRates makes each following create call suffer fault k with
// probability rates[k], drawn from a generator seeded with seed.
func (i *Injector) SetRates(seed uint64, rates map[Kind]float64) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.rates = rates
	i.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// SetHangLimit bounds how long HangAfter holds a request (default 30s).
func (i *Injector) SetHangLimit(d time.Duration) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.hang = d
}

// Next returns the fault for the next call. Scripted faults strike create
// calls only, in order. Random faults strike any call, but calls that
// create nothing (lookups) only ever get Throttle or FailBefore.
func (i *Injector) Next(create bool) Kind {
	i.mu.Lock()
	defer i.mu.Unlock()
	if create && len(i.script) > 0 {
		k := i.script[0]
		i.script = i.script[1:]
		return i.count(k)
	}
	if i.rng == nil {
		return None
	}
	x := i.rng.Float64()
	for _, k := range Kinds {
		p := i.rates[k]
		if p <= 0 {
			continue
		}
		if x < p {
			if !create && k.AfterCreate() {
				return None
			}
			return i.count(k)
		}
		x -= p
	}
	return None
}

func (i *Injector) count(k Kind) Kind {
	if i.counts == nil {
		i.counts = map[Kind]int{}
	}
	i.counts[k]++
	return k
}

// Counts returns how many times each fault was injected.
func (i *Injector) Counts() map[Kind]int {
	i.mu.Lock()
	defer i.mu.Unlock()
	out := make(map[Kind]int, len(i.counts))
	for k, n := range i.counts {
		out[k] = n
	}
	return out
}

// Hang blocks until ctx is done or the hang limit passes.
func (i *Injector) Hang(ctx context.Context) {
	i.mu.Lock()
	d := i.hang
	i.mu.Unlock()
	if d <= 0 {
		d = 30 * time.Second
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
