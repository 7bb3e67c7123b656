package ledger

import (
	"context"
	"fmt"
	"strings"
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
// too: Begin), and "l:PID", the last loss its reading found (found and
// recorded in the reading's own script, so that a reply lost or a script
// run twice hides none); "lost", the time (ms, Redis's clock) from
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

// IsEpochKey reports whether key is a shard's epoch hash, of any shard
// count: what a watching process writes first into a database emptied
// under it.
func IsEpochKey(key string) bool {
	tag, ok := strings.CutPrefix(key, "orderworker:{")
	tag, ok2 := strings.CutSuffix(tag, "}:epoch")
	return ok && ok2 && tag != "" && !strings.ContainsAny(tag, "{}:")
}

// epochState is what this process knows of one shard's epoch.
type epochState struct {
	id   string    // the id it last read ("" before its first reading)
	gen  int64     // the highest of its own counts it saw acknowledged
	good time.Time // Redis's clock at its last acknowledged reading with the data intact
	read time.Time // Redis's clock at its last reading, acknowledged or not
	// era counts the losses this process found: a count from a mark made
	// before one (Begin's raise) is not taken into the next.
	era int
	// reported is the loss (its l:PID value) this process last reported.
	reported string
}

type epochs struct {
	// watching: one watch of a shard at a time, so that a loss is
	// reported once (Ledger.New makes one per shard).
	watching []sync.Mutex
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

// raise raises shard i's acknowledged count to at least g, a count a mark
// made in era wrote.
func (e *epochs) raise(i, era int, g int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if st, ok := e.by[i]; ok && st.id != "" && st.era == era && g > st.gen {
		st.gen = g
		e.by[i] = st
	}
}

// update changes shard i's state with f, in one step against raise.
func (e *epochs) update(i int, f func(epochState) epochState) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.by == nil {
		e.by = map[int]epochState{}
	}
	e.by[i] = f(e.by[i])
}

// watchScript reads a shard's epoch (KEYS[1]), drawing its id (ARGV[1])
// when it is missing, and finds a loss in the same step: the id is not the
// one this process knows (ARGV[2]; empty when it knows none: no check), or
// this process's own count (g:ARGV[5]) is below the one it saw
// acknowledged (ARGV[3]). A loss is recorded as lost (ARGV[4]) and found
// (now) unless a later one is, and as l:ARGV[5] ("lost kind"), which every
// reply carries: a reply lost, or a script run twice (a client's retry),
// still tells this process of it. Only then is its count counted up (with
// t:ARGV[5], when). Counts of processes not seen for a day go, once the
// hash holds many. Replies {id, this process's count, now (ms), l:ARGV[5]}.
var watchScript = redis.NewScript(`
local t = redis.call('TIME')
local now = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local cur = redis.call('HMGET', KEYS[1], 'id', 'g:' .. ARGV[5], 'lost')
local id = cur[1]
if not id then
  id = ARGV[1]
  redis.call('HSET', KEYS[1], 'id', id)
end
local kind = ''
if ARGV[2] ~= '' then
  if id ~= ARGV[2] then
    kind = 'wiped'
  elseif (tonumber(cur[2] or '') or 0) < (tonumber(ARGV[3]) or 0) then
    kind = 'rolled_back'
  end
end
if kind ~= '' then
  if not cur[3] or tonumber(cur[3]) < tonumber(ARGV[4]) then
    redis.call('HSET', KEYS[1], 'lost', ARGV[4], 'found', now)
  end
  redis.call('HSET', KEYS[1], 'l:' .. ARGV[5], ARGV[4] .. ' ' .. kind)
end
local gen = redis.call('HINCRBY', KEYS[1], 'g:' .. ARGV[5], 1)
redis.call('HSET', KEYS[1], 't:' .. ARGV[5], now)
if redis.call('HLEN', KEYS[1]) > 512 then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local k = all[i]
    if string.sub(k, 1, 2) == 't:' and (tonumber(all[i + 1]) or 0) < tonumber(now) - 86400000 then
      local p = string.sub(k, 3)
      redis.call('HDEL', KEYS[1], k, 'g:' .. p, 'l:' .. p, 'u:' .. p)
    end
  end
end
return {id, tostring(gen), now, redis.call('HGET', KEYS[1], 'l:' .. ARGV[5]) or ''}
`)

// watchTimeout bounds Watch's reading of one shard: a shard whose master
// does not answer holds up none of the others.
const watchTimeout = 5 * time.Second

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
// replicas acknowledged). Begin notices one at each order step it checks
// (BeginArgs.LookFirst), for the next Watch to report.
func (l *Ledger) Watch(ctx context.Context) ([]Loss, error) {
	out := l.epochs.takeNoticed()
	var first error
	for i := range l.shards {
		// A shard that fails is reported; the others are read all the
		// same (one unread would check none of its orders).
		c, cancel := context.WithTimeout(ctx, watchTimeout)
		loss, err := l.watch(c, i)
		cancel()
		if err != nil && first == nil {
			first = err
		}
		if loss != nil {
			out = append(out, *loss)
		}
	}
	return out, first
}

// watch is Watch for shard i: it reports a loss this process had not
// reported yet, found by this reading or by one whose reply was lost.
func (l *Ledger) watch(ctx context.Context, i int) (*Loss, error) {
	l.epochs.watching[i].Lock()
	defer l.epochs.watching[i].Unlock()
	sh := &l.shards[i]
	st := l.epochs.get(i)
	known, since := "", ""
	if st.id != "" {
		// A loss counts from the last reading with the data intact: the
		// last acknowledged one, or, before any, the last (an id this
		// process read is checked, as Begin checks it, even one the
		// replicas had not acknowledged: a failover that loses it reads
		// as a loss, which only costs lookups).
		base := st.good
		if base.IsZero() {
			base = st.read
		}
		known, since = st.id, ms(base.Add(-lossClockMargin))
	}
	v, acked, err := l.run(ctx, watchScript, true, []string{sh.epochKey()}, uuid.NewString(), known, fmt.Sprint(st.gen), since, l.pid)
	if err != nil {
		return nil, fmt.Errorf("watch the ledger's epoch: %w", err)
	}
	res, _ := v.([]any)
	if len(res) < 4 {
		return nil, fmt.Errorf("watch the ledger's epoch: unexpected reply %v", v)
	}
	str := func(k int) string { s, _ := res[k].(string); return s }
	id, now, marker := str(0), msTime(str(2)), str(3)
	var gen int64
	_, _ = fmt.Sscan(str(1), &gen)
	var loss *Loss
	if marker != "" && marker != st.reported {
		at, kind, _ := strings.Cut(marker, " ")
		loss = &Loss{Shard: i, Since: msTime(at), Wiped: kind == "wiped"}
	}
	l.epochs.update(i, func(cur epochState) epochState {
		if loss != nil {
			// This process's count starts over from what the shard
			// holds now; marks made before the loss count no more.
			cur = epochState{era: cur.era + 1, reported: marker}
		}
		cur.id, cur.read = id, now
		if acked {
			// Only a count the replicas hold: a failover that loses one
			// they do not is no loss of anything acknowledged.
			cur.gen, cur.good = max(cur.gen, gen), now
		}
		return cur
	})
	return loss, nil
}

// epochArgs are Begin's epoch arguments for shard i: the id this process
// read ("" before it watched: no check), the window after a loss, and the
// highest count it wrote that the replicas acknowledged.
func (l *Ledger) epochArgs(i int, lookFirst time.Duration) (id, window, gen string, era int) {
	if lookFirst <= 0 {
		return "", "", "", 0
	}
	st := l.epochs.get(i)
	return st.id, fmt.Sprint(lookFirst.Milliseconds()), fmt.Sprint(st.gen), st.era
}

// lossFoundScript replies when a loss of the shard's data was found (its
// epoch's "found", ms; KEYS[1]) if within ARGV[1] ms of Redis's clock, ""
// otherwise.
var lossFoundScript = redis.NewScript(`
local found = tonumber(redis.call('HGET', KEYS[1], 'found') or '')
if not found then return '' end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now - found >= tonumber(ARGV[1]) then return '' end
return string.format('%.0f', found)
`)

// LossFoundWithin is when a loss of the data of ref's shard was found (by
// a Watch), if within window of now on Redis's clock; zero otherwise. A
// record missing then may have gone with the loss.
func (l *Ledger) LossFoundWithin(ctx context.Context, ref Ref, window time.Duration) (time.Time, error) {
	sh := l.shardOf(ref)
	v, err := lossFoundScript.Run(ctx, l.rdb, []string{sh.epochKey()}, window.Milliseconds()).Text()
	if err != nil {
		return time.Time{}, fmt.Errorf("read the ledger's epoch: %w", err)
	}
	if v == "" {
		return time.Time{}, nil
	}
	return msTime(v), nil
}
