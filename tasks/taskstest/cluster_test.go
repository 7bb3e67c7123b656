package taskstest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The harness itself: three masters with a replica each, all with a
// password, come up with the slots shared evenly; keys written through a
// cluster client land on the master that serves their slot (CommandStats
// shows the writes there and nowhere else) and reach that master's
// replica; keys with one hash tag share a master; URL names every node and
// the password, without which a node refuses.
func TestClusterSpreadsKeysOverItsMasters(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, &ClusterOptions{Masters: 3, ReplicasPerMaster: 1, Auth: true})
	ctx := context.Background()
	if len(c.Masters) != 3 || len(c.Replicas) != 3 || len(c.Replicas[0]) != 1 || len(c.Addrs()) != 6 {
		t.Fatalf("%d masters, replicas %v, addrs %v", len(c.Masters), c.Replicas, c.Addrs())
	}
	if want := "redis-cluster://:" + c.Password + "@" + strings.Join(c.Addrs(), ","); c.Password == "" || c.URL() != want || !strings.HasPrefix(c.Addrs()[0], "127.0.0.1:") {
		t.Errorf("URL = %s, want %s", c.URL(), want)
	}
	anon := redis.NewClient(&redis.Options{Addr: c.Masters[0].Addr, MaxRetries: -1})
	if err := anon.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("PING without the password = %v, want NOAUTH", err)
	}
	anon.Close()
	for i := range c.Masters {
		lo, hi := c.SlotRange(i)
		t.Logf("master %s: slots %d-%d; replica %s", c.Masters[i].Addr, lo, hi, c.Replicas[i][0].Addr)
	}
	if lo, _ := c.SlotRange(0); lo != 0 {
		t.Errorf("first range starts at %d", lo)
	}
	if _, hi := c.SlotRange(2); hi != 16383 {
		t.Errorf("last range ends at %d", hi)
	}

	rc := c.Client(t)
	// Each master's slots agree with what the servers say.
	for _, key := range []string{"a", "{ledger}", "{orders}", "orderworker:{ledger}:order:x", "asynq:{orders}:pending"} {
		got, err := rc.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if _, slot := c.MasterFor(key); int64(slot) != got {
			t.Errorf("KeySlot(%q) = %d, CLUSTER KEYSLOT = %d", key, slot, got)
		}
	}
	if a, _ := c.MasterFor("orderworker:{ledger}:order:x"); a != func() int { m, _ := c.MasterFor("orderworker:{ledger}:state:y"); return m }() {
		t.Error("two keys with the hash tag {ledger} are on different masters")
	}

	before := c.CommandStats(t)
	const n = 300
	perMaster := make([]int64, len(c.Masters))
	for i := range n {
		key := fmt.Sprintf("k%d", i)
		if err := rc.Set(ctx, key, "v", 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
		m, _ := c.MasterFor(key)
		perMaster[m]++
	}
	after := c.CommandStats(t)
	for i, m := range c.Masters {
		got := after[m.Addr].Sub(before[m.Addr])["set"]
		t.Logf("master %d: %d SETs (%s)", i, got, after[m.Addr].Sub(before[m.Addr]).Without("info").Top(4))
		if perMaster[i] == 0 || got != perMaster[i] {
			t.Errorf("master %s ran %d SETs, want %d (and more than none)", m.Addr, got, perMaster[i])
		}
		direct := m.direct()
		if size := direct.DBSize(ctx).Val(); size != perMaster[i] {
			t.Errorf("master %s holds %d keys, want %d", m.Addr, size, perMaster[i])
		}
		if acked, err := direct.Wait(ctx, 1, 5*time.Second).Result(); err != nil || acked != 1 {
			t.Errorf("WAIT on %s = %d, %v; want its replica", m.Addr, acked, err)
		}
		direct.Close()
		rep := c.Replicas[i][0].direct()
		if size := rep.DBSize(ctx).Val(); size != perMaster[i] {
			t.Errorf("replica %s holds %d keys, want %d", c.Replicas[i][0].Addr, size, perMaster[i])
		}
		rep.Close()
	}
}

// One master without replicas serves every slot; a plain client pointed
// at it is redirected (MOVED) for nothing.
func TestClusterOfOneMaster(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, &ClusterOptions{Masters: 1})
	if lo, hi := c.SlotRange(0); lo != 0 || hi != 16383 || len(c.Addrs()) != 1 {
		t.Fatalf("slots %d-%d, nodes %v", lo, hi, c.Addrs())
	}
	ctx := context.Background()
	plain := redis.NewClient(&redis.Options{Addr: c.Masters[0].Addr})
	defer plain.Close()
	for _, key := range []string{"a", "b", "{orders}", "{ledger}"} {
		if err := plain.Set(ctx, key, "v", 0).Err(); err != nil {
			t.Errorf("SET %s on the only master: %v", key, err)
		}
	}
	if got := c.Masters[0].CommandStats(t)["set"]; got != 4 {
		t.Errorf("commandstats set = %d, want 4", got)
	}
}

func TestKeySlotKnownValues(t *testing.T) {
	t.Parallel()
	// Values from the Redis Cluster specification and CLUSTER KEYSLOT.
	for key, want := range map[string]int{
		"123456789":        12739, // CRC16 XMODEM check value 0x31C3 = 12739
		"foo":              12182,
		"{user1000}.a":     KeySlot("user1000"),
		"foo{{bar}}zap":    KeySlot("{bar"),
		"foo{bar}{zap}":    KeySlot("bar"),
		"somekey{ledger}x": KeySlot("ledger"),
	} {
		if got := KeySlot(key); got != want {
			t.Errorf("KeySlot(%q) = %d, want %d", key, got, want)
		}
	}
	// An empty tag: the whole key is hashed, not the next tag.
	if KeySlot("foo{}{bar}") == KeySlot("bar") || KeySlot("foo{}{bar}") == KeySlot("") {
		t.Error("an empty hash tag must hash the whole key")
	}
}

func TestParseCommandStats(t *testing.T) {
	t.Parallel()
	st := parseCommandStats("# Commandstats\r\ncmdstat_set:calls=3,usec=10,usec_per_call=3.33,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_cluster|slots:calls=2,usec=4,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\n")
	if st["set"] != 3 || st["cluster|slots"] != 2 || st.Total() != 5 {
		t.Fatalf("parsed %v", st)
	}
	d := CommandStats{"set": 5, "get": 1, "cluster|slots": 2}.Sub(st)
	if d["set"] != 2 || d["get"] != 1 || len(d) != 2 {
		t.Errorf("Sub = %v", d)
	}
	if got := d.Top(1); got != "set=2 ..." {
		t.Errorf("Top(1) = %q", got)
	}
	if got := d.Without("set"); len(got) != 1 || got["get"] != 1 {
		t.Errorf("Without = %v", got)
	}
}
