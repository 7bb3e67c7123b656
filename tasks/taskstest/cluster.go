package taskstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterOptions for StartCluster. The zero value is three masters without
// replicas.
type ClusterOptions struct {
	// Masters is how many masters share the 16384 slots; default 3.
	Masters int
	// ReplicasPerMaster is how many replicas each master has; default 0.
	ReplicasPerMaster int
	// NodeTimeout is cluster-node-timeout; default 2s.
	NodeTimeout time.Duration
	// Auth gives every node a password (requirepass, and masterauth for
	// the replicas): Cluster.Password, in URL and used by Client.
	Auth bool
}

// Cluster is a Redis Cluster on loopback. Which node is master does not
// change unless a test makes it: nothing here fails a node over.
type Cluster struct {
	// Password is every node's requirepass; empty without
	// ClusterOptions.Auth.
	Password string
	// Masters hold the slots: Masters[i] the i-th even share, in order.
	Masters []*Server
	// Replicas[i] are the replicas of Masters[i].
	Replicas [][]*Server
	// ranges[i] is the slot range of Masters[i], inclusive.
	ranges [][2]int
	ids    map[string]string // node id by address
}

// clusterSlots is how many hash slots a Redis Cluster has.
const clusterSlots = 16384

// StartCluster starts a Redis Cluster for t: the masters and replicas as
// redis-server processes with cluster mode on, each on a free loopback port
// with its cluster bus on another free port (cluster-port, so the bus is
// not assumed free at port+10000); it joins them (CLUSTER MEET), gives
// each master an even, contiguous share of the slots (CLUSTER
// ADDSLOTSRANGE, Redis 7), makes the replicas replicate their masters
// (CLUSTER REPLICATE), and waits until every node reports cluster_state:ok,
// knows every other node and agrees on who serves which slots, and every
// replica is in sync. Everything is stopped in t.Cleanup. It fails the test
// (never skips it) when redis-server is missing, also when
// ORDERWORKER_TEST_REDIS_URL is set: a cluster needs servers of its own.
func StartCluster(t testing.TB, opts *ClusterOptions) *Cluster {
	t.Helper()
	o := ClusterOptions{}
	if opts != nil {
		o = *opts
	}
	if o.Masters == 0 {
		o.Masters = 3
	}
	if o.Masters < 0 || o.ReplicasPerMaster < 0 {
		t.Fatalf("StartCluster: %d masters, %d replicas per master", o.Masters, o.ReplicasPerMaster)
	}
	if o.NodeTimeout == 0 {
		o.NodeTimeout = 2 * time.Second
	}
	bin := redisServer(t)
	c := &Cluster{ids: map[string]string{}}
	if o.Auth {
		c.Password = Password(t)
	}
	for i := range o.Masters {
		c.Masters = append(c.Masters, startClusterNode(t, bin, o, c.Password))
		lo, hi := i*clusterSlots/o.Masters, (i+1)*clusterSlots/o.Masters-1
		c.ranges = append(c.ranges, [2]int{lo, hi})
		var reps []*Server
		for range o.ReplicasPerMaster {
			reps = append(reps, startClusterNode(t, bin, o, c.Password))
		}
		c.Replicas = append(c.Replicas, reps)
	}
	if err := c.form(); err != nil {
		t.Fatalf("form the cluster: %v\n%s", err, c.logs())
	}
	if err := c.waitReady(60 * time.Second); err != nil {
		t.Fatalf("cluster not ready: %v\n%s", err, c.logs())
	}
	return c
}

// startClusterNode starts one redis-server in cluster mode, with its
// nodes.conf in its scratch directory and password as its requirepass and
// masterauth (none when empty), and stops it in t.Cleanup.
func startClusterNode(t testing.TB, bin string, o ClusterOptions, password string) *Server {
	t.Helper()
	s := &Server{dir: t.TempDir(), Password: password}
	var lastErr error
	for range 5 {
		port, err := freePort(t)
		if err != nil {
			t.Fatal(err)
		}
		bus, err := freePort(t)
		if err != nil {
			t.Fatal(err)
		}
		if bus == port {
			continue
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.args = []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(s.dir, "nodes.conf"),
			"--cluster-node-timeout", strconv.FormatInt(o.NodeTimeout.Milliseconds(), 10),
			"--cluster-port", strconv.Itoa(bus),
		}
		if password != "" {
			s.args = append(s.args, "--requirepass", password, "--masterauth", password)
		}
		// A failed start may have written nodes.conf with a bus port that
		// was taken: start the next try afresh.
		_ = os.Remove(filepath.Join(s.dir, "nodes.conf"))
		if lastErr = s.start(bin); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("start redis-server in cluster mode: %v", lastErr)
	}
	t.Cleanup(s.Stop)
	return s
}

// Nodes are every node: the masters, then the replicas, master by master.
func (c *Cluster) Nodes() []*Server {
	out := slices.Clone(c.Masters)
	for _, reps := range c.Replicas {
		out = append(out, reps...)
	}
	return out
}

// Addrs are the host:port addresses of every node, masters first.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, s := range c.Nodes() {
		out = append(out, s.Addr)
	}
	return out
}

// MasterAddrs are the masters' host:port addresses.
func (c *Cluster) MasterAddrs() []string {
	var out []string
	for _, s := range c.Masters {
		out = append(out, s.Addr)
	}
	return out
}

// URL is the redis-cluster:// URL naming every node, masters first, with
// the password when the nodes have one.
func (c *Cluster) URL() string {
	u := "redis-cluster://"
	if c.Password != "" {
		u += url.UserPassword("", c.Password).String() + "@"
	}
	return u + strings.Join(c.Addrs(), ",")
}

// Client returns a go-redis cluster client for the cluster, closed when t
// ends.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	rc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), Password: c.Password})
	t.Cleanup(func() { rc.Close() })
	return rc
}

// SlotRange is the slots Masters[i] serves, inclusive.
func (c *Cluster) SlotRange(i int) (lo, hi int) { return c.ranges[i][0], c.ranges[i][1] }

// MasterFor returns the index in Masters of the master that serves key's
// slot (the hash tag's, when the key has one), and the slot.
func (c *Cluster) MasterFor(key string) (master, slot int) {
	slot = KeySlot(key)
	for i, r := range c.ranges {
		if r[0] <= slot && slot <= r[1] {
			return i, slot
		}
	}
	return -1, slot
}

// KeySlot is the Redis Cluster hash slot of key: CRC16 (XMODEM) of the
// key, or of its hash tag (the text between the first "{" and the next
// "}", when not empty), modulo 16384.
func KeySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for k := 0; k < len(key); k++ {
		crc ^= uint16(key[k]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % clusterSlots
}

// CommandStats is a node's INFO commandstats: calls by command name, in
// lower case as Redis names them ("evalsha", "hset", "cluster|slots").
// Commands run by a Lua script count, besides the EVAL or EVALSHA.
type CommandStats map[string]int64

// Total is the sum of the calls.
func (s CommandStats) Total() int64 {
	var n int64
	for _, v := range s {
		n += v
	}
	return n
}

// Sub returns the calls made since before was taken; commands with no
// new call are left out.
func (s CommandStats) Sub(before CommandStats) CommandStats {
	out := CommandStats{}
	for k, v := range s {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// Without returns s without the named commands (for example "info", which
// reading the stats itself adds).
func (s CommandStats) Without(names ...string) CommandStats {
	out := CommandStats{}
	for k, v := range s {
		if !slices.Contains(names, k) {
			out[k] = v
		}
	}
	return out
}

// Top renders the n commands with the most calls, most first:
// "evalsha=1200 hset=800 ...".
func (s CommandStats) Top(n int) string {
	names := make([]string, 0, len(s))
	for k := range s {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int {
		if s[a] != s[b] {
			if s[a] > s[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for i, k := range names {
		if i == n {
			parts = append(parts, "...")
			break
		}
		parts = append(parts, k+"="+strconv.FormatInt(s[k], 10))
	}
	return strings.Join(parts, " ")
}

// CommandStats reads the server's INFO commandstats. The INFO call itself
// is counted by the server before it answers: it shows in the next read.
func (s *Server) CommandStats(t testing.TB) CommandStats {
	t.Helper()
	st, err := s.commandStats()
	if err != nil {
		t.Fatalf("INFO commandstats on %s: %v", s.Addr, err)
	}
	return st
}

func (s *Server) commandStats() (CommandStats, error) {
	c := s.direct()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	return parseCommandStats(info), nil
}

// parseCommandStats reads the lines "cmdstat_NAME:calls=N,usec=...".
func parseCommandStats(info string) CommandStats {
	st := CommandStats{}
	for line := range strings.SplitSeq(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_")
		if !ok {
			continue
		}
		name, fields, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		for f := range strings.SplitSeq(fields, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				st[name] = n
			}
		}
	}
	return st
}

// CommandStats reads INFO commandstats on every node, by address.
func (c *Cluster) CommandStats(t testing.TB) map[string]CommandStats {
	t.Helper()
	out := map[string]CommandStats{}
	for _, s := range c.Nodes() {
		out[s.Addr] = s.CommandStats(t)
	}
	return out
}

// direct is a plain client to this one node (no cluster redirections).
func (s *Server) direct() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.Addr, Username: s.Username, Password: s.Password,
		MaxRetries: -1, DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second})
}

// form joins the nodes, assigns the slots and sets up the replicas.
func (c *Cluster) form() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes := c.Nodes()
	for _, s := range nodes {
		cl := s.direct()
		id, err := cl.Do(ctx, "CLUSTER", "MYID").Text()
		cl.Close()
		if err != nil {
			return fmt.Errorf("CLUSTER MYID on %s: %w", s.Addr, err)
		}
		c.ids[s.Addr] = id
	}
	first := nodes[0].direct()
	defer first.Close()
	for _, s := range nodes[1:] {
		host, port, _ := net.SplitHostPort(s.Addr)
		bus := s.args[slices.Index(s.args, "--cluster-port")+1]
		if err := first.Do(ctx, "CLUSTER", "MEET", host, port, bus).Err(); err != nil {
			return fmt.Errorf("CLUSTER MEET %s: %w", s.Addr, err)
		}
	}
	for i, m := range c.Masters {
		cl := m.direct()
		err := cl.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", c.ranges[i][0], c.ranges[i][1]).Err()
		cl.Close()
		if err != nil {
			return fmt.Errorf("CLUSTER ADDSLOTSRANGE %d %d on %s: %w", c.ranges[i][0], c.ranges[i][1], m.Addr, err)
		}
	}
	// A replica can follow its master once it has heard of it (MEET
	// spreads by gossip): until then REPLICATE answers "Unknown node".
	for i, reps := range c.Replicas {
		for _, r := range reps {
			cl := r.direct()
			var err error
			for {
				err = cl.Do(ctx, "CLUSTER", "REPLICATE", c.ids[c.Masters[i].Addr]).Err()
				if err == nil || ctx.Err() != nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			cl.Close()
			if err != nil {
				return fmt.Errorf("CLUSTER REPLICATE on %s: %w", r.Addr, err)
			}
		}
	}
	return nil
}

// waitReady waits until ready holds.
func (c *Cluster) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := c.ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ready checks that every node reports cluster_state:ok with every slot
// assigned and every node known, and sees in CLUSTER NODES each master
// with its slot range and each replica following its master, with no node
// in handshake or failing; and that every replica's link to its master is
// up.
func (c *Cluster) ready() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nodes := c.Nodes()
	masterOf := map[string]string{} // replica id -> master id
	for i, reps := range c.Replicas {
		for _, r := range reps {
			masterOf[c.ids[r.Addr]] = c.ids[c.Masters[i].Addr]
		}
	}
	rangeOf := map[string]string{}
	for i, m := range c.Masters {
		rangeOf[c.ids[m.Addr]] = fmt.Sprintf("%d-%d", c.ranges[i][0], c.ranges[i][1])
	}
	for _, s := range nodes {
		cl := s.direct()
		info, err := cl.ClusterInfo(ctx).Result()
		if err != nil {
			cl.Close()
			return fmt.Errorf("CLUSTER INFO on %s: %w", s.Addr, err)
		}
		for field, want := range map[string]string{
			"cluster_state":          "ok",
			"cluster_slots_assigned": strconv.Itoa(clusterSlots),
			"cluster_slots_ok":       strconv.Itoa(clusterSlots),
			"cluster_known_nodes":    strconv.Itoa(len(nodes)),
			"cluster_size":           strconv.Itoa(len(c.Masters)),
		} {
			if got := infoValue(info, field); got != want {
				cl.Close()
				return fmt.Errorf("node %s: %s is %q, want %s", s.Addr, field, got, want)
			}
		}
		text, err := cl.ClusterNodes(ctx).Result()
		if err != nil {
			cl.Close()
			return fmt.Errorf("CLUSTER NODES on %s: %w", s.Addr, err)
		}
		if err := checkNodes(text, rangeOf, masterOf); err != nil {
			cl.Close()
			return fmt.Errorf("node %s: %w", s.Addr, err)
		}
		if _, replica := masterOf[c.ids[s.Addr]]; replica {
			repl, err := cl.Info(ctx, "replication").Result()
			if err != nil {
				cl.Close()
				return fmt.Errorf("INFO replication on %s: %w", s.Addr, err)
			}
			if infoValue(repl, "master_link_status") != "up" {
				cl.Close()
				return fmt.Errorf("replica %s not in sync yet", s.Addr)
			}
		}
		cl.Close()
	}
	return nil
}

// checkNodes checks one node's CLUSTER NODES against the masters' slot
// ranges and the replicas' masters, by node id.
func checkNodes(text string, rangeOf, masterOf map[string]string) error {
	seen := 0
	for line := range strings.SplitSeq(strings.TrimSpace(text), "\n") {
		// id addr flags master ping pong epoch link slot...
		f := strings.Fields(line)
		if len(f) < 8 {
			return fmt.Errorf("CLUSTER NODES line %q", line)
		}
		id, flags, master, link := f[0], f[2], f[3], f[7]
		if strings.Contains(flags, "handshake") || strings.Contains(flags, "fail") || strings.Contains(flags, "noaddr") || link != "connected" {
			return fmt.Errorf("sees %s with flags %s, link %s", f[1], flags, link)
		}
		if want, ok := rangeOf[id]; ok {
			if !strings.Contains(flags, "master") || len(f) != 9 || f[8] != want {
				return fmt.Errorf("sees master %s as %s with slots %v, want slots %s", f[1], flags, f[8:], want)
			}
		} else if want, ok := masterOf[id]; ok {
			if !strings.Contains(flags, "slave") || master != want {
				return fmt.Errorf("sees replica %s as %s following %s", f[1], flags, master)
			}
		} else {
			return fmt.Errorf("sees an unknown node %s", f[1])
		}
		seen++
	}
	if want := len(rangeOf) + len(masterOf); seen != want {
		return fmt.Errorf("sees %d nodes, want %d", seen, want)
	}
	return nil
}

// infoValue is a field of an INFO or CLUSTER INFO reply, "" when absent.
func infoValue(info, name string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// logs is the tail of every node's log, for a failure message.
func (c *Cluster) logs() string {
	var b strings.Builder
	for _, s := range c.Nodes() {
		log, err := os.ReadFile(filepath.Join(s.dir, "redis.log"))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		fmt.Fprintf(&b, "node %s: %s\n", s.Addr, lastLines(string(log), 6))
	}
	return b.String()
}

// Failover makes the first replica of Masters[i] take over from its master
// as CLUSTER FAILOVER does (a planned failover: the master stops writes
// until the replica has caught up), waits until the replica reports itself
// master and the cluster is ok on it, and swaps the two in Masters and
// Replicas. It returns the new master.
func (c *Cluster) Failover(t testing.TB, i int) *Server {
	t.Helper()
	rep := c.Replicas[i][0]
	d := rep.direct()
	defer d.Close()
	if err := d.Do(context.Background(), "CLUSTER", "FAILOVER").Err(); err != nil {
		t.Fatalf("CLUSTER FAILOVER on %s: %v", rep.Addr, err)
	}
	c.waitPromoted(t, i, rep, 30*time.Second)
	c.Masters[i], c.Replicas[i][0] = rep, c.Masters[i]
	return rep
}

// KillMaster SIGKILLs Masters[i], as a crash would, waits until its first
// replica has been promoted by the cluster (after cluster-node-timeout),
// and puts the replica in Masters[i]; the killed server leaves the
// cluster's lists. It returns the killed server and the new master.
func (c *Cluster) KillMaster(t testing.TB, i int) (killed, promoted *Server) {
	t.Helper()
	killed, rep := c.Masters[i], c.Replicas[i][0]
	killed.Kill()
	c.waitPromoted(t, i, rep, 60*time.Second)
	c.Masters[i] = rep
	c.Replicas[i] = c.Replicas[i][1:]
	return killed, rep
}

// waitPromoted waits until rep reports role:master and cluster_state:ok.
func (c *Cluster) waitPromoted(t testing.TB, i int, rep *Server, timeout time.Duration) {
	t.Helper()
	d := rep.direct()
	defer d.Close()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		repl, err1 := d.Info(ctx, "replication").Result()
		cl, err2 := d.ClusterInfo(ctx).Result()
		cancel()
		if err1 == nil && err2 == nil && infoValue(repl, "role") == "master" && infoValue(cl, "cluster_state") == "ok" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s of master %d not promoted within %s (role %q, cluster %q; %v %v)",
				rep.Addr, i, timeout, infoValue(repl, "role"), infoValue(cl, "cluster_state"), err1, err2)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
