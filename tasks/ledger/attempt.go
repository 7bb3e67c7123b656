package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// beginScript reads the record, refuses a finished or leased order, takes
// the lease and, when the next call creates the order, marks it in flight.
//
// KEYS: record, queued index, submitting index, the shard's epoch, its
// clock hold (see clockExpect; ARGV[14]). ARGV[8]: the create's
// target (BeginArgs.Target), recorded with a create's mark. ARGV: token, now (ms, for
// the record's updated time and index score; "" for Redis's TIME, see
// Options.Now), the lease's TTL (ms), '1' when a
// create needs the snapshot of known provider orders first ('2' when the
// step never creates: nothing is marked), order_no, '1'
// when the step is to pay a pending order: the pay is marked sent
// (pay_sent, lease_mark '2') unless one was less than ARGV[7] ms ago (on
// Redis's clock; -1: ever) or the provider accepted the last one
// (pay_accepted equal to pay_sent), and it leaves only on that mark. A
// pay's mark moves, as a create's last_create does, to when the pay
// ended by its settle, or, for a pay its run never settled, to when that
// run's lease ran out by the next Begin.
// Leases, the first create's time (first_attempt, which bounds lookups)
// and when a create left (last_create, against which
// the listing lag is judged; moved to when it ended by its settle, or, for
// a create its run never settled, to when that run's lease ran out by the
// next Begin), are on Redis's clock (TIME), the same for every worker
// whatever their own clocks say.
// Replies {'missing', time, step, hold}, {'terminal', fields, time},
// {'busy', lease_until, time, step, hold} or {'began', fields as read, '1'
// when a create is marked, '2' when a pay is, Redis's time (ms)}, with
// 'again' after them for this Begin again
// (its fields then as its first run left them). A pay's mark keeps the
// one it replaced in pay_before, for this Begin again to report.
var beginScript = redis.NewScript(`
local t = redis.call('TIME')
local snow = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local leaseUntil = string.format('%.0f', snow + tonumber(ARGV[3]))
local sn = string.format('%.0f', snow)
-- The clock hold (see clockExpect). KEYS[5] holds a step forward of this
-- master's clock recorded (by, until): while it holds, every lease and
-- listing lag is judged that much later (judge; the record carries the
-- hold as clock_hold). ARGV[14] is 'expect tolerance' (ms): the latest
-- this clock can read now had it kept pace with the process's clock since
-- the process last read it, '' for no reading. A clock later than that
-- by more than the tolerance stepped forward, or the request reached
-- Redis late: this Begin judges as if held by that much more (clock_step
-- in the reply), and the process records the step once its reply shows
-- the request was not late (Ledger.recordStep).
local hold, stepped = 0, ''
local ck = redis.call('HMGET', KEYS[5], 'by', 'until')
if ck[1] and snow < (tonumber(ck[2] or '') or 0) then hold = tonumber(ck[1]) or 0 end
local expect, tol = string.match(ARGV[14] or '', '^(%d+) (%d+)$')
if expect and snow > tonumber(expect) + tonumber(tol) then
  local by = snow - tonumber(expect)
  stepped = string.format('%.0f', by)
  hold = hold + by
end
local judge = snow - hold
local r = redis.call('HGETALL', KEYS[1])
if #r == 0 then return {'missing', sn, stepped, string.format('%.0f', hold)} end
local h = {}
for i = 1, #r, 2 do h[r[i]] = r[i + 1] end
if hold > 0 then
  r[#r + 1] = 'clock_hold'
  r[#r + 1] = string.format('%.0f', hold)
end
if stepped ~= '' then
  r[#r + 1] = 'clock_step'
  r[#r + 1] = stepped
end
local st = h['state']
if st == 'paid' or st == 'errored' then
  -- A write (of the same value), so that the WAIT after it covers the
  -- outcome as the master holds it: an outcome the replicas do not hold
  -- yet is not one to end a task on.
  redis.call('HSET', KEYS[1], 'state', st)
  return {'terminal', r, sn}
end
local upd = ARGV[2]
if upd == '' then upd = sn end
if h['lease'] == ARGV[1] then
  -- This Begin again (its reply was lost): a write (of the same value),
  -- so that the WAIT after it covers what the first one wrote.
  redis.call('HSET', KEYS[1], 'lease_until', h['lease_until'] or leaseUntil)
  local lf = h['lease_look'] or ''
  if lf ~= '' and string.sub(lf, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
    -- Its first run answered a look-first (below): so does this one.
    local lost, found = string.match(string.sub(lf, #ARGV[1] + 2), '^(%d+) (%d+)$')
    if lost then return {'began', r, '3', sn, lost, found, 'again'} end
  end
  return {'began', r, h['lease_mark'] or '0', sn, 'again'}
end
if (h['lease'] or '') ~= '' and (tonumber(h['lease_until'] or '0') or 0) > judge then
  return {'busy', h['lease_until'], sn, stepped, string.format('%.0f', hold)}
end
local paid = tonumber(h['pay_sent'] or '')
if paid and h['lease_mark'] == '2' and (h['lease_until'] or '') ~= '' then
  -- A pay marked by a run that never settled it (killed, its lease lost,
  -- its settle failed): it may have been open until that run's lease ran
  -- out, so the listing lag after it counts from then at the earliest.
  local lu = tonumber(h['lease_until']) or 0
  if lu > paid then
    paid = lu
    h['pay_sent'] = string.format('%.0f', lu)
    redis.call('HSET', KEYS[1], 'pay_sent', h['pay_sent'])
    r[#r + 1] = 'pay_sent'
    r[#r + 1] = h['pay_sent']
  end
end
-- lossToLook reads the shard's epoch (see epoch.go) when this process
-- watches it (ARGV[9] its id, ARGV[12] this process's own count field):
-- nil and the reply to return when the shard lost its data since this
-- process read it (its id gone or another, this process's count below
-- what it wrote); else, for a record made before the end of the window
-- (ARGV[10] ms) after a loss was found, or one run within it, the loss
-- (its lost time) and the latest a create or a pay lost with the data may
-- have ended (when the loss was found, plus ARGV[13] ms: a call under way
-- then ends within it), for a record not yet looked up for it, whatever
-- its step; false otherwise. A record made before the window's end is
-- judged so whenever it first runs: a resend a backlog, a breaker or a
-- rate limit holds past the window's end is still one of an order the
-- loss may have hidden (and one made before the loss, first run since,
-- costs a lookup, never a create twice).
local function lossToLook()
  local ep = redis.call('HMGET', KEYS[4], 'id', 'lost', 'g:' .. (ARGV[12] or ''), 'found')
  if ep[1] ~= ARGV[9] then return nil, nil, {'epoch'} end
  if (tonumber(ep[3] or '') or 0) < (tonumber(ARGV[11] or '') or 0) then return nil, nil, {'epoch', 'gen'} end
  local lost = tonumber(ep[2] or '')
  if not lost or (h['looked_first'] or '') == ep[2] then return false end
  local found = tonumber(ep[4] or '') or lost
  local made = tonumber(h['created'] or '') or snow
  if math.min(made, snow) >= found + tonumber(ARGV[10]) then return false end
  return ep[2], string.format('%.0f', found + (tonumber(ARGV[13] or '') or 0))
end
-- counted counts this process's own count in the epoch up with a create's
-- or a pay's mark (when it watches the shard): a roll-back that takes the
-- mark back takes the count back below what this process saw
-- acknowledged, which its next step or reading notices. Replies the count.
-- ARGV[15]: the listing lag (ms) this process judges the order with (see
-- mark_lag below).
local lagArg = tonumber(ARGV[15] or '') or 0
local function counted()
  if (ARGV[9] or '') == '' then return '' end
  -- t: alive, its count is kept; u: until when a call it marks now may
  -- be judged by the listing lag of this process (a step of the clock is
  -- held at least that long: recordStepScript): ARGV[16], the hold it
  -- asks for a step (BeginArgs.ClockHold: its longest lag, whatever the
  -- provider, and a call's tail), so that u: never goes back.
  local u = snow + math.max(lagArg, tonumber(ARGV[16] or '') or 0)
  redis.call('HSET', KEYS[4], 't:' .. ARGV[12], sn, 'u:' .. ARGV[12], string.format('%.0f', u))
  return tostring(redis.call('HINCRBY', KEYS[4], 'g:' .. ARGV[12], 1))
end
local creates = st == 'queued' or (st == 'submitting' and (h['inflight'] or '') == '')
if (ARGV[9] or '') ~= '' then
  local lost, found, reply = lossToLook()
  if reply then return reply end
  if lost and creates then
    -- A create, the snapshot before one, or a step that never creates
    -- (its deadline judged, say): the order is looked up first, nothing
    -- marked (the settle records the look, WithLookedFirst).
    -- lease_look: this Begin's answer, should its reply be lost and the
    -- same Begin come again.
    redis.call('HSET', KEYS[1], 'lease', ARGV[1], 'lease_until', leaseUntil, 'lease_mark', '0',
      'lease_look', ARGV[1] .. ' ' .. lost .. ' ' .. found)
    return {'began', r, '3', sn, lost, found}
  end
  if lost then
    -- Any other step (a lookup, a poll, a pay, an abandoned create): a
    -- create or a pay lost with the data may have left until the loss
    -- was found, so the listing lag counts from then for both: a
    -- lookup's not-found, and a pay again of a pending order whose pay
    -- the provider did not accept. Looked at once for that loss.
    local f = {'looked_first', lost}
    if (tonumber(h['last_create'] or '') or 0) < tonumber(found) then
      f[#f + 1] = 'last_create'
      f[#f + 1] = found
    end
    -- (Not an order found by matching: no worker pays one in the window
    -- after a loss, and a pay mark would say a worker paid it, which
    -- takes it for ours, found paid.)
    if st == 'pending' and (h['pay_accepted'] or '') == '' and (h['matched'] or '') ~= '1' and (paid or 0) < tonumber(found) then
      f[#f + 1] = 'pay_sent'
      f[#f + 1] = found
      paid = tonumber(found)
    end
    redis.call('HSET', KEYS[1], unpack(f))
    for i = 1, #f, 2 do
      h[f[i]] = f[i + 1]
      r[#r + 1] = f[i]
      r[#r + 1] = f[i + 1]
    end
  end
end
-- ARGV[15]: the listing lag (ms) this process judges the order with,
-- recorded with a create's or a pay's mark as mark_lag, the longest so
-- far: a pay again waits at least that long too, whatever this process's
-- own lag (BeginArgs.ListingLag).
local markLag = tonumber(h['mark_lag'] or '') or 0
local function lagField(f)
  if lagArg > markLag then
    f[#f + 1] = 'mark_lag'
    f[#f + 1] = string.format('%.0f', lagArg)
  end
  return f
end
local again = tonumber(ARGV[7] or '-1') or -1
if again >= 0 and markLag > again then again = markLag end
if ARGV[6] == '1' and st == 'pending' and (paid == nil or (again >= 0 and judge - paid >= again
    and (h['pay_accepted'] or '') ~= (h['pay_sent'] or ''))) then
  redis.call('HSET', KEYS[1], unpack(lagField({'lease', ARGV[1], 'lease_until', leaseUntil, 'lease_mark', '2', 'pay_sent', sn,
    'pay_before', h['pay_sent'] or '', 'pays', (tonumber(h['pays'] or '0') or 0) + 1})))
  return {'began', r, '2', sn, '', '', counted()}
end
-- A create that a lookup's not-found let go, a not-found seen sooner after
-- the last create (absent_lag) than this process's listing lag: the order
-- that create made may not have been listed yet, for this process. Nothing
-- is marked; the order is looked up again ('4'; lease_mark '4', so that
-- this Begin again answers the same). The lookup again records how long
-- after the last create it looked, at least this lag: no loop.
local absentLag = tonumber(h['absent_lag'] or '')
if creates and absentLag and lagArg > absentLag then
  redis.call('HSET', KEYS[1], 'lease', ARGV[1], 'lease_until', leaseUntil, 'lease_mark', '4')
  return {'began', r, '4', sn}
end
if creates and (ARGV[4] == '0' or (ARGV[4] == '1' and (h['known'] or '') ~= '')) then
  local first = h['first_attempt'] or ''
  if first == '' then first = sn end
  local f = {'lease', ARGV[1], 'lease_until', leaseUntil, 'lease_mark', '1',
    'inflight', (tonumber(h['attempts'] or '0') or 0) + 1, 'state', 'submitting',
    'first_attempt', first, 'last_create', sn, 'updated', upd}
  if (h['throttled_create'] or '') ~= '' and h['throttled_create'] == (h['last_create'] or '') then
    -- Every create before this one that may have been received was
    -- answered throttled (Transition.WithThrottledCreate): still so, this
    -- one under way (its settle says how it was answered).
    f[#f + 1] = 'throttled_create'
    f[#f + 1] = sn
  end
  if (h['look_only'] or '') ~= '' then
    -- A create of its own now: no longer an order only looked up.
    f[#f + 1] = 'look_only'
    f[#f + 1] = ''
  end
  if (ARGV[8] or '') ~= '' then
    -- Where this create goes (BeginArgs.Target): a lookup elsewhere
    -- proves nothing of it.
    f[#f + 1] = 'create_target'
    f[#f + 1] = ARGV[8]
  end
  redis.call('HSET', KEYS[1], unpack(lagField(f)))
  if st == 'queued' then
    redis.call('ZREM', KEYS[2], ARGV[5])
    redis.call('ZADD', KEYS[3], upd, ARGV[5])
  end
  return {'began', r, '1', sn, '', '', counted()}
end
redis.call('HSET', KEYS[1], 'lease', ARGV[1], 'lease_until', leaseUntil, 'lease_mark', '0')
if (h['inflight'] or '') ~= '' and h['lease_mark'] == '1' then
  -- A create marked by a run that never settled it (killed, its lease
  -- lost, its settle failed): it may have been open until that run's
  -- lease ran out, so the listing lag counts from then at the earliest.
  local lu = tonumber(h['lease_until'] or '') or 0
  if lu > (tonumber(h['last_create'] or '') or 0) then
    local lc = string.format('%.0f', lu)
    redis.call('HSET', KEYS[1], 'last_create', lc)
    r[#r + 1] = 'last_create'
    r[#r + 1] = lc
  end
  if (h['throttled_create'] or '') ~= '' then
    -- Nor was that create answered throttled, as far as anyone knows
    -- (Transition.WithThrottledCreate): whatever became of its lease.
    redis.call('HSET', KEYS[1], 'throttled_create', '')
    r[#r + 1] = 'throttled_create'
    r[#r + 1] = ''
  end
end
return {'began', r, '0', sn}
`)

// BeginArgs are Begin's inputs.
type BeginArgs struct {
	// Token identifies this step's lease; unique per step.
	Token string
	// LeaseTTL is how long the lease holds without KeepAlive. Default 30s.
	LeaseTTL time.Duration
	// NeedsKnown says the provider takes a snapshot of existing orders
	// before the first create (providers.Preparer): the create is not
	// marked in flight until Record.Known is set.
	NeedsKnown bool
	// NoCreate says the step never creates the order (an operator's):
	// no create is marked in flight, whatever the record says.
	NoCreate bool
	// Pay says the step is to pay a pending order: Begin marks the pay
	// sent (Record.PayMarked) unless a pay was marked less than
	// PayAgainAfter ago, or the provider accepted the last pay
	// (Record.PayAccepted), and the pay leaves only on that mark.
	Pay bool
	// PayAgainAfter is how long after a pay was marked a check that
	// still finds the order unpaid may pay it again: the listing lag, the
	// time the provider is trusted to show a pay's effect (as it is
	// trusted to list a create). Zero: never.
	PayAgainAfter time.Duration
	// Target identifies where a create this Begin marks goes (the
	// provider's endpoint and account, as a fingerprint; "" for none):
	// recorded with the mark, as Record.CreateTarget, so that a worker
	// configured for another endpoint or account does not take its own
	// provider's silence for the order's absence.
	Target string
	// LookFirst is how long after a loss of the shard's data was found
	// (see Watch) every order not final is looked at once for that loss,
	// at its first step since: one about to be created (or snapshotted,
	// or judged by a step that never creates) is looked up first
	// (Transition.WithLookedFirst): Begin marks no create, and sets
	// Record.LookFirstSince and LookFirstFound; any other step (a lookup,
	// a poll, a pay) takes its last create, and a pending order's pay the
	// provider did not accept (but for an order found by matching, which
	// no worker pays in that window), as sent when the loss was found, so
	// the listing lag counts from then. Zero: no check.
	// Checked only once this process has watched the shard: each step it
	// checks finds the shard's keys gone (the epoch missing or another),
	// or this process's count below what it saw acknowledged, before
	// anything is marked, and the loss is recorded (Watch) first.
	LookFirst time.Duration
	// LostCallTail is how long after a loss was found a create or a pay
	// lost with the data may still have been under way (a run that began
	// it before the loss: its lease's checks, then the call's own
	// timeout): the last create, and the pay, a loss sets (see LookFirst)
	// are that long after the loss was found, so that the listing lag
	// counts from when such a call ended.
	LostCallTail time.Duration
	// ListingLag is how long after a create or a pay ended this process
	// waits before it believes a lookup's not-found or pays again (the
	// provider's create overrun included; zero: at once). Begin records
	// it with a create's or a pay's mark (Record.MarkLag, the longest so
	// far, recorded as at most MaxListingLag), and judges a pay again
	// (PayAgainAfter) against the longest.
	ListingLag time.Duration
	// ClockHold is how long, past its own size, a step forward of the
	// master's clock this Begin finds is held (see clockExpect): as long
	// as a time stamped before the step may still be judged, the longest
	// listing lag plus how long a call may stay open after its lease ran
	// out. Zero: DefaultClockHold.
	ClockHold time.Duration
}

// MaxListingLag is the longest listing lag a record keeps
// (Record.MarkLag), and the longest ORDERWORKER_LISTING_LAG the worker and
// enqueue take: a lag of days is a slip (40h for 40s), and one recorded
// would hold the order, past its deadline and an operator's resolve
// absent or errored, for as long.
const MaxListingLag = 24 * time.Hour

// DefaultClockHold is BeginArgs.ClockHold's default.
const DefaultClockHold = 10 * time.Minute

// BeginStatus is what Begin found.
type BeginStatus int

const (
	// Began: the lease is ours; Record is the order.
	Began BeginStatus = iota
	// Finished: the order is paid or errored; nothing was changed (its
	// state is written again, as it was, so that the WAIT after it
	// covers the outcome: with ErrNotDurable, the replicas do not hold it
	// yet).
	Finished
	// Busy: another run holds the order's lease until LeaseUntil.
	Busy
)

// BeginResult is Begin's answer.
type BeginResult struct {
	Status     BeginStatus
	Record     *Record
	LeaseUntil time.Time
}

// Begin starts one step of an order in one atomic round trip: it reads the
// record, refuses a finished order (Finished) or one another run holds
// (Busy), takes the lease, and, when the record says the next call creates
// the order (state queued, or submitting with no create in flight, and the
// snapshot taken where one is needed), marks that create in flight: state
// submitting, Inflight = the attempt's number. The returned Record shows
// the mark (Record.InflightMarked). It returns ErrNotFound when there is no
// record, and ErrNotDurable (with the result) when durable writes are on
// and the replicas did not acknowledge the mark: then nothing may be sent.
func (l *Ledger) Begin(ctx context.Context, ref Ref, a BeginArgs) (BeginResult, error) {
	if a.LeaseTTL <= 0 {
		a.LeaseTTL = 30 * time.Second
	}
	if err := l.CheckShards(ctx); err != nil {
		return BeginResult{}, fmt.Errorf("begin order step: %w", err)
	}
	needs := "0"
	switch {
	case a.NoCreate:
		needs = "2"
	case a.NeedsKnown:
		needs = "1"
	}
	pay := "0"
	if a.Pay {
		pay = "1"
	}
	payAgain := int64(-1) // never
	if a.PayAgainAfter > 0 {
		payAgain = max(a.PayAgainAfter.Milliseconds(), 1)
	}
	hold := a.ClockHold
	if hold <= 0 {
		hold = DefaultClockHold
	}
	sh := l.shardOf(ref)
	var (
		v       any
		durable bool
		err     error
		res     []any
		kind    string
		era     int // the epoch's era this Begin's check ran in
	)
	for try := 0; ; try++ {
		var epoch, window, gen string
		epoch, window, gen, era = l.epochArgs(sh.i, a.LookFirst)
		expect := &clockExpect{c: &l.clock, shard: sh.i}
		v, durable, err = l.runShared(ctx, beginScript, true,
			[]string{sh.recordKey(ref), sh.indexKey(ref.Provider, StateQueued), sh.indexKey(ref.Provider, StateSubmitting), sh.epochKey(), sh.clockKey()},
			a.Token, l.claimTime(), a.LeaseTTL.Milliseconds(), needs, ref.OrderNo, pay, payAgain, a.Target, epoch, window, gen, l.pid, a.LostCallTail.Milliseconds(),
			expect, min(max(a.ListingLag, 0), MaxListingLag).Milliseconds(), hold.Milliseconds())
		if err != nil {
			return BeginResult{}, fmt.Errorf("begin order step: %w", err)
		}
		res, _ = v.([]any)
		kind = ""
		if len(res) > 0 {
			kind, _ = res[0].(string)
		}
		l.begunAt(ctx, sh.i, kind, res, expect, bootClock(), hold, a.LostCallTail)
		if kind != "epoch" {
			break
		}
		// The shard's epoch is gone, or another (its keys went since this
		// process last read it), or its count went back (a roll-back):
		// recorded as a loss, then begun again.
		if try > 0 {
			return BeginResult{}, errors.New("begin order step: the ledger's epoch changed twice: Redis is losing its data")
		}
		wctx, cancel := context.WithTimeout(ctx, watchTimeout)
		loss, err := l.watch(wctx, sh.i)
		cancel()
		if err != nil {
			return BeginResult{}, fmt.Errorf("begin order step: %w", err)
		}
		if loss != nil {
			l.epochs.notice(*loss)
		}
	}
	switch kind {
	case "missing":
		return BeginResult{}, ErrNotFound
	case "busy":
		s, _ := res[1].(string)
		return BeginResult{Status: Busy, LeaseUntil: msTime(s)}, nil
	case "terminal":
		rec := decodeReply(res[1])
		if durable && rec.ProviderOrderID != "" && len(l.shards) > 1 && l.ownerShard(ref.Provider, OwnerField(rec.IDScope, rec.ProviderOrderID)) != sh {
			// The settle that ended the order reserved its provider
			// order id in the id's shard, on another master perhaps
			// (reserveOwner): should that reservation have gone
			// unacknowledged (the settle answered ErrNotDurable, and
			// this task runs again), a failover of that master could
			// lose it, and another order could take the id. Reserved
			// again, idempotent, the order is finished once that is
			// acknowledged too.
			var owned *OwnedError
			switch err := l.reserveOwner(ctx, ref, rec.IDScope, rec.ProviderOrderID); {
			case errors.Is(err, ErrNotDurable):
				durable = false
			case errors.As(err, &owned):
				// Another order's: nothing of this one's to confirm
				// (a conflict found, not made, here: left as it is).
			case err != nil:
				return BeginResult{}, fmt.Errorf("begin order step: %w", err)
			}
		}
		if !durable {
			// Final on the master, not yet on every replica: a
			// failover could take the outcome back.
			return BeginResult{Status: Finished, Record: rec}, ErrNotDurable
		}
		return BeginResult{Status: Finished, Record: rec}, nil
	case "began":
		rec := decodeReply(res[1])
		if len(res) > 3 {
			sn, _ := res[3].(string)
			rec.ReadAt = msTime(sn)
		}
		if len(res) > 6 && durable {
			// A mark counted this process's count up, and the replicas
			// hold it: a roll-back to before it is noticed.
			if g, err := strconv.ParseInt(fmt.Sprint(res[6]), 10, 64); err == nil {
				l.epochs.raise(sh.i, era, g)
			}
		}
		if m, _ := res[2].(string); m == "4" {
			// A create on a not-found seen sooner after the last create
			// than this process's listing lag: not marked; looked up
			// again.
			rec.AbsentRecheck = true
		} else if m == "3" {
			// A first create after a loss of the shard's data: not
			// marked; the order is looked up first.
			if len(res) > 5 {
				s, _ := res[4].(string)
				f, _ := res[5].(string)
				rec.LookFirstSince, rec.LookFirstFound = msTime(s), msTime(f)
			}
		} else if m == "2" {
			rec.PayMarked = true
			if again, _ := res[len(res)-1].(string); again == "again" {
				// This Begin again: the record shows its own mark,
				// and the one it replaced as pay_before.
				rec.PaySentBefore = rec.payBefore
			} else {
				rec.PaySentBefore = rec.PaySentAt
				rec.PaySentAt = rec.ReadAt // the mark this Begin wrote
				rec.Pays++                 // the count this Begin wrote
			}
			if !durable {
				return BeginResult{Status: Began, Record: rec}, ErrNotDurable
			}
		} else if m == "1" {
			rec.InflightMarked = true
			rec.MarkedFrom = rec.State
			rec.Inflight = rec.Attempts + 1
			rec.State = StateSubmitting
			if rec.FirstAttemptAt.IsZero() {
				rec.FirstAttemptAt = rec.ReadAt
			}
			if rec.ThrottledLast() {
				rec.ThrottledCreateAt = rec.ReadAt // moved with the mark
			}
			rec.LastCreateAt = rec.ReadAt
			if !durable {
				return BeginResult{Status: Began, Record: rec}, ErrNotDurable
			}
		}
		return BeginResult{Status: Began, Record: rec}, nil
	}
	return BeginResult{}, fmt.Errorf("begin order step: unexpected reply %v", v)
}

// begunAt notes the master's clock as a Begin's reply of kind res read it,
// the request written at e's time and answered at recv (bootClock), as the
// base of the next Begins' expectations. A step the reply shows
// (clock_step) is recorded (recordStep, held for hold past its size, and
// past the listing lag of every call marked before it, plus tail) and
// reported (Options.OnClockStep) when the round trip was too short to
// account for it; else the request may have reached Redis late (a network
// stall, a stall of this process as it sent it): nothing is recorded,
// and the base is kept, so that the next Begin finds the step again if
// there is one.
func (l *Ledger) begunAt(ctx context.Context, i int, kind string, res []any, e *clockExpect, recv time.Duration, hold, tail time.Duration) {
	var sn, step string
	switch kind {
	case "missing", "busy":
		// {'missing', sn, step, hold}, {'busy', until, sn, step, hold}
		at := 1
		if kind == "busy" {
			at = 2
		}
		if len(res) > at+1 {
			sn, _ = res[at].(string)
			step, _ = res[at+1].(string)
		}
	case "began", "terminal":
		// {'began', fields, mark, sn, …}, {'terminal', fields, sn}; the
		// step is among the fields (clock_step; the script may append
		// others after it).
		at := 3
		if kind == "terminal" {
			at = 2
		}
		if len(res) > at {
			sn, _ = res[at].(string)
		}
		f, _ := res[1].([]any)
		for j := 0; j+1 < len(f); j += 2 {
			if k, _ := f[j].(string); k == "clock_step" {
				step, _ = f[j+1].(string)
			}
		}
	default:
		return
	}
	sent := time.Duration(e.sent.Load())
	if st := msDuration(step); st > 0 {
		if st-(recv-sent) <= clockTolerance {
			return // perhaps a late request: not recorded, the base kept
		}
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), watchTimeout)
		held, err := l.recordStep(c, i, st, time.UnixMilli(e.base.Load()), hold, tail)
		cancel()
		if err != nil {
			return // the base kept: the next Begin finds the step again
		}
		if l.opts.OnClockStep != nil {
			l.opts.OnClockStep(i, st, held)
		}
	}
	l.clock.based(i, msTime(sn), sent)
}

// Transition is a change Settle applies to an order, built by the named
// constructors below (SetPaid, SetPending, …) and refined with its With
// methods. Every transition ends the step and releases the lease. It
// clears the in-flight mark when this step's own Begin set it, or when it
// settles where a create in flight stands (SetPaid, SetPending,
// SetErrored, SetUnknown, SetRetry: a call, or an operator, found out).
// Release, Keep, SetKnown and Unmark never clear a mark another run left:
// a step that gives up without a call must leave it for the lookup that
// will find out whether that create was received.
type Transition struct {
	to              State // "" keeps the state
	idScope         string
	ownedAnswer     bool
	throttledCreate bool
	refusedCreate   string
	settlesMark     bool
	attempt         *Attempt
	failures        int
	setFailures     bool
	providerOrderID string
	matched         bool
	operatorID      bool // the id is an operator's word (withOperatorID)
	answered        bool
	payAccepted     time.Time
	// forgetPayAccepted clears the record's pay_accepted (SetRetry).
	forgetPayAccepted bool
	reason            string
	setReason         bool
	pendingSince      time.Time
	nextCheck         time.Time
	outcome           bool
	known             []string
	redriven          bool      // an operator sent the order back to submission: its deadline counts anew
	held              bool      // the order is left for a person from this step on (WithHeld)
	unseenAt          time.Time // a lookup did not find the order then (WithUnseen)
	setKnown          bool
	afresh            bool // forget the snapshot and the first attempt's time
	mayExist          *bool
	clearPaySent      bool
	paySentBefore     time.Time // with clearPaySent: the earlier pay's mark to put back
	paysBefore        int       // with clearPaySent: the pays counted before this step's
	firstAttempt      time.Time // with afresh: the first attempt's time to record instead of none
	knownAt           time.Time // with setKnown: when the snapshot's read began (zero: the settle's time)
	knownTarget       string    // with setKnown: where it was read (BeginArgs.Target)
	targetUnknown     bool      // forget where the last create went (SetUnknownSince)
	dropMatch         []string  // with the id to forget: the record's not_ours after (withDropMatch)
	forgetOwn         bool      // the id the record holds from its own failed create is forgotten (withDropOwnID)
	lookedFirst       time.Time // the loss the order is looked up for (WithLookedFirst)
	lookedFirstAt     time.Time // when that was found (WithLookedFirst): recorded as last_create
	absentLag         *time.Duration
	forgetAbsentLag   bool // an operator's absent: no lookup's belief stands (withoutAbsentLag)
}

// AbsentLag reports the lag WithAbsentLag records, and whether it does.
func (t Transition) AbsentLag() (time.Duration, bool) {
	if t.absentLag == nil {
		return 0, false
	}
	return *t.absentLag, true
}

// withoutAbsentLag forgets the lag a lookup's not-found was believed under:
// an operator found the order absent, which no worker's longer lag
// questions (a lookup again could hold an unlisted order for a person
// again, undoing the decision).
func (t Transition) withoutAbsentLag() Transition { t.forgetAbsentLag = true; return t }

// WithAbsentLag records how long after the order's last create a lookup's
// not-found that is believed was seen (Record.AbsentLag: at least the
// listing lag it was believed under), the order about to be created again:
// a process whose own lag is longer looks the order up again before it
// creates it (Begin's AbsentRecheck), since the order that create made may
// not have been listed yet for it.
func (t Transition) WithAbsentLag(lag time.Duration) Transition {
	lag = min(max(lag, 0), MaxListingLag)
	t.absentLag = &lag
	return t
}

// WithKnownAt records, beside the snapshot SetKnown records, when the step
// that read it began (Record.ReadAt): Record.KnownFrom. An order made while
// the listing was read may be missing from it, so what is judged against
// the snapshot's time (which orders it must show) takes that one; its age
// is still judged from when it was recorded (Record.KnownAt), or a listing
// slower than the snapshot's maximum age would be read again for ever.
func (t Transition) WithKnownAt(at time.Time) Transition { t.knownAt = at; return t }

// WithKnownTarget records where the snapshot SetKnown records was read
// (BeginArgs.Target's fingerprint): Record.KnownTarget.
func (t Transition) WithKnownTarget(target string) Transition { t.knownTarget = target; return t }

// SetsKnown reports whether the transition records a snapshot (SetKnown).
func (t Transition) SetsKnown() bool { return t.setKnown }

// To is the state the transition moves to ("" for unchanged).
func (t Transition) To() State { return t.to }

// Attempt is the history entry the transition appends, nil for none.
func (t Transition) Attempt() *Attempt { return t.attempt }

// MayExist reports what the transition records about whether the order
// may exist at the provider, and whether it records anything.
func (t Transition) MayExist() (v, set bool) {
	if t.mayExist == nil {
		return false, false
	}
	return *t.mayExist, true
}

// ProviderOrderID is the provider order id the transition records ("" for
// none).
func (t Transition) ProviderOrderID() string { return t.providerOrderID }

// ForgetsID reports whether the transition forgets the provider order id
// the record holds (an operator's absent, a not-found that a create
// follows), and whether that id was the order's own create's answer
// rather than a match found another's.
func (t Transition) ForgetsID() (forgets, own bool) {
	return t.dropMatch != nil || t.forgetOwn, t.forgetOwn
}

// Failures is the failure count the transition records, -1 when it keeps
// the current one.
func (t Transition) Failures() int {
	if !t.setFailures {
		return -1
	}
	return t.failures
}

// PendingSince is when a pending order's window began, as recorded (zero:
// not set).
func (t Transition) PendingSince() time.Time { return t.pendingSince }

// Reason is the reason the transition records ("" when it keeps the
// current one or clears it).
func (t Transition) Reason() string { return t.reason }

// SetPaid ends the order paid with the provider's order id.
func SetPaid(providerOrderID string) Transition {
	return Transition{to: StatePaid, providerOrderID: providerOrderID, setReason: true, outcome: true, settlesMark: true}
}

// SetPending records that the provider holds the order unpaid since since;
// the next check is due at next.
func SetPending(providerOrderID string, since, next time.Time) Transition {
	return Transition{to: StatePending, providerOrderID: providerOrderID, setReason: true, pendingSince: since, nextCheck: next, settlesMark: true}
}

// SetErrored ends the order errored with reason.
func SetErrored(reason string) Transition {
	return Transition{to: StateErrored, reason: reason, setReason: true, outcome: true, settlesMark: true}
}

// SetUnknown records that the order may or may not exist at the provider:
// it is looked up before anything is submitted again.
func SetUnknown(reason string) Transition {
	return Transition{to: StateUnknown, reason: reason, setReason: true, settlesMark: true}
}

// SetUnknownSince records that a create of the order this record does not
// know of may have been received, the first no earlier than since (zero:
// not known): an earlier run of the task sent it under a record since lost
// and replaced. The order is looked up from since on before anything is
// submitted, with known, a snapshot taken before that create (nil: none);
// the record's own snapshot is forgotten, as it may have been taken after
// that create.
func SetUnknownSince(reason string, since time.Time, known []string) Transition {
	t := SetUnknown(reason).WithMayExist(true)
	t.afresh, t.firstAttempt, t.targetUnknown = true, since, true
	if known != nil {
		t.known, t.setKnown = known, true
	}
	return t
}

// SetRetry records that the order surely does not exist at the provider
// and may be submitted again (state submitting, nothing in flight). A pay
// the provider accepted was of the order no longer found: a new one it
// creates is paid as any is (Record.PayAccepted no longer holds).
func SetRetry(reason string) Transition {
	return Transition{to: StateSubmitting, reason: reason, setReason: true, settlesMark: true, forgetPayAccepted: true}
}

// SetKnown records the provider orders that existed before the first
// create (providers.Preparer); the state is unchanged.
func SetKnown(ids []string) Transition {
	if ids == nil {
		ids = []string{}
	}
	return Transition{known: ids, setKnown: true}
}

// Keep changes nothing but the step's bookkeeping (the attempt, the
// reason): the order stays in its state.
func Keep(reason string) Transition { return Transition{reason: reason, setReason: reason != ""} }

// Release ends a step that made no call: the lease is released, nothing
// else changes (a mark this step did not set stays).
func Release() Transition { return Transition{} }

// Unmark ends a step whose create was marked in flight by Begin but never
// sent: the order goes back to the state it had (rec.MarkedFrom) and the
// lease is released. On a record this step did not mark it is Release: a
// mark another run left stays.
func Unmark(rec *Record) Transition {
	if rec.PayMarked {
		// The pay this step's Begin marked was not sent: the mark goes
		// back to an earlier pay's, if one was sent.
		return Transition{clearPaySent: true, paySentBefore: rec.PaySentBefore, paysBefore: max(rec.Pays-1, 0)}
	}
	if !rec.InflightMarked || rec.MarkedFrom == "" {
		return Release()
	}
	// The settle moves the last create to now (nothing was sent, but the
	// ledger cannot tell); a throttled create that stood for the latest
	// moves with it (Transition.WithThrottledCreate), as nothing was sent.
	return Transition{to: rec.MarkedFrom, throttledCreate: rec.ThrottledLast()}
}

// Afresh starts the order's identification anew: it forgets the snapshot
// of the provider's orders (Record.Known) and the first attempt's time, so
// that the next create takes a new snapshot and its lookups look from it
// on. Only for an order no create of which may ever have been received
// (!Record.MayHaveExisted), the next call being a create: a snapshot kept
// from before an earlier try would let an order someone else made since
// pass for ours, while one taken after a create that may have been
// received (a not-found believed after the listing lag is no proof) could
// hide our own order.
func (t Transition) Afresh() Transition { t.afresh = true; return t }

// IsAfresh reports whether the transition starts the order's
// identification anew (Afresh).
func (t Transition) IsAfresh() bool { return t.afresh }

// WithAttempt appends a to the history and sets the call count to a.N.
func (t Transition) WithAttempt(a *Attempt) Transition { t.attempt = a; return t }

// WithMayExist records whether the order may exist at the provider: true
// after a create that may have been received, false once the provider has
// confirmed it holds no such order. Only an order that surely does not
// exist may be submitted again by an operator (re-driven).
func (t Transition) WithMayExist(v bool) Transition { t.mayExist = &v; return t }

// withRedriven has the order's deadline count from now (an operator sent
// it back to submission).
func (t Transition) withRedriven() Transition { t.redriven = true; return t }

// WithHeld records that the order is left for a person from this step on
// (Record.HeldAt, on the step's clock): the reconciler spaces its later
// looks by how long the order has been held.
func (t Transition) WithHeld() Transition { t.held = true; return t }

// WithUnseen records that a lookup begun at (Redis's clock as Begin read
// it) did not find the order (Record.UnseenAt): a lookup that finds it
// later tells that the provider listed it that late after its create, at
// the least.
func (t Transition) WithUnseen(at time.Time) Transition { t.unseenAt = at; return t }

// UnseenAt reports the time WithUnseen records, zero for none.
func (t Transition) UnseenAt() time.Time { return t.unseenAt }

// withDropMatch forgets the provider order id rec holds by matching (an
// operator found it is not the order's), with whether it was matched and
// the times it was pending: the order starts over as one never pending.
// The id joins Record.NotOurs, and its owner entry is released: in the
// settle when it is in the record's shard, else after it (releaseOwner).
func (t Transition) withDropMatch(rec *Record) Transition {
	t.dropMatch = append(slices.Clone(rec.NotOurs), rec.ProviderOrderID)
	return t
}

// WithoutOwnID forgets the provider order id rec holds, if any, from its
// own failed create's answer, when a lookup by it has found no such order
// and a create follows (see withDropOwnID). An id held by matching is
// left to the operators' decisions.
func (t Transition) WithoutOwnID(rec *Record) Transition {
	if rec.ProviderOrderID == "" || rec.Matched {
		return t
	}
	return t.withDropOwnID(rec)
}

// withDropOwnID forgets the provider order id rec holds from its own
// failed create's answer (an operator found no such order at the
// provider): the record no longer holds it, so the next create's own
// answer names the order's id again, and lookups go by that. It is not
// listed as another's, and its owner entry stays this order's: should the
// id turn up after all, it is this order's own create's, never another
// order's to take.
func (t Transition) withDropOwnID(rec *Record) Transition {
	if rec.ProviderOrderID != "" {
		t.forgetOwn = true
	}
	return t
}

// WithReason records reason as the order's reason (Record.Reason), which
// the outcome event of a change of state carries.
func (t Transition) WithReason(reason string) Transition {
	t.reason, t.setReason = reason, true
	return t
}

// WithLookedFirst records that the order is looked up before a create for
// the loss of the ledger's data at lost (Record.LookFirstSince): Begin does
// not hold its creates back for that loss again. at, when the loss was
// found (Record.LookFirstFound), is recorded as its last create's end: a
// create lost with the data may have left until the loss was noticed, and
// the listing lag counts from its end.
func (t Transition) WithLookedFirst(lost, at time.Time) Transition {
	t.lookedFirst, t.lookedFirstAt = lost, at
	return t
}

// LookedFirst is the loss WithLookedFirst recorded (zero: none).
func (t Transition) LookedFirst() time.Time { return t.lookedFirst }

// LookedFirstAt is the last create's end WithLookedFirst recorded (zero:
// none).
func (t Transition) LookedFirstAt() time.Time { return t.lookedFirstAt }

// WithFailures sets the failure count.
func (t Transition) WithFailures(n int) Transition { t.failures, t.setFailures = n, true; return t }

// WithProviderOrderID records the provider's order id.
func (t Transition) WithProviderOrderID(id string) Transition { t.providerOrderID = id; return t }

// WithMatched records that the provider order id was found by matching
// the provider's listing (Record.Matched); it stays recorded.
func (t Transition) WithMatched() Transition { t.matched = true; return t }

// withOperatorID records that the provider order id is an operator's word
// (Resolve paid), not the answer to the order's own create: as an id found
// by matching, another order's own create answered with it takes it over
// (luaRevoke), rather than be refused it and look its order up with the id
// passed over as another's, then create it again. Record.Matched stays
// false: the id was not found by matching.
func (t Transition) withOperatorID() Transition { t.operatorID = true; return t }

// matchedByOperator is the record's matched field for an id an operator
// gave (withOperatorID); "1" is one found by matching.
const matchedByOperator = "operator"

// Matched reports whether the transition records the provider order id
// as matched (WithMatched).
func (t Transition) Matched() bool { return t.matched }

// WithAnswered records that the provider order id came in the answer to
// this order's own create, not from matching the provider's listing. An
// id so answered outweighs another order's match of it: Settle takes it
// over from an order that holds it only by matching (see settleScript),
// which is then looked up again, rather than refuse it (*OwnedError),
// after which this order, its id dropped as another's from its lookups,
// would be created a second time.
func (t Transition) WithAnswered() Transition { t.answered = true; return t }

// Answered reports whether the transition's provider order id came in the
// answer to the order's own create (WithAnswered).
func (t Transition) Answered() bool { return t.answered }

// ClearPaySent forgets that this step's pay was sent (see BeginArgs.Pay):
// it was refused before the provider acted, so a later check may pay
// again. The mark goes back to before, an earlier pay's (Record.
// PaySentBefore; zero: none): forgetting a pay that did leave would let
// an order the worker paid pass for one someone else paid, and a second
// pay skip the listing lag after it.
// pays is the count of pays the record holds, this step's among them: it
// goes back to one less.
func (t Transition) ClearPaySent(before time.Time, pays int) Transition {
	t.clearPaySent, t.paySentBefore, t.paysBefore = true, before, max(pays-1, 0)
	return t
}

// ClearsPaySent reports whether the transition forgets a pay sent.
func (t Transition) ClearsPaySent() bool { return t.clearPaySent }

// WithPayAccepted records that the provider answered the pay marked sent
// at mark (Record.PaySentAt) as accepted: the order is not paid again
// automatically (Record.PayAccepted).
func (t Transition) WithPayAccepted(mark time.Time) Transition { t.payAccepted = mark; return t }

// PayAccepted is the pay mark the transition records as accepted (zero:
// none; see WithPayAccepted).
func (t Transition) PayAccepted() time.Time { return t.payAccepted }

// PayAccepted reports whether the last pay marked sent (PaySentAt) was
// answered as accepted by the provider.
func (r *Record) PayAccepted() bool {
	return !r.PaySentAt.IsZero() && r.PayAcceptedAt.Equal(r.PaySentAt)
}

// WithNextCheck sets when a pending order is next checked.
func (t Transition) WithNextCheck(next time.Time) Transition { t.nextCheck = next; return t }

// WithOwnedAnswer records that a create of the order was answered with
// another order's provider order id (Record.OwnedAnswer). It stays.
func (t Transition) WithOwnedAnswer() Transition { t.ownedAnswer = true; return t }

// OwnedAnswer reports whether the transition records an owned answer
// (WithOwnedAnswer).
func (t Transition) OwnedAnswer() bool { return t.ownedAnswer }

// WithThrottledCreate records that the create this run marked in flight
// was answered throttled (Record.ThrottledCreateAt: that create's end, as
// the settle writes it in Record.LastCreateAt). Any later create settled
// without it, or one whose run never settled it, leaves the two apart.
func (t Transition) WithThrottledCreate() Transition { t.throttledCreate = true; return t }

// ThrottledCreate reports whether the transition records a throttled
// create (WithThrottledCreate).
func (t Transition) ThrottledCreate() bool { return t.throttledCreate }

// WithRefusedCreate records that the create this run marked in flight was
// refused with refusal (the provider's words, as an order's reason holds
// them) where that refusal is taken for the order's own once a lookup a
// listing lag after it finds nothing (Record.RefusedCreate; stamped, as
// WithThrottledCreate, with that create's end). It outlives the reason,
// which a lookup in between rewrites; a later create leaves it behind (see
// Record.RefusedLast), and a re-drive or an operator's absent clears it.
// Ignored for a run that marked no create (the one recorded stands).
func (t Transition) WithRefusedCreate(refusal string) Transition {
	if refusal == "" {
		refusal = "refused"
	}
	t.refusedCreate = refusal
	return t
}

// RefusedCreate returns the refusal the transition records
// (WithRefusedCreate), "" when none.
func (t Transition) RefusedCreate() string { return t.refusedCreate }

// WithIDScope says the order's provider order ids are unique only within
// scope (providers.IDScoper): the owner entries of the ids the transition
// records or releases are kept under it (OwnerField), and the record notes
// it (Record.IDScope) for the steps that do not know it (an operator's).
// "" (ids unique across the account) changes nothing.
func (t Transition) WithIDScope(scope string) Transition { t.idScope = scope; return t }

// OwnerField is the owner index's field for provider order id in scope
// (Transition.WithIDScope): the id itself when scope is "". A scope holds
// no NUL (the Lua scripts take the id from after the first one).
func OwnerField(scope, id string) string {
	if scope == "" || id == "" {
		return id
	}
	return scope + "\x00" + id
}

// settleScript applies a Transition if the lease is still the caller's.
//
// KEYS: record, history, owner index, events stream. ARGV: token, the
// shard's key prefix, provider, order_no, new state or ”, now (ms; ""
// for Redis's TIME, which outcome_at, redriven and held_at given as '@'
// take too),
// attempt JSON or ”, max history, provider order id to own or ” (with
// more than one shard, reserved before: see reserveOwner), events
// retention, '1' when the transition settles a create in flight (see
// Transition), then field/value pairs. The in-flight mark is cleared when
// this step's Begin set it (lease_mark) or the transition settles it.
// Replies {'ok'}, {'missing'}, {'lost', state} or {'owned', order_no}.
var settleScript = redis.NewScript(luaRevoke + luaAddHistory + `
local cur = redis.call('HMGET', KEYS[1], 'state', 'lease', 'settled', 'provider_order_id', 'reason', 'attempts', 'lease_mark', 'pay_sent', 'rival_key')
if not cur[1] then return {'missing'} end
if cur[3] and (' ' .. cur[3] .. ' '):find(' ' .. ARGV[1] .. ' ', 1, true) then
  -- This settle again (its reply was lost), perhaps after another run's
  -- (settled keeps the last few tokens): a write (of the same value),
  -- so that the WAIT after it covers what the first one wrote.
  redis.call('HSET', KEYS[1], 'settled', cur[3])
  return {'ok'}
end
if cur[2] ~= ARGV[1] then return {'lost', cur[1]} end
local now = ARGV[6]
if now == '' then
  local t = redis.call('TIME')
  now = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
end
local took = nil
if ARGV[9] ~= '' and redis.call('HSETNX', KEYS[3], ARGV[9], ARGV[4]) == 0 then
  local owner = redis.call('HGET', KEYS[3], ARGV[9])
  if owner ~= ARGV[4] then
    -- Our own create's answer names the id (ARGV[12]) that another order
    -- holds only by matching: the answer outweighs the match (luaRevoke).
    -- (The owner field of an id unique only within a scope is the scope,
    -- a NUL, then the id: see OwnerField.)
    local bare = ARGV[9]
    local z = string.find(bare, '\0', 1, true)
    if z then bare = string.sub(bare, z + 1) end
    if ARGV[12] == '1' then took = revoke(ARGV[2], ARGV[3], owner, bare, ARGV[4], now, KEYS[4], ARGV[10]) end
    if took == nil then return {'owned', owner} end
    redis.call('HSET', KEYS[3], ARGV[9], ARGV[4])
  end
end
local new = ARGV[5]
if new == '' then new = cur[1] end
-- The last settles' tokens, newest first: a retried settle whose first
-- try applied is known as such even after another run settled since.
local settled = ARGV[1]
if cur[3] then
  local n = 1
  for tok in cur[3]:gmatch('%S+') do
    if n == 3 then break end
    settled = settled .. ' ' .. tok
    n = n + 1
  end
end
local f = {'state', new, 'updated', now, 'settled', settled, 'lease', '', 'lease_until', ''}
local moved = nil
if cur[7] == '2' and (cur[8] or '') ~= '' then
  -- This run's pay has ended (answered, failed or timed out): the
  -- provider may have taken it at any time while it was open, so the
  -- listing lag after it counts from now, on Redis's clock, as a
  -- create's does. A transition that puts back the mark before it (the
  -- pay did not leave) writes pay_sent after this; one that records the
  -- pay accepted names the mark, moved with it.
  local t = redis.call('TIME')
  moved = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  f[#f + 1] = 'pay_sent'
  f[#f + 1] = moved
end
if took and took[1] ~= '' then
  f[#f + 1] = 'pay_sent'
  f[#f + 1] = took[1]
  if took[2] == took[1] then
    -- The provider accepted that pay: never sent again for me either.
    f[#f + 1] = 'pay_accepted'
    f[#f + 1] = took[2]
  end
end
if cur[7] == '1' or ARGV[11] == '1' then
  f[#f + 1] = 'inflight'
  f[#f + 1] = ''
end
local lc = ''
if cur[7] == '1' then
  -- This run's create has ended (answered, failed or timed out): the
  -- provider may have made the order at any time while it was open, so
  -- the listing lag counts from now, on Redis's clock.
  local t = redis.call('TIME')
  lc = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  f[#f + 1] = 'last_create'
  f[#f + 1] = lc
  -- Whether it was answered throttled (Transition.WithThrottledCreate,
  -- which names this create by its time): not unless the transition says.
  f[#f + 1] = 'throttled_create'
  f[#f + 1] = ''
  -- (A refusal recorded before, Transition.WithRefusedCreate, names an
  -- earlier create by its end: it no longer stands, Record.RefusedLast,
  -- and is left as it is rather than written on every create.)
end
local ev = {provider_order_id = cur[4] or '', reason = cur[5] or '', attempts = cur[6] or '0'}
for i = 13, #ARGV, 2 do
  local v = ARGV[i + 1]
  if ARGV[i] == '!release' then
    -- An id the order no longer holds (Transition.withDropMatch): its
    -- owner entry goes, if it is this order's.
    if redis.call('HGET', KEYS[3], v) == ARGV[4] then redis.call('HDEL', KEYS[3], v) end
  else
    if moved and ARGV[i] == 'pay_accepted' and v == cur[8] then v = moved end
    if v == '@' and (ARGV[i] == 'outcome_at' or ARGV[i] == 'redriven' or ARGV[i] == 'held_at') then v = now end
    if ARGV[i] == 'throttled_create' then v = lc end
    if ARGV[i] == 'refused_create' and v ~= '' then
      -- Stamped with this create's end (Transition.WithRefusedCreate); a
      -- run that marked no create leaves it as it is ('' clears it).
      if lc == '' then v = nil else v = lc .. ' ' .. v end
    end
    if ARGV[i] == 'known_at' and v == '*' then
      local t = redis.call('TIME')
      v = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
    end
    if v ~= nil then
      f[#f + 1] = ARGV[i]
      f[#f + 1] = v
      if ev[ARGV[i]] then ev[ARGV[i]] = v end
    end
  end
end
redis.call('HSET', KEYS[1], unpack(f))
if (cur[9] or '') ~= '' and (new == 'paid' or new == 'errored' or ev.provider_order_id ~= '') then
  -- Told apart from its rivals now, by its id or its outcome (see
  -- MarkRival).
  redis.call('ZREM', ARGV[2] .. 'rivals:' .. ARGV[3] .. ':' .. cur[9], ARGV[4])
end
if new ~= cur[1] then
  redis.call('ZREM', ARGV[2] .. 'state:' .. ARGV[3] .. ':' .. cur[1], ARGV[4])
  redis.call('ZADD', ARGV[2] .. 'state:' .. ARGV[3] .. ':' .. new, now, ARGV[4])
  if new == 'paid' or new == 'pending' or new == 'errored' or new == 'unknown' then
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[10], '*', 'type', 'order.' .. new, 'provider', ARGV[3],
      'order_no', ARGV[4], 'state', new, 'provider_order_id', ev.provider_order_id, 'reason', ev.reason,
      'attempts', ev.attempts, 'at', now)
  end
end
if ARGV[7] ~= '' then addHistory(KEYS[2], ARGV[7], tonumber(ARGV[8])) end
return {'ok'}
`)

// HistoryHead is how many of an order's first history entries are kept
// when its history outgrows MaxHistory: the entries dropped are the
// oldest after them. The first calls (the create that made an order
// unknown, what first failed) are what a person deciding on an order
// looked up for days, or polled for weeks, needs most.
const HistoryHead = 10

// luaAddHistory is a helper of the scripts that write history:
// addHistory(key, entry, max) appends entry and, past max entries, drops
// the oldest after the first HistoryHead (set to "", which no entry is,
// then removed).
var luaAddHistory = `
local function addHistory(key, entry, max)
  local n = redis.call('RPUSH', key, entry)
  if max <= ` + strconv.Itoa(HistoryHead) + ` then
    if n > max then redis.call('LTRIM', key, -max, -1) end
    return
  end
  while n > max do
    redis.call('LSET', key, ` + strconv.Itoa(HistoryHead) + `, '')
    redis.call('LREM', key, 1, '')
    n = n - 1
  end
end
`

// luaRevoke is settleScript's helper: revoke(prefix, provider, owner, id,
// me, now, events, retention) takes provider order id away from order
// owner, which
// holds it only by matching the provider's listing or by an operator's
// word (its record has it, matched "1" or "operator"), for order me, whose
// own create's answer names it: the answer
// outweighs the match. The owner loses the id, its lease (a run in flight
// settles nothing more) and any pay it marked sent (a pay of me's order,
// which me checks before it pays: the mark, moved to the end of the
// owner's lease while its pay is open, and whether the provider accepted
// it, are returned, {pay_sent, pay_accepted}), and becomes
// unknown (may exist: looked up again), with its event. Returns nil,
// changing nothing, when owner does not hold id by matching.
const luaRevoke = `
local function revoke(prefix, provider, owner, id, me, now, events, retention)
  local okey = prefix .. 'order:' .. provider .. ':' .. owner
  local o = redis.call('HMGET', okey, 'state', 'provider_order_id', 'matched', 'attempts', 'pay_sent', 'pay_accepted', 'lease_mark', 'lease_until', 'rival_key')
  if not (o[1] and o[2] == id and (o[3] == '1' or o[3] == 'operator')) then return nil end
  local ps = o[5] or ''
  if ps ~= '' and o[7] == '2' and (tonumber(o[8] or '') or 0) > (tonumber(ps) or 0) then
    -- The owner's pay is open (or was, its run never settled): it may
    -- land until that run's lease runs out, and the listing lag after it
    -- counts from then at the earliest, as its own settle or next Begin
    -- would have moved it.
    ps = string.format('%.0f', tonumber(o[8]))
  end
  local how = 'found by matching'
  if o[3] == 'operator' then how = 'an operator recorded as this one' end
  local r = 'the provider order ' .. id .. ' ' .. how .. ' is order ' .. me .. "'s, by its create's own answer: looked up again"
  redis.call('HSET', okey, 'state', 'unknown', 'provider_order_id', '', 'matched', '', 'may_exist', '1', 'updated', now,
    'reason', r, 'lease', '', 'lease_until', '', 'pay_sent', '', 'pay_accepted', '', 'pays', '', 'pending_since', '', 'next_check', '', 'outcome_at', '')
  if (o[9] or '') ~= '' then
    -- May exist again without an id: a rival again (see MarkRival).
    redis.call('ZADD', prefix .. 'rivals:' .. provider .. ':' .. o[9], 'NX', math.floor(tonumber(now) / 1000), owner)
  end
  if o[1] ~= 'unknown' then
    redis.call('ZREM', prefix .. 'state:' .. provider .. ':' .. o[1], owner)
    redis.call('ZADD', prefix .. 'state:' .. provider .. ':unknown', now, owner)
    redis.call('XADD', events, 'MAXLEN', '~', retention, '*', 'type', 'order.unknown', 'provider', provider,
      'order_no', owner, 'state', 'unknown', 'provider_order_id', '', 'reason', r, 'attempts', o[4] or '0', 'at', now)
  end
  return {ps, o[6] or ''}
end
`

// Settle applies t to the order at the end of a step, atomically: state,
// fields, history entry, state index, provider order id ownership, and the
// lease's release. It returns ErrLeaseLost when token no longer holds the
// order's lease, *OwnedError when t records a provider order id that
// belongs to another order (nothing is applied), ErrNotFound when the
// record is gone, and ErrNotDurable (applied, but not acknowledged by the
// replicas in time) when durable writes are on.
func (l *Ledger) Settle(ctx context.Context, ref Ref, token string, t Transition) error {
	if token == "" {
		// No Begin hands out an empty token: it would match a released
		// lease.
		return ErrLeaseLost
	}
	// The step's time: "" for Redis's TIME (see Options.Now), which the
	// script also writes for the fields given as "@".
	nowArg := l.claimTime()
	stamp := nowArg
	if stamp == "" {
		stamp = "@"
	}
	var attempt []byte
	if t.attempt != nil {
		var err error
		if attempt, err = json.Marshal(t.attempt); err != nil {
			return err
		}
	}
	own := OwnerField(t.idScope, t.providerOrderID)
	reserved := true // durable, when there was a reservation
	if own != "" && len(l.shards) > 1 {
		// An answered id does not take over another order's match here:
		// the two records may be in different shards, and no one script
		// can revoke the one and settle the other (see the README,
		// "Redis Cluster").
		err := l.reserveOwner(ctx, ref, t.idScope, t.providerOrderID)
		if errors.Is(err, ErrNotDurable) {
			// Reserved on the master, not yet on its replicas: the
			// settle still runs, and reports the same.
			reserved, err = false, nil
		}
		if err != nil {
			return err
		}
		own = ""
	}
	sh := l.shardOf(ref)
	args := make([]any, 0, 25)
	settles := "0"
	if t.settlesMark {
		settles = "1"
	}
	answered := "0"
	if t.answered {
		answered = "1"
	}
	args = append(args, token, sh.prefix, ref.Provider, ref.OrderNo, string(t.to), nowArg, attempt, MaxHistory, own, l.opts.EventRetention, settles, answered)
	if t.attempt != nil {
		args = append(args, "attempts", t.attempt.N)
	}
	if t.setFailures {
		args = append(args, "failures", t.failures)
	}
	if t.dropMatch != nil {
		// First: an id the transition records (an operator's paid under
		// another id) is written after, and so stands.
		notOurs, _ := json.Marshal(t.dropMatch)
		args = append(args, "provider_order_id", "", "matched", "", "pending_since", "", "next_check", "", "not_ours", notOurs)
		bare := t.dropMatch[len(t.dropMatch)-1]
		for _, id := range []string{OwnerField(t.idScope, bare), bare} {
			// (Also as written: an entry made before ids were kept by
			// scope. Only this order's is released.)
			if l.ownerShard(ref.Provider, id) == sh {
				// Released with the settle: this order owns the id no
				// more the moment its record no longer holds it.
				args = append(args, "!release", id)
			}
			if id == bare {
				break
			}
		}
	}
	if t.forgetOwn {
		args = append(args, "provider_order_id", "")
	}
	if t.idScope != "" {
		args = append(args, "id_scope", t.idScope)
	}
	if t.ownedAnswer {
		args = append(args, "owned_answer", "1")
	}
	if t.throttledCreate {
		// Stamped with this create's end as the script writes it (none,
		// for a run that marked no create).
		args = append(args, "throttled_create", "@")
	}
	if t.refusedCreate != "" {
		// Stamped with this create's end as the script writes it
		// (nothing, for a run that marked no create).
		args = append(args, "refused_create", t.refusedCreate)
	}
	if t.providerOrderID != "" {
		args = append(args, "provider_order_id", t.providerOrderID)
	}
	switch {
	case t.matched:
		args = append(args, "matched", "1")
	case t.operatorID:
		args = append(args, "matched", matchedByOperator)
	}
	if t.setReason {
		args = append(args, "reason", t.reason)
	}
	if !t.pendingSince.IsZero() {
		args = append(args, "pending_since", ms(t.pendingSince))
	}
	if !t.nextCheck.IsZero() {
		args = append(args, "next_check", ms(t.nextCheck))
	}
	if t.outcome {
		args = append(args, "outcome_at", stamp)
	}
	switch {
	case t.absentLag != nil:
		args = append(args, "absent_lag", strconv.FormatInt(t.absentLag.Milliseconds(), 10))
	case t.forgetAbsentLag:
		args = append(args, "absent_lag", "")
	}
	if t.mayExist != nil {
		v := "0"
		if *t.mayExist {
			v = "1"
		}
		args = append(args, "may_exist", v)
	}
	if t.setKnown {
		b, _ := json.Marshal(t.known)
		// Stamped on Redis's clock by the script ("*"): the snapshot's age
		// is judged on it (see the handler's judgeClock).
		from := ""
		if !t.knownAt.IsZero() {
			from = ms(t.knownAt)
		}
		args = append(args, "known", b, "known_at", "*", "known_from", from, "known_target", t.knownTarget)
	} else if t.afresh {
		args = append(args, "known", "", "known_at", "", "known_from", "", "known_target", "")
	}
	if t.targetUnknown {
		// A create this record does not know of (SetUnknownSince): where
		// it went is not known either.
		args = append(args, "create_target", "")
	}
	if t.afresh {
		args = append(args, "first_attempt", ms(t.firstAttempt))
	}
	if t.redriven {
		// The order goes back to submission as an operator decided: a
		// refusal recorded before is no longer the order's answer.
		args = append(args, "redriven", stamp, "refused_create", "")
	}
	if t.held {
		args = append(args, "held_at", stamp)
	}
	if !t.unseenAt.IsZero() {
		args = append(args, "unseen_at", ms(t.unseenAt))
	}
	if !t.lookedFirst.IsZero() {
		args = append(args, "looked_first", ms(t.lookedFirst), "look_only", "1")
		if !t.lookedFirstAt.IsZero() {
			args = append(args, "last_create", ms(t.lookedFirstAt))
		}
	}
	if t.clearPaySent {
		args = append(args, "pay_sent", ms(t.paySentBefore), "pays", strconv.Itoa(t.paysBefore))
	}
	if !t.payAccepted.IsZero() {
		args = append(args, "pay_accepted", ms(t.payAccepted))
	} else if t.forgetPayAccepted {
		args = append(args, "pay_accepted", "")
	}
	durable := t.to != ""
	v, acked, err := l.runShared(ctx, settleScript, durable, []string{sh.recordKey(ref), sh.historyKey(ref), sh.ownerKey(ref.Provider), sh.events}, args...)
	if err != nil {
		return fmt.Errorf("settle order step: %w", err)
	}
	res, _ := v.([]any)
	kind := ""
	if len(res) > 0 {
		kind, _ = res[0].(string)
	}
	switch kind {
	case "ok":
		if !acked || !reserved {
			return ErrNotDurable
		}
		return nil
	case "missing":
		return ErrNotFound
	case "lost":
		return ErrLeaseLost
	case "owned":
		owner, _ := res[1].(string)
		return &OwnedError{ProviderOrderID: t.providerOrderID, Owner: owner}
	}
	return fmt.Errorf("settle order step: unexpected reply %v", v)
}

// reserveScript makes ARGV[2] the owner of provider order id ARGV[1]
// unless another order owns it; it replies the owner.
var reserveScript = redis.NewScript(`
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then return ARGV[2] end
return redis.call('HGET', KEYS[1], ARGV[1])
`)

// reserveOwner records ref's order as the owner of a provider order id in
// the id's shard, before the settle script records the id in the order's
// own (a ledger of more than one shard cannot do both in one script). It
// returns *OwnedError when another order owns the id. A reservation whose
// settle never ran stays: the id counts as this order's, so no other
// order can be settled with it; only this order can.
func (l *Ledger) reserveOwner(ctx context.Context, ref Ref, scope, id string) error {
	f := OwnerField(scope, id)
	sh := l.ownerShard(ref.Provider, f)
	v, acked, err := l.run(ctx, reserveScript, true, []string{sh.ownerKey(ref.Provider)}, f, ref.OrderNo)
	if err != nil {
		return fmt.Errorf("settle order step: reserve provider order id: %w", err)
	}
	if owner, _ := v.(string); owner != ref.OrderNo {
		return &OwnedError{ProviderOrderID: id, Owner: owner}
	}
	if !acked {
		return ErrNotDurable
	}
	return nil
}

// extendScript moves the lease of token ARGV[1] to ARGV[2] ms from now
// on Redis's clock.
var extendScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'lease') == ARGV[1] then
  local t = redis.call('TIME')
  local snow = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('HSET', KEYS[1], 'lease_until', string.format('%.0f', snow + tonumber(ARGV[2])))
  return 1
end
return 0
`)

// KeepAlive extends the order's lease held by token every ttl/3 until stop
// is called, counting from now (KeepAliveFrom).
func (l *Ledger) KeepAlive(ctx context.Context, ref Ref, token string, ttl time.Duration) (context.Context, func()) {
	return l.KeepAliveFrom(ctx, ref, token, ttl, time.Now())
}

// KeepAliveFrom extends the order's lease held by token, taken by a Begin
// sent at began (this process's clock), until stop is called: a third of
// ttl after it was last set, so at once when the lease is already that
// old. The returned context is cancelled, with ErrLeaseLost as its cause,
// when the lease is another's, or when it could not be extended and less
// than two fifths of ttl are surely left of it: the caller must then stop
// what it does before another run may take the order. An extension Redis
// fails (a timeout, a reset connection) is tried again while more than
// that is left: one Redis blip does not cut a create or a pay short, which
// would leave it unsure whether it went through. The margin covers an
// extension a failover lost (extensions are not waited for by replicas):
// the new master's lease may end a third of ttl before the one this
// process last set.
func (l *Ledger) KeepAliveFrom(ctx context.Context, ref Ref, token string, ttl time.Duration, began time.Time) (context.Context, func()) {
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	margin := ttl/3 + ttl/15
	ctx, cancel := context.WithCancelCause(ctx)
	var mu sync.Mutex
	stopped := false
	var timer *time.Timer
	// set is when the lease was last set (sent): it ends ttl after, on
	// Redis's clock, no earlier on this one.
	set := began
	left := func() time.Duration { return ttl - HeldSince(set, time.Now()) }
	var extend func()
	extend = func() {
		sent := time.Now()
		c, done := context.WithTimeout(context.Background(), min(ttl/3, left()-margin))
		n, err := extendScript.Run(c, l.rdb, []string{l.shardOf(ref).recordKey(ref)}, token, ttl.Milliseconds()).Int64()
		done()
		mu.Lock()
		defer mu.Unlock()
		switch {
		case stopped:
			return
		case err == nil && n == 1:
			set = sent
			timer = time.AfterFunc(max(ttl/3-HeldSince(sent, time.Now()), 0), extend)
		case err == nil, left() <= margin+ttl/30:
			cancel(ErrLeaseLost)
		default:
			timer = time.AfterFunc(min(ttl/30, left()-margin-ttl/30), extend)
		}
	}
	mu.Lock()
	timer = time.AfterFunc(max(ttl/3-HeldSince(began, time.Now()), 0), extend)
	mu.Unlock()
	return ctx, func() {
		mu.Lock()
		stopped = true
		timer.Stop()
		mu.Unlock()
		cancel(nil)
	}
}

// HeldSince is how long ago at was, at now: the longer of the monotonic
// and the wall-clock readings. Go's monotonic clock (CLOCK_MONOTONIC on
// Linux) does not advance while a machine or VM is suspended, while Redis,
// which times leases, keeps running; the wall clock does. A wall clock
// stepped forward only makes a lease look older (stricter); one stepped
// back is outweighed by the monotonic reading.
func HeldSince(at, now time.Time) time.Duration {
	return max(now.Sub(at), now.Round(0).Sub(at.Round(0)))
}
