package tasks

import (
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
)

// growStack grows the stack of the goroutine that calls it by its frame at
// least: the frame is not elided, and the growth happens there (once,
// while the stack is shallow) rather than deep in an order's step.
func TestGrowStackGrowsTheStack(t *testing.T) {
	stacks := func() uint64 {
		runtime.GC() // settles stack shrinking before the reading
		s := []metrics.Sample{{Name: "/memory/classes/heap/stacks:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	const n = 256
	run := func(grow bool) uint64 {
		var started, release sync.WaitGroup
		started.Add(n)
		release.Add(1)
		var done sync.WaitGroup
		before := stacks()
		for range n {
			done.Go(func() {
				if grow {
					growStack()
				}
				started.Done()
				release.Wait()
			})
		}
		started.Wait()
		after := stacks()
		release.Done()
		done.Wait()
		if after < before {
			return 0
		}
		return after - before
	}
	plain, grown := run(false), run(true)
	// Half its frame each, at least: a goroutine's stack may come from
	// the runtime's cache of dead goroutines' stacks, counted already.
	if grown < plain+n*stackFrame/2 {
		t.Errorf("%d goroutines' stacks took %d bytes more after growStack, %d without it: want at least %d more (half its frame, %d bytes, each)",
			n, grown, plain, n*stackFrame/2, stackFrame)
	}
}
