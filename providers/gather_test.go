package providers_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
)

// Calls made while a run is under way share the next run, which starts
// when that one ends; each answer comes from a run that started after
// its call; one key's runs never overlap; other keys run beside them.
func TestGatherSharesTheNextRun(t *testing.T) {
	t.Parallel()
	var runs, inRun, overlap atomic.Int32
	release := make(chan struct{})
	var mu sync.Mutex
	var started []time.Time
	g := &providers.Gather[string, int, []int]{Run: func(ctx context.Context, key string, args []int) ([]int, error) {
		if inRun.Add(1) > 1 && key == "a" {
			overlap.Add(1)
		}
		defer inRun.Add(-1)
		mu.Lock()
		started = append(started, time.Now())
		mu.Unlock()
		n := runs.Add(1)
		if key == "a" && n == 1 {
			<-release // the first run of "a" is under way until released
		}
		return append([]int(nil), args...), nil
	}}
	ctx := context.Background()
	first := make(chan []int, 1)
	go func() { r, _ := g.Do(ctx, "a", 0); first <- r }()
	for runs.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// Another key is not held up by "a".
	if r, err := g.Do(ctx, "b", 100); err != nil || len(r) != 1 || r[0] != 100 {
		t.Fatalf(`Do("b") = %v, %v; want its own run at once`, r, err)
	}
	// Eight calls while the first run of "a" is under way.
	called := time.Now()
	var wg sync.WaitGroup
	answers := make([][]int, 8)
	for i := range answers {
		wg.Add(1)
		go func() { defer wg.Done(); answers[i], _ = g.Do(ctx, "a", i+1) }()
	}
	time.Sleep(50 * time.Millisecond) // all eight are waiting
	close(release)
	wg.Wait()
	if r := <-first; len(r) != 1 || r[0] != 0 {
		t.Errorf("first call's answer %v; want its run alone", r)
	}
	for i, r := range answers {
		if len(r) != 8 {
			t.Errorf("call %d answered %v; want the one run all eight share", i+1, r)
		}
	}
	if n := runs.Load(); n != 3 {
		t.Errorf("%d runs; want 3 (a, b, then one for the eight)", n)
	}
	mu.Lock()
	last := started[len(started)-1]
	mu.Unlock()
	if last.Before(called) {
		t.Errorf("the eight were answered by a run started before they called")
	}
	if overlap.Load() != 0 {
		t.Errorf("two runs of one key overlapped")
	}
}

// A caller whose context ends stops waiting; the run goes on for the rest.
func TestGatherCallerLeaves(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	g := &providers.Gather[string, int, int]{Run: func(ctx context.Context, key string, args []int) (int, error) {
		<-release
		if ctx.Err() != nil {
			return 0, errors.New("run cancelled with its first caller")
		}
		return len(args), nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	left := make(chan error, 1)
	go func() { _, err := g.Do(ctx, "k", 1); left <- err }()
	time.Sleep(20 * time.Millisecond)
	stays := make(chan int, 1)
	go func() { n, _ := g.Do(context.Background(), "k", 2); stays <- n }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-left; !errors.Is(err, context.Canceled) {
		t.Errorf("leaving caller got %v; want its context's end", err)
	}
	close(release)
	if n := <-stays; n != 1 {
		t.Errorf("waiting caller's run served %d calls; want its own (the next run)", n)
	}
}

// A panic in a run is its callers' error, not the process's end: the run
// goes on a goroutine of Gather's own, where nothing else recovers it.
func TestGatherRunPanicIsAnError(t *testing.T) {
	t.Parallel()
	g := &providers.Gather[string, int, int]{Run: func(ctx context.Context, key string, args []int) (int, error) {
		if args[0] == 1 {
			panic("boom")
		}
		return len(args), nil
	}}
	if _, err := g.Do(context.Background(), "k", 1); providers.CodeOf(err) != providers.Unavailable || !strings.Contains(err.Error(), "boom") {
		t.Errorf("Do with a panicking run = %v; want unavailable naming the panic", err)
	}
	if n, err := g.Do(context.Background(), "k", 2); err != nil || n != 1 {
		t.Errorf("Do after the panic = %d, %v; want a run of its own", n, err)
	}
}

// A caller whose context ends while its run has not started (queued behind
// a run under way for others) ends Queued; one whose own run was under way
// (started at its call) ends with its context's error alone: that run was
// slow to it, as a call of its own would have been.
func TestGatherQueuedOnlyBeforeItsRunStarts(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	g := &providers.Gather[string, int, int]{Run: func(ctx context.Context, key string, args []int) (int, error) {
		<-release
		return len(args), nil
	}}
	defer close(release)
	own, cancelOwn := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelOwn()
	ownErr := make(chan error, 1)
	go func() { _, err := g.Do(own, "k", 1); ownErr <- err }()
	time.Sleep(10 * time.Millisecond) // the first run is under way
	behind, cancelBehind := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancelBehind()
	_, err := g.Do(behind, "k", 2)
	if !errors.Is(err, context.DeadlineExceeded) || !providers.Queued(err) {
		t.Errorf("caller queued behind a run under way = %v (queued %v); want its context's error, queued", err, providers.Queued(err))
	}
	err = <-ownErr
	if !errors.Is(err, context.DeadlineExceeded) || providers.Queued(err) {
		t.Errorf("caller whose own run was under way = %v (queued %v); want its context's error, not queued", err, providers.Queued(err))
	}
}
