package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/tasks/ledger"
)

// An endpoint's keys for one events stream (one per ledger shard) carry
// the stream's hash tag, so that the scripts below, which touch both, run
// on one slot of a Redis Cluster too: "orderworker:{TAG}:webhook:ID:…".

// endpointsKey maps each endpoint id to what is known of it (endpointInfo).
const endpointsKey = "orderworker:{ledger}:webhook:endpoints"

// EndpointID names an endpoint in Redis: a hash of its URL, so that
// reordering ORDERWORKER_WEBHOOK_URLS keeps each endpoint's consumer group,
// backlog and failed events.
func EndpointID(rawURL string) string {
	sum := sha256.Sum256([]byte(rawURL))
	return hex.EncodeToString(sum[:6])
}

// DisplayURL is a URL as logs and listings show it: scheme, host and path,
// without credentials, query or fragment (which may hold a token), and
// with every path segment that may be a token shown as "…" (Slack-style
// URLs keep their secret in the path): only lowercase words (up to 32
// lowercase letters, '-', '_' and '.') and short names (up to 8 letters,
// digits, '-', '_' and '.') are shown. Endpoint ids tell apart endpoints
// that show alike.
func DisplayURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return "(unparsable URL)"
	}
	segs := strings.Split(u.EscapedPath(), "/")
	for i, s := range segs {
		if !plainSegment(s) {
			segs[i] = "…"
		}
	}
	return u.Scheme + "://" + u.Host + strings.Join(segs, "/")
}

func plainSegment(s string) bool {
	word := true // lowercase letters, '-', '_', '.' only
	for _, r := range s {
		switch {
		case 'a' <= r && r <= 'z', r == '-', r == '_', r == '.':
		case 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
			word = false
		default:
			return false
		}
	}
	return len(s) <= 8 || word && len(s) <= 32
}

// keys are one endpoint's Redis keys for one events stream. Per endpoint
// and stream:
//
//   - group: its consumer group on the events stream; entries read from it
//     are admitted (copied to ev, queued) and acknowledged in one script;
//   - ev: event id -> the stream entry's fields (JSON), kept until the event
//     is delivered or discarded, so stream retention never loses an
//     undelivered event;
//   - st: event id -> delivery state (JSON: attempts, since, last error);
//   - q:PROVIDER:ORDER_NO: the order's undelivered event ids, oldest first;
//     only the head is ever sent;
//   - due: the heads, scored by when to send next (unix ms); a lease pushes
//     the score past the lease's end, so a process that dies mid-delivery
//     leaves an entry that any process sends again once the lease is over;
//   - backlog: every admitted, undelivered event, scored by since (unix ms);
//   - failed: events given up on, scored by when (unix ms).
//
// Per stream, shared by the endpoints:
//
//   - lost: endpoint id -> how many events were lost for it: trimmed from
//     the stream before any worker admitted them (admitScript).
type keys struct {
	id, base, group, ev, st, due, backlog, failed, lost string
	stream                                              ledger.EventStream
}

func keysFor(id string, stream ledger.EventStream) keys {
	base := "orderworker:{" + stream.Tag + "}:webhook:" + id + ":"
	return keys{id: id, base: base, group: "webhook:" + id, ev: base + "ev", st: base + "st",
		due: base + "due", backlog: base + "backlog", failed: base + "failed",
		lost: lostKey(stream), stream: stream}
}

// lostKey is the lost hash of an events stream (see keys).
func lostKey(stream ledger.EventStream) string {
	return "orderworker:{" + stream.Tag + "}:webhook:lost"
}

// state is an event's delivery state (the st hash).
type state struct {
	Attempts int    `json:"n"`
	Since    int64  `json:"since,string,omitempty"` // unix ms the MAX_AGE clock starts at: the event's time, or its re-send
	Err      string `json:"err,omitempty"`          // the last failure
	LastAt   int64  `json:"at,string,omitempty"`    // unix ms of the last attempt
}

func parseState(s, id string) state {
	var st state
	if s != "" {
		_ = json.Unmarshal([]byte(s), &st)
	}
	if st.Since == 0 {
		st.Since = idMillis(id)
	}
	return st
}

func (st state) json() string {
	b, _ := json.Marshal(st)
	return string(b)
}

// idMillis is the unix ms of a stream id ("1700000000000-0").
func idMillis(id string) int64 {
	ms, _, _ := strings.Cut(id, "-")
	n, _ := strconv.ParseInt(ms, 10, 64)
	return n
}

// compareIDs orders stream ids.
func compareIDs(a, b string) int {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	an, _ := strconv.ParseUint(am, 10, 64)
	bn, _ := strconv.ParseUint(bm, 10, 64)
	if an != bn {
		if an < bn {
			return -1
		}
		return 1
	}
	asq, _ := strconv.ParseUint(as, 10, 64)
	bsq, _ := strconv.ParseUint(bs, 10, 64)
	switch {
	case asq < bsq:
		return -1
	case asq > bsq:
		return 1
	}
	return 0
}

// luaFields is a Lua helper the scripts below share: fields(a) turns an
// XINFO reply's flat name, value list into a table.
const luaFields = `
local function fields(a)
  local t = {}
  for i = 1, #a, 2 do t[a[i]] = a[i + 1] end
  return t
end`

// admitScript reads the endpoint's group and admits what it read. In one
// call, so that no read escapes the check before it:
//
//  1. It counts the entries the group never read that the stream no
//     longer holds: trimmed by retention while no worker read the group
//     (every webhook worker stopped while orders were settled). Redis 7
//     counts the entries a stream was ever given (XINFO STREAM
//     entries-added) and those a group read (XINFO GROUPS entries-read):
//     when the group's last read entry comes before the stream's first
//     one, every entry after it that the stream no longer holds is such a
//     loss; so is, once the group has read everything, whatever the two
//     counts still differ by (a gap a read passed over, which Redis before
//     8 keeps in the group's count). The group's read count is then raised
//     by the loss (XGROUP SETID, same position, ENTRIESREAD), so that no
//     later call counts it again, whoever makes it. The group's read
//     count is taken from the endpoint's own copy of it (ARGV[3]..read),
//     kept beside it: Redis 7.0 loses the group's on a restart from its
//     AOF and on its replicas, and every entry would then look lost.
//     Redis 6.2 keeps neither count: there such a loss goes uncounted.
//  2. It reads up to ARGV[6] new entries (XREADGROUP >; none when 0).
//  3. It takes every entry pending in the group (read by any consumer,
//     live or dead, and not yet admitted) with XAUTOCLAIM, in stream
//     order, and for each: copies its fields to ev, appends it to its
//     order's queue (scheduling it at once when it is the queue's head),
//     adds it to the backlog, and acknowledges it. Because it always takes
//     the whole pending list in id order, events are admitted in stream
//     order whichever process read them, and one that died between reading
//     and admitting loses nothing. Entries the stream no longer holds
//     (trimmed) are counted as lost and acknowledged: Redis 7 drops them
//     from the pending list itself (and lists them apart), Redis 6.2 keeps
//     them pending, where they would stay for good (pinning the oldest
//     unadmitted event's age), so each claimed id is looked up in the
//     stream. An event of an order whose earlier event failed (its blocked
//     list f:ORDER exists) goes straight to failed behind it, never ahead
//     of it.
//
// Every loss is added to the endpoint's total in the lost hash (field: the
// endpoint's id), which the metrics export: counted once, by whichever
// process finds it, and kept across restarts.
//
// One call takes at most 20 batches of pending entries: it replies whether
// it went through the whole pending list (XAUTOCLAIM's cursor came back to
// 0-0); when not, the entries past where it stopped wait for the next call.
//
// KEYS: stream, ev, due, backlog, failed, st, lost. ARGV: group, consumer,
// key base, now (ms), batch size, entries to read, endpoint id. Replies
// {admitted, lost read (trimmed while pending), done (1 or 0), lost
// unread (trimmed before any read), entries read, the group's last read
// id (” when unknown)}.
var admitScript = redis.NewScript(luaFields + `
-- a before b, stream ids compared as the decimal strings they are (their
-- parts may exceed what a Lua number holds exactly)
local function before(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if not (am and bm) then return a < b end
  if am ~= bm then
    if #am ~= #bm then return #am < #bm end
    return am < bm
  end
  if #as ~= #bs then return #as < #bs end
  return as < bs
end
-- groupRead is the group's read count: the endpoint's own copy (readKey),
-- which Redis's group count is set back to where they differ, else the
-- group's, which the copy then starts from. Redis 7.0 loses the group's
-- count on a restart from its AOF or on a replica (it writes XREADGROUP
-- there as an XCLAIM that does not carry it), and every entry ever added
-- would then look lost; the copy is written as any other key.
-- Redis only ever loses the group's count downward (back to what it was
-- at the group's creation), so the larger of the two stands: a worker of an
-- earlier version, reading without raising the copy, leaves the group's
-- count ahead of it. A copy above what the stream was ever given is stale
-- (the stream deleted and its group made again) and is dropped.
local readKey = ARGV[3] .. 'read'
local function groupRead(g, added)
  local own, theirs = tonumber(redis.call('GET', readKey) or ''), tonumber(g['entries-read'])
  if own and added and own > added then own = nil end
  if own and theirs and theirs > own then own = nil end
  if own then
    if theirs ~= own then
      redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], g['last-delivered-id'], 'ENTRIESREAD', own)
    end
    return own
  end
  if theirs then redis.call('SET', readKey, theirs) else redis.call('DEL', readKey) end
  return theirs
end
-- unreadLost counts (and marks as counted) the entries the group never
-- read that the stream no longer holds; caughtUp: the group has just read
-- every entry the stream holds. It also replies the group's last read id.
local function unreadLost(caughtUp)
  local si = redis.pcall('XINFO', 'STREAM', KEYS[1])
  local gi = redis.pcall('XINFO', 'GROUPS', KEYS[1])
  if type(si) ~= 'table' or si.err or type(gi) ~= 'table' or gi.err then return 0, nil end
  local s, g = fields(si), nil
  for _, x in ipairs(gi) do
    local f = fields(x)
    if f['name'] == ARGV[1] then g = f end
  end
  if not g then return 0, nil end
  local last = g['last-delivered-id']
  local added = tonumber(s['entries-added'])
  local read = groupRead(g, added)
  if not (added and read) then return 0, last end
  local unread
  local first = s['first-entry']
  if caughtUp then
    unread = 0
  elseif not first or before(last, first[1]) then
    unread = tonumber(s['length'])
  else
    return 0, last
  end
  local n = added - read - unread
  if n <= 0 then return 0, last end
  redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], last, 'ENTRIESREAD', read + n)
  redis.call('SET', readKey, read + n)
  return n, last
end

local unread, last = unreadLost(false)
local want, got = tonumber(ARGV[6]), 0
if want > 0 then
  local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', want, 'STREAMS', KEYS[1], '>')
  if r and r[1] then
    local es = r[1][2]
    got = #es
    if got > 0 then
      last = es[got][1]
      if redis.call('EXISTS', readKey) == 1 then redis.call('INCRBY', readKey, got) end
    end
  end
  if got < want then
    local n = unreadLost(true)
    unread = unread + n
  end
end

local admitted, lost = 0, 0
local cursor = '0-0'
for round = 1, 20 do
  local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, cursor, 'COUNT', ARGV[5], 'JUSTID')
  cursor = r[1]
  for _, id in ipairs(r[2]) do
    local e = redis.call('XRANGE', KEYS[1], id, id)[1]
    if not e then
      -- trimmed, and still pending (Redis 6.2)
      lost = lost + 1
    else
      local f = e[2]
      local t = {}
      for i = 1, #f, 2 do t[f[i]] = f[i + 1] end
      if redis.call('HSETNX', KEYS[2], id, cjson.encode(t)) == 1 then
        local order = (t['provider'] or '') .. ':' .. (t['order_no'] or '')
        local fq = ARGV[3] .. 'f:' .. order
        if redis.call('EXISTS', fq) == 1 then
          local first = redis.call('LINDEX', fq, 0)
          redis.call('RPUSH', fq, id)
          redis.call('ZADD', KEYS[5], ARGV[4], id)
          redis.call('HSET', KEYS[6], id, cjson.encode({n = 0, err = 'an earlier event of the order failed: ' .. first}))
        else
          local ms = string.match(id, '^(%d+)')
          redis.call('ZADD', KEYS[4], ms, id)
          local q = ARGV[3] .. 'q:' .. order
          if redis.call('RPUSH', q, id) == 1 then
            redis.call('ZADD', KEYS[3], ARGV[4], id)
          end
        end
        admitted = admitted + 1
      end
    end
    redis.call('XACK', KEYS[1], ARGV[1], id)
  end
  -- Redis 7: trimmed entries, dropped from the pending list
  if r[3] then lost = lost + #r[3] end
  if cursor == '0-0' then break end
end
if lost + unread > 0 then
  redis.call('HINCRBY', KEYS[7], ARGV[7], lost + unread)
end
return {admitted, lost, cursor == '0-0' and 1 or 0, unread, got, last or ''}
`)

// groupScript creates an endpoint's consumer group at the stream's end
// (and the stream, if need be), unless it exists. On Redis 7 it gives the
// group its read count (ENTRIESREAD: every entry the stream was given), which
// XGROUP CREATE leaves unknown until the group's first read, and which
// admitScript needs to tell the entries trimmed before the group read them.
// An existing group without one that has read every entry gets it too.
//
// A group created here starts the endpoint's own copy of its read count
// (see admitScript) afresh.
//
// KEYS: stream. ARGV: group, key base.
var groupScript = redis.NewScript(luaFields + `
local r = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '$', 'MKSTREAM')
if type(r) == 'table' and r.err and not string.find(r.err, 'BUSYGROUP', 1, true) then
  return r
end
local created = not (type(r) == 'table' and r.err)
local si = fields(redis.call('XINFO', 'STREAM', KEYS[1]))
local added = tonumber(si['entries-added'])
if created then redis.call('DEL', ARGV[2] .. 'read') end
if not added then return 0 end -- Redis 6.2
for _, x in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local g = fields(x)
  if g['name'] == ARGV[1] and not tonumber(g['entries-read']) and g['last-delivered-id'] == si['last-generated-id'] then
    redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], '$', 'ENTRIESREAD', added)
  end
end
return 0
`)

// leaseScript takes up to ARGV[3] heads due by ARGV[1] and pushes their
// score to ARGV[2] (the lease's end). It replies the leased events
// ({id, fields, state} each) and the earliest score still in due (” when
// none).
//
// KEYS: due, ev, st.
var leaseScript = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
  out[#out + 1] = {id, redis.call('HGET', KEYS[2], id) or '', redis.call('HGET', KEYS[3], id) or ''}
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {out, nxt[2] or ''}
`)

// doneScript records a delivery: the event leaves the endpoint's keys and
// its order's next event, if any, is due at once. A delivery recorded
// already (by a process whose lease had run out) changes nothing. An event
// given up on meanwhile (another process's attempt failed at MAX_AGE while
// this one's lease had run out) leaves failed and its order's blocked list:
// it was delivered.
//
// KEYS: due, ev, st, backlog, failed. ARGV: key base, id, now (ms).
// Replies 1 when it recorded the delivery.
var doneScript = redis.NewScript(`
local e = redis.call('HGET', KEYS[2], ARGV[2])
if not e then
  -- recorded already, or without content: never to be leased again
  redis.call('ZREM', KEYS[1], ARGV[2])
  redis.call('ZREM', KEYS[4], ARGV[2])
  redis.call('ZREM', KEYS[5], ARGV[2])
  redis.call('HDEL', KEYS[3], ARGV[2])
  return 0
end
local ok, t = pcall(cjson.decode, e)
if not ok then t = {} end
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[2])
local order = (t['provider'] or '') .. ':' .. (t['order_no'] or '')
if redis.call('ZREM', KEYS[5], ARGV[2]) == 1 then
  redis.call('LREM', ARGV[1] .. 'f:' .. order, 1, ARGV[2])
end
local q = ARGV[1] .. 'q:' .. order
if redis.call('LINDEX', q, 0) == ARGV[2] then
  redis.call('LPOP', q)
else
  redis.call('LREM', q, 1, ARGV[2])
end
local nxt = redis.call('LINDEX', q, 0)
if nxt then redis.call('ZADD', KEYS[1], ARGV[3], nxt) end
return 1
`)

// retryScript schedules the next attempt of a leased head, if the lease
// (its score) is still the caller's.
//
// KEYS: due, st. ARGV: id, lease score, next attempt (ms), state JSON.
var retryScript = redis.NewScript(`
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s or tonumber(s) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
return 1
`)

// giveUpScript moves a leased head, if the lease is still the caller's,
// and every event queued behind it for the same order to failed, and
// lists them in the order's blocked list (f:ORDER): until they are re-sent
// or discarded, the order's later events join them there (admitScript), so
// that none overtakes them.
//
// KEYS: due, ev, st, backlog, failed. ARGV: key base, id, lease score, now
// (ms), state JSON. Replies the number of events moved.
var giveUpScript = redis.NewScript(`
local s = redis.call('ZSCORE', KEYS[1], ARGV[2])
if not s or tonumber(s) ~= tonumber(ARGV[3]) then return 0 end
local e = redis.call('HGET', KEYS[2], ARGV[2])
local ok, t = pcall(cjson.decode, e or '')
if not ok then t = {} end
local q = ARGV[1] .. 'q:' .. (t['provider'] or '') .. ':' .. (t['order_no'] or '')
local ids = redis.call('LRANGE', q, 0, -1)
local moved = 0
local function fail(id, st)
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[4], id)
  redis.call('ZADD', KEYS[5], ARGV[4], id)
  redis.call('HSET', KEYS[3], id, st)
  moved = moved + 1
end
local fq = ARGV[1] .. 'f:' .. (t['provider'] or '') .. ':' .. (t['order_no'] or '')
fail(ARGV[2], ARGV[5])
redis.call('RPUSH', fq, ARGV[2])
for _, id in ipairs(ids) do
  if id ~= ARGV[2] then
    fail(id, cjson.encode({n = 0, err = 'an earlier event of the order failed: ' .. ARGV[2]}))
    redis.call('RPUSH', fq, id)
  end
end
redis.call('DEL', q)
return moved
`)

// resendScript moves failed events back to delivery, in the order given
// (the caller sorts them by id): each joins its order's queue, due at once
// when it is the head, with its attempts reset and its MAX_AGE clock
// starting now. Re-sending one event of an order whose events are blocked
// behind a failure (f:ORDER) re-sends all of them with it, oldest first,
// and unblocks the order.
//
// KEYS: due, ev, st, backlog, failed. ARGV: key base, now (ms), ids...
// Replies the number moved.
var resendScript = redis.NewScript(`
local moved = 0
local function before(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)')
  local bm, bs = string.match(b, '^(%d+)-(%d+)')
  if not (am and bm) then return a < b end
  if am ~= bm then return tonumber(am) < tonumber(bm) end
  return tonumber(as) < tonumber(bs)
end
local function back(id, q)
  if not redis.call('HGET', KEYS[2], id) then
    -- delivered meanwhile (its content is gone): nothing to send
    redis.call('ZREM', KEYS[5], id)
    redis.call('HDEL', KEYS[3], id)
    return
  end
  if redis.call('ZREM', KEYS[5], id) == 1 then
    redis.call('HSET', KEYS[3], id, cjson.encode({n = 0, since = ARGV[2]}))
    redis.call('ZADD', KEYS[4], ARGV[2], id)
    if redis.call('RPUSH', q, id) == 1 then
      redis.call('ZADD', KEYS[1], ARGV[2], id)
    end
    moved = moved + 1
  end
end
for i = 3, #ARGV do
  local id = ARGV[i]
  local e = redis.call('HGET', KEYS[2], id)
  if e and redis.call('ZSCORE', KEYS[5], id) then
    local ok, t = pcall(cjson.decode, e)
    if not ok then t = {} end
    local order = (t['provider'] or '') .. ':' .. (t['order_no'] or '')
    local q = ARGV[1] .. 'q:' .. order
    local fq = ARGV[1] .. 'f:' .. order
    local ids = redis.call('LRANGE', fq, 0, -1)
    redis.call('DEL', fq)
    ids[#ids + 1] = id
    table.sort(ids, before)
    for _, b in ipairs(ids) do back(b, q) end
  end
end
return moved
`)

// discardScript deletes failed events for good, and takes each off its
// order's blocked list (the order is unblocked once none is left there).
// KEYS: ev, st, failed. ARGV: key base, ids. Replies the number deleted.
var discardScript = redis.NewScript(`
local n = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('ZREM', KEYS[3], id) == 1 then
    local ok, t = pcall(cjson.decode, redis.call('HGET', KEYS[1], id) or '')
    if ok and type(t) == 'table' then
      redis.call('LREM', ARGV[1] .. 'f:' .. (t['provider'] or '') .. ':' .. (t['order_no'] or ''), 1, id)
    end
    redis.call('HDEL', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    n = n + 1
  end
end
return n
`)

// Store reads and changes what the dispatcher keeps in Redis: the
// endpoints it knows, their backlogs and their failed events. Operators
// reach it through enqueue webhooks. It is safe for concurrent use.
type Store struct {
	rdb     redis.UniversalClient
	streams []ledger.EventStream
	now     func() time.Time
}

// NewStore returns a Store on rdb for the events streams of a ledger
// (Ledger.EventStreams).
func NewStore(rdb redis.UniversalClient, streams []ledger.EventStream) *Store {
	return &Store{rdb: rdb, streams: streams, now: newRedisClock(rdb).Now}
}

// EndpointInfo is an endpoint as the store knows it.
type EndpointInfo struct {
	ID  string `json:"id"`
	URL string `json:"url"` // DisplayURL
	// Index is the endpoint's place in ORDERWORKER_WEBHOOK_URLS when a
	// worker last registered it: its metrics' endpoint label.
	Index int `json:"index"`
	// Registered is when a worker last registered it (at its start, on
	// Redis's clock): an endpoint dropped from the setting, or replaced by
	// another URL, keeps its index and an older time than the one now in
	// its place. Zero when a version that kept no time registered it.
	Registered time.Time `json:"registered,omitzero"`
	// Backlog counts events admitted but not yet delivered (waiting,
	// retrying or behind an earlier event of their order).
	Backlog int64 `json:"backlog"`
	// OldestUndelivered is when the oldest of them became due (its
	// event's time, or its re-send); zero when none.
	OldestUndelivered time.Time `json:"oldest_undelivered,omitzero"`
	// Unadmitted counts events the stream holds that no worker has taken
	// for this endpoint yet (its consumer group's lag), -1 when unknown.
	Unadmitted int64 `json:"unadmitted"`
	Failed     int64 `json:"failed"`
	// Lost counts events never delivered to the endpoint because the
	// stream's retention trimmed them before any worker admitted them for
	// it, since Redis first kept the count.
	Lost int64 `json:"lost"`
}

type endpointRecord struct {
	URL   string `json:"url"`
	Index int    `json:"index"`
	// At is when it was registered (ms, Redis's clock); 0 when unknown.
	At int64 `json:"at,omitempty"`
}

// register records an endpoint for listings.
func (s *Store) register(ctx context.Context, id, display string, index int) error {
	b, _ := json.Marshal(endpointRecord{URL: display, Index: index, At: s.now().UnixMilli()})
	return s.rdb.HSet(ctx, endpointsKey, id, b).Err()
}

// Endpoints lists every endpoint a worker registered, with its counts,
// ordered by index.
func (s *Store) Endpoints(ctx context.Context) ([]EndpointInfo, error) {
	all, err := s.rdb.HGetAll(ctx, endpointsKey).Result()
	if err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	ids := make([]string, 0, len(all))
	for id := range all {
		ids = append(ids, id)
	}
	return s.infos(ctx, ids, all)
}

// infos is the counts of the endpoints ids, with what all (the endpoints
// hash) records of them, ordered by index, then id.
func (s *Store) infos(ctx context.Context, ids []string, all map[string]string) ([]EndpointInfo, error) {
	out := make([]EndpointInfo, 0, len(ids))
	for _, id := range ids {
		info, err := s.Stats(ctx, id)
		if err != nil {
			return nil, err
		}
		var rec endpointRecord
		_ = json.Unmarshal([]byte(all[id]), &rec)
		info.URL, info.Index = rec.URL, rec.Index
		if rec.At > 0 {
			info.Registered = time.UnixMilli(rec.At).UTC()
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b EndpointInfo) int {
		if a.Index != b.Index {
			return a.Index - b.Index
		}
		if c := b.Registered.Compare(a.Registered); c != 0 {
			return c // the latest registered first
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Unconfigured lists the endpoints Redis knows that are not among urls and
// still hold undelivered or failed events: no worker configured with urls
// delivers them. An endpoint's id is a hash of its URL, so changing a URL
// in any way (a new token in its query, a trailing slash) leaves the old
// endpoint's events behind.
func (s *Store) Unconfigured(ctx context.Context, urls []string) ([]EndpointInfo, error) {
	configured := map[string]bool{}
	for _, u := range urls {
		configured[EndpointID(u)] = true
	}
	all, err := s.rdb.HGetAll(ctx, endpointsKey).Result()
	if err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	var dropped []string
	for id := range all {
		if !configured[id] {
			dropped = append(dropped, id)
		}
	}
	slices.Sort(dropped)
	held, err := s.holding(ctx, dropped)
	if err != nil {
		return nil, err
	}
	if len(held) == 0 {
		return nil, nil
	}
	return s.infos(ctx, held, all)
}

// holding returns those of ids (in their order) whose endpoints hold
// undelivered or failed events, in one round trip however many there are:
// the endpoints hash keeps every endpoint ever registered, and most of the
// dropped ones hold nothing.
func (s *Store) holding(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	counts := make([][]*redis.IntCmd, len(ids))
	for i, id := range ids {
		for _, stream := range s.streams {
			k := keysFor(id, stream)
			counts[i] = append(counts[i], pipe.ZCard(ctx, k.backlog), pipe.ZCard(ctx, k.failed))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read webhook endpoints: %w", err)
	}
	var out []string
	for i, id := range ids {
		if slices.ContainsFunc(counts[i], func(c *redis.IntCmd) bool { return c.Val() > 0 }) {
			out = append(out, id)
		}
	}
	return out, nil
}

// Stats reads one endpoint's counts (not its URL or index), summed over
// the events streams.
func (s *Store) Stats(ctx context.Context, id string) (EndpointInfo, error) {
	info := EndpointInfo{ID: id}
	for _, stream := range s.streams {
		k := keysFor(id, stream)
		pipe := s.rdb.Pipeline()
		backlog := pipe.ZCard(ctx, k.backlog)
		oldest := pipe.ZRangeWithScores(ctx, k.backlog, 0, 0)
		failed := pipe.ZCard(ctx, k.failed)
		lost := pipe.HGet(ctx, k.lost, id)
		held := pipe.XLen(ctx, stream.Key)
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return EndpointInfo{}, fmt.Errorf("read webhook endpoint %s: %w", id, err)
		}
		info.Backlog += backlog.Val()
		info.Failed += failed.Val()
		if n, err := lost.Int64(); err == nil {
			info.Lost += n
		}
		if z := oldest.Val(); len(z) > 0 {
			if o := time.UnixMilli(int64(z[0].Score)).UTC(); info.OldestUndelivered.IsZero() || o.Before(info.OldestUndelivered) {
				info.OldestUndelivered = o
			}
		}
		lag := int64(-1)
		if groups, err := s.rdb.XInfoGroups(ctx, stream.Key).Result(); err == nil {
			for _, g := range groups {
				if g.Name == k.group && g.Lag >= 0 {
					// The lag counts entries retention trimmed before the
					// group read them (they are Lost): no more than the
					// stream holds are waiting.
					lag = min(g.Lag+g.Pending, held.Val())
				}
			}
		}
		switch {
		case lag < 0 || info.Unadmitted < 0:
			info.Unadmitted = -1
		default:
			info.Unadmitted += lag
		}
	}
	return info, nil
}

// FailedEvent is an event given up on for an endpoint.
type FailedEvent struct {
	Endpoint string       `json:"endpoint"`
	Event    ledger.Event `json:"event"`
	FailedAt time.Time    `json:"failed_at"`
	Attempts int          `json:"attempts"`
	// LastError is the last attempt's failure, or why it was never sent
	// (an earlier event of its order failed).
	LastError string `json:"last_error,omitempty"`
}

// Failed lists up to limit failed events of an endpoint, oldest failure
// first.
func (s *Store) Failed(ctx context.Context, id string, limit int64) ([]FailedEvent, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []FailedEvent
	for _, stream := range s.streams {
		k := keysFor(id, stream)
		z, err := s.rdb.ZRangeWithScores(ctx, k.failed, 0, limit-1).Result()
		if err != nil {
			return nil, fmt.Errorf("list failed webhook events: %w", err)
		}
		if len(z) == 0 {
			continue
		}
		ids := make([]string, len(z))
		for i, m := range z {
			ids[i], _ = m.Member.(string)
		}
		pipe := s.rdb.Pipeline()
		evs := pipe.HMGet(ctx, k.ev, ids...)
		sts := pipe.HMGet(ctx, k.st, ids...)
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("list failed webhook events: %w", err)
		}
		for i, id := range ids {
			fields, _ := evs.Val()[i].(string)
			stv, _ := sts.Val()[i].(string)
			st := parseState(stv, id)
			out = append(out, FailedEvent{Endpoint: k.id, Event: eventOf(stream, id, fields),
				FailedAt: time.UnixMilli(int64(z[i].Score)).UTC(), Attempts: st.Attempts, LastError: st.Err})
		}
	}
	slices.SortStableFunc(out, func(a, b FailedEvent) int { return a.FailedAt.Compare(b.FailedAt) })
	if int64(len(out)) > limit {
		out = out[:limit]
	}
	return out, nil
}

// failedIDs returns the endpoint's failed entry ids in k's stream among
// the public event ids want (all when want is nil), sorted by id.
func (s *Store) failedIDs(ctx context.Context, k keys, want []string) ([]string, error) {
	all, err := s.rdb.ZRange(ctx, k.failed, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("read failed webhook events: %w", err)
	}
	if want != nil {
		all = slices.DeleteFunc(all, func(id string) bool { return !slices.Contains(want, k.stream.EventID(id)) })
	}
	slices.SortFunc(all, compareIDs)
	return all, nil
}

// FailedEventIDs returns the public ids of an endpoint's failed events.
func (s *Store) FailedEventIDs(ctx context.Context, id string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, stream := range s.streams {
		k := keysFor(id, stream)
		ids, err := s.failedIDs(ctx, k, nil)
		if err != nil {
			return nil, err
		}
		for _, x := range ids {
			out[k.stream.EventID(x)] = true
		}
	}
	return out, nil
}

// Resend moves failed events of an endpoint (the event ids given, or all
// when none) back to delivery, oldest event first, so that one order's
// events go out in order. Their attempts start again and MAX_AGE counts
// from now. It returns how many it moved; ids that are not failed are
// ignored.
func (s *Store) Resend(ctx context.Context, id string, ids []string) (int, error) {
	total := 0
	for _, stream := range s.streams {
		k := keysFor(id, stream)
		todo, err := s.failedIDs(ctx, k, wanted(ids))
		if err != nil {
			return total, err
		}
		for chunk := range slices.Chunk(todo, 500) {
			args := []any{k.base, s.now().UnixMilli()}
			for _, x := range chunk {
				args = append(args, x)
			}
			n, err := resendScript.Run(ctx, s.rdb, []string{k.due, k.ev, k.st, k.backlog, k.failed}, args...).Int()
			total += n
			if err != nil {
				return total, fmt.Errorf("resend webhook events: %w", err)
			}
		}
	}
	return total, nil
}

// Discard deletes failed events of an endpoint (the event ids given, or
// all when none) for good, and returns how many.
func (s *Store) Discard(ctx context.Context, id string, ids []string) (int, error) {
	total := 0
	for _, stream := range s.streams {
		k := keysFor(id, stream)
		todo, err := s.failedIDs(ctx, k, wanted(ids))
		if err != nil {
			return total, err
		}
		for chunk := range slices.Chunk(todo, 500) {
			args := []any{k.base}
			for _, x := range chunk {
				args = append(args, x)
			}
			n, err := discardScript.Run(ctx, s.rdb, []string{k.ev, k.st, k.failed}, args...).Int()
			total += n
			if err != nil {
				return total, fmt.Errorf("discard webhook events: %w", err)
			}
		}
	}
	return total, nil
}

// wanted is nil (every id) for no ids.
func wanted(ids []string) []string {
	if len(ids) == 0 {
		return nil
	}
	return ids
}

// eventOf decodes an event kept in ev (the stream entry's fields as JSON).
func eventOf(stream ledger.EventStream, id, fields string) ledger.Event {
	var m map[string]any
	_ = json.Unmarshal([]byte(fields), &m)
	return stream.Event(redis.XMessage{ID: id, Values: m})
}
