package ledger

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// A batcher sends the ledger scripts that concurrent callers run at the
// same moment to Redis in one pipeline (group commit): one write, one
// read and one pool checkout for the batch instead of one each, and one
// WAIT for all of its writes. Every script still runs atomically on its
// own; a batch only shares the round trip.
//
// There are no goroutines of its own. A caller that finds fewer than
// maxFlushers pipelines in flight sends the queue, its own call included,
// and keeps sending what queued meanwhile; the others wait. A flusher
// sends at most one batch after the one that held its own call, then
// hands the queue to the oldest waiting caller, so no caller serves the
// others for long. With no contention a call goes out at once, alone.
type batcher struct {
	rdb     redis.UniversalClient
	cluster *redis.ClusterClient // rdb, when it is a cluster client
	wait    int64                // WAIT's timeout, ms
	// minReplicas is the fewest replicas a durable write's master must
	// report (cluster; Ledger.want checks a single master).
	minReplicas int64
	// onReplicas receives the replica count a write pipeline read on a
	// single master (the Ledger's cache).
	onReplicas func(n, acked int64, replid, replid2 string)
	// checkRan judges, from the INFO read on the connection that ran a
	// pipeline's writes, whether they count as durable with acked
	// replicas acknowledging them (single master; nil: no check).
	checkRan func(info *redis.StringCmd, recorded *redis.MapStringStringCmd, acked int64) error
	// verifyRan reports whether durable writes are checked now
	// (Ledger.verifyRan), asked again as a batch is sent: the hold may
	// have become known since a call was queued.
	verifyRan func() bool

	nodesMu sync.Mutex
	nodes   map[string]nodeReplicas // by master address (cluster)

	mu       sync.Mutex
	queue    []*call
	flushers int
}

// maxFlushers bounds the pipelines one Ledger has in flight; maxBatch the
// scripts in one pipeline.
const (
	maxFlushers = 1
	maxBatch    = 64
)

var errNoReply = errors.New("redis sent no reply")

// call is one script run.
type call struct {
	ctx    context.Context
	script *redis.Script
	keys   []string
	args   []any
	want   int64 // replicas to WAIT for; 0: none; wantNodes: every replica of its master (cluster)
	// verify: a durable write whose server is checked in the same round
	// trip (a WAIT and an INFO after it, even with want 0), so that one
	// that ran on a master held to more replicas than acknowledged it is
	// not taken for durable (see Ledger.checkRan).
	verify bool
	// durable: the caller takes ack for whether the write is durable
	// (false: a write that needs no acknowledgement).
	durable bool

	sent     bool          // taken from the queue into a batch (under mu)
	promoted bool          // sent a promotion (under mu)
	promote  chan struct{} // this caller is to flush from now on
	done     chan struct{} // closed once val, err and ack are set
	val      any
	err      error
	ack      bool // the replicas acknowledged the write (true when want is 0)
}

// do runs c and returns when its reply (or error) is in c.
func (b *batcher) do(c *call) {
	c.done = make(chan struct{})
	c.promote = make(chan struct{}, 1)
	b.mu.Lock()
	b.queue = append(b.queue, c)
	if b.flushers < maxFlushers {
		b.flushers++
		b.flush(c)
		<-c.done
		return
	}
	b.mu.Unlock()
	select {
	case <-c.promote:
		b.mu.Lock()
		b.flush(c)
		<-c.done
	case <-c.done:
		// A promotion is only ever sent to a queued call, before it is
		// taken: if there was one, it is in the channel by now.
		select {
		case <-c.promote:
			b.mu.Lock()
			b.flush(c)
		default:
		}
	}
}

// flush sends queued batches until own has been sent and one batch more,
// then promotes the oldest queued caller to go on, or stops flushing.
// b.mu is held on entry and released on return.
func (b *batcher) flush(own *call) {
	extra := 0
	for len(b.queue) > 0 && extra < 2 {
		if own.sent {
			extra++
		}
		n := min(len(b.queue), maxBatch)
		batch := b.queue[:n:n]
		b.queue = b.queue[n:]
		if len(b.queue) == 0 {
			b.queue = nil
		}
		for _, c := range batch {
			c.sent = true
		}
		b.mu.Unlock()
		b.exec(batch)
		b.mu.Lock()
	}
	handed := false
	for _, c := range b.queue {
		if !c.promoted {
			// The oldest caller not yet promoted flushes in this one's
			// slot from now on.
			c.promoted, handed = true, true
			c.promote <- struct{}{}
			break
		}
	}
	if !handed {
		b.flushers--
	}
	b.mu.Unlock()
}

// exec sends batch as one pipeline and hands every call its reply.
func (b *batcher) exec(batch []*call) {
	live := batch[:0:0]
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.err = err
			close(c.done)
			continue
		}
		live = append(live, c)
	}
	if len(live) == 0 {
		return
	}
	// Each caller's context was checked above; what bounds the round trip
	// now is the client's read and write timeouts, so that one caller
	// giving up cannot fail the others' calls.
	b.send(context.WithoutCancel(live[0].ctx), live, true)
	for _, c := range live {
		close(c.done)
	}
}

// wantNodes is a call's want on Redis Cluster: WAIT for every replica of
// the master that serves its keys.
const wantNodes = -1

// send runs calls in one pipeline under ctx, with one WAIT for the most
// replicas any of them wants; a call whose script Redis did not have
// (NOSCRIPT: it did not run) is sent again once the script is loaded. On
// Redis Cluster, calls that want their writes acknowledged go to their
// master's own connection, one pipeline per master, each with its WAIT:
// a cluster client cannot route a keyless WAIT to the connection the
// scripts used.
func (b *batcher) send(ctx context.Context, calls []*call, reload bool) {
	if b.cluster != nil && slices.ContainsFunc(calls, func(c *call) bool { return c.want != 0 }) {
		b.sendByNode(ctx, calls, reload)
		return
	}
	b.sendOn(ctx, b.rdb, calls, reload)
}

// nodeReplicas is a master's replica count as last read.
type nodeReplicas struct {
	n      int64
	master bool
	at     time.Time
}

// replicasOf is how many replicas a master reports, read at most every
// few seconds (fresh: read now), and whether the node still says it is a
// master; an error when it cannot be read and never was.
func (b *batcher) replicasOf(ctx context.Context, node *redis.Client, fresh bool) (int64, bool, error) {
	addr := node.Options().Addr
	b.nodesMu.Lock()
	r, ok := b.nodes[addr]
	b.nodesMu.Unlock()
	if ok && !fresh && time.Since(r.at) < 5*time.Second {
		return r.n, r.master, nil
	}
	info, err := readReplication(ctx, node)
	if err != nil {
		if ok {
			return r.n, r.master, nil // the last count read
		}
		return 0, false, fmt.Errorf("%s: %w", addr, err)
	}
	r = b.recordNode(addr, info)
	return r.n, r.master, nil
}

// recordNode keeps what a master's INFO replication reply says.
func (b *batcher) recordNode(addr, info string) nodeReplicas {
	r := nodeReplicas{n: connectedReplicas(info), master: !strings.Contains(info, "role:slave"), at: time.Now()}
	b.nodesMu.Lock()
	if b.nodes == nil {
		b.nodes = map[string]nodeReplicas{}
	}
	b.nodes[addr] = r
	b.nodesMu.Unlock()
	return r
}

// errReplicaAttached stands for a WAIT that counted fewer replicas than
// the master reported right after it.
var errReplicaAttached = errors.New("a replica attached while the writes waited")

// sawReplicas records the replica count an INFO reply read in a pipeline
// on rdb reports (for the next writes' WAIT) and returns it.
// acked is how many replicas the WAIT before it acknowledged (-1: none
// asked, or its reply failed).
func (b *batcher) sawReplicas(rdb redis.UniversalClient, info *redis.StringCmd, acked int64) (int64, bool) {
	s, err := info.Result()
	if err != nil || replicationKnown(s) != nil {
		return 0, false
	}
	if node, ok := rdb.(*redis.Client); ok && b.cluster != nil {
		return b.recordNode(node.Options().Addr, s).n, true
	}
	n := connectedReplicas(s)
	if acked > 0 {
		// A WAIT after a batch that wrote nothing returns at once, with
		// every replica whose last acknowledgement covers this
		// connection's last write, a dead link's among them: only
		// replicas that acknowledged lately count as seen.
		acked = min(acked, liveReplicas(s, b.wait/1000+2))
	}
	if b.onReplicas != nil {
		b.onReplicas(n, acked, infoField(s, "master_replid"), infoField(s, "master_replid2"))
	}
	return n, true
}

// errNotMaster is a durable call's error when the node that serves its
// keys turned out to be a replica now (a failover demoted it): like a
// MOVED reply, it is sent again once the slot map is read again.
var errNotMaster = errors.New("the node is no longer a master")

// sendByNode sends calls grouped by the master that serves their keys,
// each group on that master's client with a WAIT for its replicas, the
// groups at once. Calls a node redirected (MOVED, ASK: the slot moved, as
// after a failover; their scripts did not run) are sent once more after
// the cluster client has re-read where the slots are.
func (b *batcher) sendByNode(ctx context.Context, calls []*call, reload bool) {
	want := make(map[*call]int64, len(calls)) // sendGroups sets each call's own
	for _, c := range calls {
		want[c] = c.want
	}
	for attempt := 0; ; attempt++ {
		b.sendGroups(ctx, calls, reload)
		var moved []*call
		for _, c := range calls {
			if isRedirect(c.err) || errors.Is(c.err, errNotMaster) {
				moved = append(moved, c)
			}
		}
		if len(moved) == 0 || attempt > 0 {
			return
		}
		b.cluster.ReloadState(ctx) // in the background; give it a moment
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
		for _, c := range moved {
			c.val, c.err, c.ack, c.want = nil, nil, false, want[c]
		}
		calls = moved
	}
}

// sendGroups is one pass of sendByNode.
func (b *batcher) sendGroups(ctx context.Context, calls []*call, reload bool) {
	groups := map[*redis.Client][]*call{}
	for _, c := range calls {
		node, err := b.cluster.MasterForKey(ctx, c.keys[0])
		if err != nil {
			c.val, c.err, c.ack = nil, err, false
			continue
		}
		groups[node] = append(groups[node], c)
	}
	var wg sync.WaitGroup
	for node, group := range groups {
		wg.Go(func() {
			n, master, err := b.replicasOf(ctx, node, false)
			if err == nil && n < b.minReplicas {
				// About to refuse: not on a count up to 5s old.
				n, master, err = b.replicasOf(ctx, node, true)
			}
			if err != nil {
				for _, c := range group {
					c.val, c.err, c.ack = nil, err, false
				}
				b.cluster.ReloadState(ctx)
				return
			}
			if n < b.minReplicas {
				// The durable writes are refused unsent (sent again
				// elsewhere, when the node is no master now); the
				// others go.
				var few error = &TooFewReplicasError{Master: node.Options().Addr, Have: n, Want: b.minReplicas}
				if !master {
					few = errNotMaster
					b.cluster.ReloadState(ctx)
				}
				rest := group[:0:0]
				for _, c := range group {
					if c.want != 0 {
						c.val, c.err, c.ack = nil, few, false
						continue
					}
					rest = append(rest, c)
				}
				if group = rest; len(group) == 0 {
					return
				}
			}
			for _, c := range group {
				if c.want != 0 {
					c.want = n
				}
			}
			b.sendOn(ctx, node, group, reload)
			for _, c := range group {
				if c.err != nil && !isScriptError(c.err) {
					// A master gone, or a slot moved: the next call asks
					// the cluster again.
					b.cluster.ReloadState(ctx)
					break
				}
			}
		})
	}
	wg.Wait()
}

// isRedirect reports whether err is a cluster redirection: the command
// did not run on this node.
func isRedirect(err error) bool {
	return err != nil && (redis.HasErrorPrefix(err, "MOVED") || redis.HasErrorPrefix(err, "ASK"))
}

// isScriptError reports whether err is a script's own error reply (the
// slot is where it was asked for).
func isScriptError(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && !redis.HasErrorPrefix(err, "MOVED") && !redis.HasErrorPrefix(err, "ASK") &&
		!redis.HasErrorPrefix(err, "CLUSTERDOWN") && !redis.HasErrorPrefix(err, "TRYAGAIN")
}

// sendOn is send on one client (a server's, or a cluster's when no call
// waits for replicas).
func (b *batcher) sendOn(ctx context.Context, rdb redis.UniversalClient, calls []*call, reload bool) {
	pipe := rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(calls))
	want, verify := int64(0), false
	for i, c := range calls {
		if reload {
			cmds[i] = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
		} else {
			// Sent again after NOSCRIPT: the script in full, which
			// any server runs (the load may have reached another
			// server than this connection's, after a failover).
			cmds[i] = c.script.Eval(ctx, pipe, c.keys, c.args...)
		}
		if c.durable && !c.verify && b.cluster == nil && b.verifyRan != nil && b.verifyRan() {
			// The hold became known since the call was queued: checked,
			// its want as it was (a WAIT for none may find the write
			// unacknowledged: ErrNotDurable once, and sent again).
			// (A call run alone with nothing to wait for, Ledger.run's
			// shortcut, asks just before it is sent.)
			c.verify = true
		}
		want = max(want, c.want)
		verify = verify || c.verify
	}
	var wait *redis.Cmd
	var info *redis.StringCmd
	var recorded *redis.MapStringStringCmd
	if want > 0 || verify {
		// WAIT covers every write this connection made before it: one for
		// the whole batch. The replica count it waits for may be a few
		// seconds old: the INFO after it tells whether a replica has
		// attached since, which the writes must then reach too.
		wait = pipe.Do(ctx, "WAIT", want, b.wait)
		info = pipe.Info(ctx, "replication")
	}
	if verify && b.cluster == nil {
		// And what the server that ran them was held to (checkRan).
		recorded = pipe.HGetAll(ctx, replicatedKey)
	}
	_, execErr := pipe.Exec(ctx)
	var again []*call
	for i, c := range calls {
		c.val, c.err = cmds[i].Result()
		if c.err == nil && c.val == nil {
			// No reply at all (a nil one comes as redis.Nil): the
			// pipeline failed before it, on connecting or
			// authenticating.
			c.err = cmp.Or(execErr, errNoReply)
		}
		if c.err != nil && reload && redis.HasErrorPrefix(c.err, "NOSCRIPT") {
			again = append(again, c)
		}
	}
	acked, werr := int64(0), error(nil)
	if wait != nil {
		acked, werr = wait.Int64()
		seen := acked
		if werr != nil {
			seen = -1
		}
		if now, ok := b.sawReplicas(rdb, info, seen); ok && now > acked && werr == nil {
			// More replicas than the writes reached: one of them
			// could be promoted without them.
			werr = errReplicaAttached
		}
		if werr == nil && recorded != nil && b.checkRan != nil {
			werr = b.checkRan(info, recorded, acked)
		}
	}
	for _, c := range calls {
		switch {
		case c.err != nil:
			c.ack = false
		case wait != nil && werr != nil && c.durable:
			// The check after the writes failed: no durable write of
			// the batch counts, one that asked for no check included
			// (it ran on the same server).
			c.ack = false
		case c.want == 0 && !c.verify:
			c.ack = true
		case werr != nil:
			// The script ran; only its acknowledgement is unknown: not
			// durable (ErrNotDurable to the caller), not failed.
			c.ack = false
		default:
			c.ack = acked >= c.want
		}
	}
	if len(again) == 0 {
		return
	}
	loaded := map[*redis.Script]error{}
	for _, c := range again {
		if _, ok := loaded[c.script]; !ok {
			loaded[c.script] = c.script.Load(ctx, rdb).Err()
		}
		if err := loaded[c.script]; err != nil {
			c.err = err
		}
	}
	retry := again[:0:0]
	for _, c := range again {
		if loaded[c.script] == nil {
			retry = append(retry, c)
		}
	}
	if len(retry) > 0 {
		b.sendOn(ctx, rdb, retry, false)
	}
}
