package ledger

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// This file notices that Redis lost the ledger's data while a process was
// running on it: restarted without persistence (every key gone), or from
// an older snapshot or AOF (the last writes gone). Every record and task
// goes with the data, so a producer that resends an order it sent before
// gets a new record, and the order would be created a second time; and a
// roll-back restores records as they were before creates and pays that
// were lost with it. After such a loss, for a window, the orders recorded
// since it or restored by it are looked up at the provider before a create
// (BeginArgs.LookFirst), as one whose record a failover lost is
// (ClaimLost), and a restored order's pay counts as sent.
//
// Each shard holds an epoch hash: "id", drawn by the first process to find
// it missing; "gen", counted up by every watching process (Watch); "lost",
// the time (ms, Redis's clock) from which records may stand for orders
// created before a loss; and "lost_to", two minutes after it, before which
// a record last written may have been restored by a roll-back. A process
// that saw the shard's id and finds another, or none, saw every key go;
// one that finds gen lower than a count it wrote and the replicas
// acknowledged saw the shard go back to an older state. Either writes
// lost: its last reading before the loss, less lossClockMargin. A process
// that starts after a loss, with no process running across it, cannot
// tell it from a new ledger: that loss goes unnoticed.

// epochKey is a shard's epoch hash.
func (s *shard) epochKey() string { return s.prefix + "epoch" }

// epochState is what this process knows of one shard's epoch.
type epochState struct {
	id   string    // the id it last read ("" before its first reading)
	gen  int64     // the highest gen it read in an acknowledged write
	good time.Time // Redis's clock at its last reading with the data intact
}

type epochs struct {
	watching sync.Mutex // one watch at a time: a loss is reported once
	mu       sync.Mutex
	by       map[int]epochState
	// noticed are the losses Begin noticed, for the next Watch to report.
	noticed []Loss
}

func (e *epochs) notice(l Loss) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.noticed = append(e.noticed, l)
}

func (e *epochs) takeNoticed() []Loss {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.noticed
	e.noticed = nil
	return out
}

func (e *epochs) get(i int) epochState {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.by[i]
}

func (e *epochs) set(i int, s epochState) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.by == nil {
		e.by = map[int]epochState{}
	}
	e.by[i] = s
}

// watchScript reads and counts a shard's epoch (KEYS[1]), drawing its id
// (ARGV[1]) when it is missing, and records ARGV[3] as lost (ARGV[4] as
// lost_to) when ARGV[2] is '1' unless a later loss is recorded. Replies
// {id, gen, now (ms)}.
var watchScript = redis.NewScript(`
redis.call('HSETNX', KEYS[1], 'id', ARGV[1])
local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
local t = redis.call('TIME')
local now = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local cur = redis.call('HMGET', KEYS[1], 'id', 'lost')
local lost = cur[2]
if ARGV[2] == '1' and (not lost or tonumber(lost) < tonumber(ARGV[3])) then
  lost = ARGV[3]
  redis.call('HSET', KEYS[1], 'lost', lost, 'lost_to', ARGV[4])
end
return {cur[1], tostring(gen), now}
`)

// lossClockMargin is how much earlier than the last reading with the
// data intact a loss is taken to count from: a failover onto a master
// whose clock is behind the old one's stamps the records claimed on it
// earlier than that reading. A record from the minute before the loss
// that survived it (a roll-back) is looked up first for nothing.
const lossClockMargin = time.Minute

// Loss is a loss of a shard's data that a Watch noticed.
type Loss struct {
	Shard int
	// Since is the time from which records may stand for orders created
	// before the loss: this process's last reading of the shard with its
	// data intact, on Redis's clock, less lossClockMargin.
	Since time.Time
	// Wiped says every key went (the epoch's id was gone or another);
	// else the shard went back to an older state.
	Wiped bool
}

// Watch reads and counts every shard's epoch once, and reports the losses
// it noticed since the last Watch or Begin. Run it every few seconds: a
// shard that goes back to an older state is noticed only when that state
// is older than a count this process wrote (and, with durable writes, the
// replicas acknowledged). Begin notices a shard whose keys all went at
// the order's first create.
func (l *Ledger) Watch(ctx context.Context) ([]Loss, error) {
	out := l.epochs.takeNoticed()
	for i := range l.shards {
		loss, err := l.watch(ctx, i, "")
		if err != nil {
			return out, err
		}
		if loss != nil {
			out = append(out, *loss)
		}
	}
	return out, nil
}

// watch is Watch for shard i. stale is the epoch id a Begin found gone or
// replaced ("" from Watch): a loss if it is still the one this process
// knows (another Begin may have recorded it since), reported by the next
// Watch.
func (l *Ledger) watch(ctx context.Context, i int, stale string) (*Loss, error) {
	l.epochs.watching.Lock()
	defer l.epochs.watching.Unlock()
	sh := &l.shards[i]
	st := l.epochs.get(i)
	wiped := stale != "" && stale == st.id
	var loss *Loss
	run := func(lost bool, since time.Time) ([]any, bool, error) {
		flag, at, to := "0", "", ""
		if lost {
			// lost_to: a record last written before it may have been
			// restored by a roll-back (the state restored is older than
			// the last reading, and a new master's clock may be ahead).
			flag, at, to = "1", ms(since), ms(since.Add(2*lossClockMargin))
		}
		v, acked, err := l.run(ctx, watchScript, true, []string{sh.epochKey()}, uuid.NewString(), flag, at, to)
		if err != nil {
			return nil, false, fmt.Errorf("watch the ledger's epoch: %w", err)
		}
		res, _ := v.([]any)
		if len(res) < 3 {
			return nil, false, fmt.Errorf("watch the ledger's epoch: unexpected reply %v", v)
		}
		return res, acked, nil
	}
	res, acked, err := run(false, time.Time{})
	if err != nil {
		return nil, err
	}
	str := func(k int) string { s, _ := res[k].(string); return s }
	id, now := str(0), msTime(str(2))
	var gen int64
	_, _ = fmt.Sscan(str(1), &gen)
	if st.id != "" && !st.good.IsZero() {
		switch {
		case id != st.id || wiped:
			loss = &Loss{Shard: i, Since: st.good.Add(-lossClockMargin), Wiped: true}
		case gen <= st.gen:
			loss = &Loss{Shard: i, Since: st.good.Add(-lossClockMargin)}
		}
	}
	if loss != nil {
		// Recorded for every process, the latest loss kept; this
		// process's count starts over from what the shard holds now.
		if res, acked, err = run(true, loss.Since); err != nil {
			return nil, err
		}
		id, now = str(0), msTime(str(2))
		_, _ = fmt.Sscan(str(1), &gen)
		st = epochState{}
	}
	st.id = id
	if acked {
		// Only a count the replicas hold: a failover that loses one they
		// do not is no loss of anything acknowledged.
		st.gen, st.good = max(st.gen, gen), now
	}
	l.epochs.set(i, st)
	if loss != nil && wiped {
		l.epochs.notice(*loss)
		return nil, nil
	}
	return loss, nil
}

// epochArgs are Begin's epoch arguments for shard i: the id this process
// read ("" before it watched: no check), the window after a loss, and the
// highest count it wrote that the replicas acknowledged.
func (l *Ledger) epochArgs(i int, lookFirst time.Duration) (string, string, string) {
	if lookFirst <= 0 {
		return "", "", ""
	}
	st := l.epochs.get(i)
	return st.id, fmt.Sprint(lookFirst.Milliseconds()), fmt.Sprint(st.gen)
}
