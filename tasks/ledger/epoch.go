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
// were lost with it. After such a loss, for a window from when it was
// found, every order not final is looked at once for it, at its first step
// since (BeginArgs.LookFirst): one about to be created is looked up at the
// provider first, as one whose record a failover lost is (ClaimLost), and
// any other step takes its last create, and a pending order's pay, as
// sent when the loss was found, so that a lookup's not-found or a pay
// again waits the listing lag from then.
//
// Each shard holds an epoch hash: "id", drawn by the first process to find
// it missing; "g:PID", each watching process's own count (Watch), with
// "t:PID", when it last counted (a create's or a pay's mark counts it
// too: Begin); "lost", the time (ms, Redis's clock) from
// which records may stand for orders created before a loss, and "found",
// when the loss was recorded. A process that saw the shard's id and finds
// another, or none, saw every key go; one that finds its own count lower
// than one it wrote and the replicas acknowledged saw the shard go back to
// an older state (its own count: another process's, counted since, cannot
// hide it). Either writes lost: its last reading before the loss, less
// lossClockMargin. A process that starts after a loss, with no process
// running across it, cannot tell it from a new ledger: that loss goes
// unnoticed.

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

// raise raises shard i's acknowledged count to at least g.
func (e *epochs) raise(i int, g int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if st, ok := e.by[i]; ok && st.id != "" && g > st.gen {
		st.gen = g
		e.by[i] = st
	}
}

func (e *epochs) set(i int, s epochState) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.by == nil {
		e.by = map[int]epochState{}
	}
	e.by[i] = s
}

// watchScript reads a shard's epoch (KEYS[1]) and counts this process's
// own count in it (g:ARGV[5], with t:ARGV[5] when it was last counted),
// drawing its id (ARGV[1]) when it is missing, and records ARGV[3] as
// lost, and now as found, when ARGV[2] is '1' unless a later loss is
// recorded. Counts of processes not seen for a day go, once the hash holds
// many. Replies {id, this process's count, now (ms)}.
var watchScript = redis.NewScript(`
redis.call('HSETNX', KEYS[1], 'id', ARGV[1])
local gen = redis.call('HINCRBY', KEYS[1], 'g:' .. ARGV[5], 1)
local t = redis.call('TIME')
local now = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
redis.call('HSET', KEYS[1], 't:' .. ARGV[5], now)
if redis.call('HLEN', KEYS[1]) > 512 then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local k = all[i]
    if string.sub(k, 1, 2) == 't:' and (tonumber(all[i + 1]) or 0) < tonumber(now) - 86400000 then
      redis.call('HDEL', KEYS[1], k, 'g:' .. string.sub(k, 3))
    end
  end
end
local cur = redis.call('HMGET', KEYS[1], 'id', 'lost')
local lost = cur[2]
if ARGV[2] == '1' and (not lost or tonumber(lost) < tonumber(ARGV[3])) then
  lost = ARGV[3]
  redis.call('HSET', KEYS[1], 'lost', lost, 'found', now)
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
	var first error
	for i := range l.shards {
		// A shard that fails is reported; the others are read all the
		// same (one unread would check none of its orders).
		loss, err := l.watch(ctx, i, "")
		if err != nil && first == nil {
			first = err
		}
		if loss != nil {
			out = append(out, *loss)
		}
	}
	return out, first
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
		flag, at := "0", ""
		if lost {
			flag, at = "1", ms(since)
		}
		v, acked, err := l.run(ctx, watchScript, true, []string{sh.epochKey()}, uuid.NewString(), flag, at, "", l.pid)
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
	if loss == nil {
		// A mark's count acknowledged meanwhile (Begin) is kept.
		st.gen = max(st.gen, l.epochs.get(i).gen)
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
