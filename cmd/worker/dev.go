package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/alicebob/miniredis/v2/server"
	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/internal/devmode"
	"github.com/orderworker/orderworker/providers/registry"
	"github.com/orderworker/orderworker/tasks"
	ledgerpkg "github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/webhook"
)

// What -dev and enqueue -dev agree on (package devmode).
const (
	devDataKey     = devmode.DataKey
	devMarkerKey   = devmode.MarkerKey
	devMarkerValue = devmode.MarkerValue
)

// devEnv is what -dev starts: an embedded Redis (unless -dev-redis names
// one) and the provider sandboxes on loopback.
type devEnv struct {
	mini    *miniredis.Miniredis
	servers []*http.Server
	stop    chan struct{}
}

// startDev prepares cfg for development. Redis is an embedded one, never
// the one REDIS_URL names: -dev pays orders through sandboxes, so it must
// not see real orders. With -dev-redis it is that Redis instead, when it is
// empty or holds only what earlier -dev runs wrote. Every provider is
// pointed at its sandbox with demo credentials; a provider without a
// sandbox is left disabled.
func startDev(ctx context.Context, cfg *config, log *slog.Logger) (*devEnv, error) {
	// Its outcome events are a sandbox's: telling a real upstream app, with
	// the real signing secret, that its order numbers are paid would be as
	// bad as paying them.
	for _, u := range cfg.WebhookURLs {
		if parsed, err := url.Parse(u); err != nil || !isLoopback(parsed.Hostname()) {
			return nil, fmt.Errorf("-dev delivers webhooks only to this machine (localhost, 127.0.0.1, ::1); ORDERWORKER_WEBHOOK_URLS names %s: unset it, or point it at a local receiver", webhook.DisplayURL(u))
		}
	}
	if len(cfg.DevIgnored) > 0 {
		// Names only: a value may be a secret.
		log.Warn("dev: ignoring these variables, set in the environment: -dev points every provider at its sandbox, with the sandbox's own settings and demo credentials, listens on addresses of its own for its Redis, admin server and API, and signs webhooks with its own secret",
			"variables", cfg.DevIgnored)
	}
	d := &devEnv{stop: make(chan struct{})}
	if cfg.DevRedis != "" {
		if err := claimDevRedis(ctx, cfg.DevRedis, log); err != nil {
			return nil, err
		}
		cfg.RedisURL = cfg.DevRedis
	} else if err := d.startRedis(cfg, log); err != nil {
		return nil, err
	}

	if cfg.DataKey == "" {
		cfg.DataKey = devDataKey
	}
	for i, pc := range cfg.Providers {
		env := map[string]string{}
		if pc.Spec.Sandbox != nil {
			sb := pc.Spec.Sandbox()
			base, err := d.serve(sb.Handler)
			if err != nil {
				d.Close()
				return nil, err
			}
			env = sb.Env(base)
			log.Info("dev: provider sandbox started", "provider", pc.Spec.Name, "endpoint", base)
		}
		// Only the sandbox's settings: never the environment's
		// credentials for the real provider.
		c, err := pc.Spec.ReadConfig(func(name string) string { return env[name] })
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("dev: %s sandbox settings: %w", pc.Spec.Name, err)
		}
		cfg.Providers[i].Config = c
	}
	return d, nil
}

// claimDevScript answers 1 when the database holds the -dev marker
// (ARGV[1]), 3 when it holds a pending one (devmode.PendingPrefix: another
// -dev claiming it, or one stopped while claiming it), 2 when it was empty
// and now holds the pending marker ARGV[2], and otherwise 0 and the number
// of keys it holds.
var claimDevScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then return {1, 0} end
if v then return {3, 0} end
local n = redis.call('DBSIZE')
if n == 0 then
	redis.call('SET', KEYS[1], ARGV[2])
	return {2, 0}
end
return {0, n}
`)

// finishClaimScript makes the pending marker ARGV[1] final (ARGV[2]) when
// it is still there and the node holds nothing else: it answers 1, else 0
// and the number of other keys (-1: the pending marker is gone or not
// this claim's).
var finishClaimScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0, -1} end
local n = redis.call('DBSIZE') - 1
if n > 0 then return {0, n} end
redis.call('SET', KEYS[1], ARGV[2])
return {1, 0}
`)

// dropClaimScript deletes the pending marker ARGV[1], and only it.
var dropClaimScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
`)

// claimDevRedis checks that the Redis at rawURL holds nothing -dev did not
// write, and marks it as -dev's when it is empty. It refuses, with the
// reason, a Redis that holds other data.
func claimDevRedis(ctx context.Context, rawURL string, log *slog.Logger) error {
	opt, err := tasks.ParseRedisURL(rawURL)
	if err != nil {
		return fmt.Errorf("-dev-redis: %w", err)
	}
	rdb := ledgerClient(opt)
	defer rdb.Close()
	shown := tasks.RedactURL(rawURL)
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		// The script sees one node's keys only: without the marker, every
		// master must be empty.
		if err := clusterEmpty(ctx, cc, shown); err != nil {
			return err
		}
	}
	pending := devmode.PendingPrefix + uuid.NewString()
	res, err := claimDevScript.Run(ctx, rdb, []string{devMarkerKey}, devMarkerValue, pending).Int64Slice()
	if err != nil {
		return fmt.Errorf("-dev-redis %s: %w", shown, err)
	}
	switch res[0] {
	case 1:
		log.Info("dev: using the Redis given with -dev-redis; it holds only -dev data", "redis", shown)
	case 2:
		// Empty a moment ago is not proof that nobody uses it: a worker
		// or producer whose Redis was just emptied (a flush, a restart
		// without persistence) writes again within its heartbeat. Those
		// that watch the marker stop within devmode.WatchInterval; any
		// other writes meanwhile, and -dev refuses it.
		log.Info("dev: the Redis given with -dev-redis was empty and is now marked as being claimed by -dev; checking it again for other writers before using it", "redis", shown, "marker", devMarkerKey, "after", devClaimWatch)
		if err := othersWrite(parent, rdb, shown, pending); err != nil {
			return err
		}
		log.Info("dev: using the Redis given with -dev-redis; it is now marked as -dev's", "redis", shown)
	case 3:
		return fmt.Errorf("-dev-redis %s: refused: its %s marker says another worker -dev is claiming it (or one was stopped while claiming it); try again in a few seconds, or, if no other -dev uses it, delete the key %s", shown, devMarkerKey, devMarkerKey)
	default:
		if keys := epochKeysOnly(ctx, rdb, res[1]); keys != nil {
			// What a worker whose database was emptied writes first (its
			// watch for a loss of Redis's data): -dev's own, after a flush
			// of its database, or a real worker's.
			return fmt.Errorf("-dev-redis %s: refused: the database holds no %s marker and only the ledger's epoch key (%s), which a worker writes once its database was emptied: -dev's own after a flush, or a real worker's, which -dev must not share; if no worker uses this database, delete %s and start again", shown, devMarkerKey, strings.Join(keys, ", "), strings.Join(keys, " "))
		}
		return fmt.Errorf("-dev-redis %s: refused: the database holds %d keys and no %s marker, so it holds data that -dev did not write (perhaps real orders, which -dev would pay through its sandboxes); give -dev-redis an empty database, or leave it out to use an embedded Redis", shown, res[1], devMarkerKey)
	}
	return nil
}

// epochKeysOnly returns the keys of a database of n keys when every one is
// a ledger's epoch hash (ledger.EpochKey), nil otherwise.
func epochKeysOnly(ctx context.Context, rdb redis.UniversalClient, n int64) []string {
	if n <= 0 || n > 64 {
		return nil
	}
	keys, _, err := rdb.Scan(ctx, 0, "*", 1000).Result()
	if err != nil || int64(len(keys)) != n {
		return nil
	}
	for _, k := range keys {
		if !ledgerpkg.IsEpochKey(k) {
			return nil
		}
	}
	slices.Sort(keys)
	return keys
}

// devClaimWatch is how long -dev watches a Redis it has just marked for
// writes of other processes: longer than asynq's heartbeat (5 s), which
// every worker writes, and than devmode.WatchInterval, within which a
// worker or producer that watches the marker stops.
const devClaimWatch = 6 * time.Second

// othersWrite waits devClaimWatch and then makes the pending marker of
// this claim final when the Redis rdb (which -dev found empty) holds
// nothing else; otherwise it refuses it: the keys of another process that
// uses it, or the marker gone. On every way out but success the pending
// marker is taken back (if still this claim's).
func othersWrite(ctx context.Context, rdb redis.UniversalClient, shown, pending string) (err error) {
	defer func() {
		if err != nil {
			c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = dropClaimScript.Run(c, rdb, []string{devMarkerKey}, pending).Err()
		}
	}()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(devClaimWatch):
	}
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	others := int64(0)
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		// The script sees the marker's node only: the other masters must
		// be empty too (the total counts the marker).
		n, err := cc.DBSize(c).Result()
		if err != nil {
			return fmt.Errorf("-dev-redis %s: %w", shown, err)
		}
		others = n - 1
	}
	refused := func(n int64) error {
		return fmt.Errorf("-dev-redis %s: refused: another process wrote %d keys to it within %s of -dev finding it empty (a worker or producer whose Redis was just emptied?); -dev would pay its orders through the sandboxes, and a real worker would send -dev's to the real providers; give -dev-redis a Redis nothing else uses, or leave it out to use an embedded Redis", shown, n, devClaimWatch)
	}
	if others > 0 {
		// Refused before the marker is made final: the deferred drop
		// takes back only a pending one.
		return refused(others)
	}
	res, err := finishClaimScript.Run(c, rdb, []string{devMarkerKey}, pending, devMarkerValue).Int64Slice()
	switch {
	case err != nil:
		return fmt.Errorf("-dev-redis %s: %w", shown, err)
	case res[0] == 0 && res[1] < 0:
		return fmt.Errorf("-dev-redis %s: refused: its %s marker was removed or replaced while -dev checked it (another process emptied or claimed it)", shown, devMarkerKey)
	case res[0] == 0:
		return refused(res[1])
	}
	return nil
}

// clusterEmpty checks, for a cluster without the -dev marker, that no
// master holds a key.
func clusterEmpty(ctx context.Context, cc *redis.ClusterClient, shown string) error {
	marked, err := cc.Exists(ctx, devMarkerKey).Result()
	if err != nil {
		return fmt.Errorf("-dev-redis %s: %w", shown, err)
	}
	if marked == 1 {
		return nil
	}
	var keys atomic.Int64
	if err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		n, err := c.DBSize(ctx).Result()
		keys.Add(n)
		return err
	}); err != nil {
		return fmt.Errorf("-dev-redis %s: %w", shown, err)
	}
	if n := keys.Load(); n > 0 {
		return fmt.Errorf("-dev-redis %s: refused: the cluster's masters hold %d keys and no %s marker, so it holds data that -dev did not write (perhaps real orders, which -dev would pay through its sandboxes); give -dev-redis an empty database, or leave it out to use an embedded Redis", shown, n, devMarkerKey)
	}
	return nil
}

// startRedis runs miniredis and points cfg.RedisURL at it: on
// devmode.RedisAddr, where enqueue -dev looks for it, or on any free
// loopback port when that is taken. It carries the -dev marker, so that
// enqueue -dev knows it. Whatever Redis REDIS_URL names is never used,
// nor its address taken: with that Redis down, a -dev worker on its
// address would take its producers' real orders and pay them through
// the sandboxes.
func (d *devEnv) startRedis(cfg *config, log *slog.Logger) error {
	m := miniredis.NewMiniRedis()
	if err := startOwn(m, cfg.RedisURL); err != nil {
		if err := m.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("start embedded redis: %w", err)
		}
		if errors.Is(err, errOwnPortNamed) {
			log.Warn("dev: REDIS_URL names the port of -dev's own Redis, which -dev then leaves free (the Redis REDIS_URL names may be there, down); the embedded Redis listens elsewhere: give enqueue -dev the URL below with -redis-url",
				"wanted", devmode.RedisAddr)
		} else {
			log.Warn("dev: the embedded Redis's own address is in use (another worker -dev?); it listens elsewhere: give enqueue -dev the URL below with -redis-url",
				"wanted", devmode.RedisAddr, "reason", err.Error())
		}
	}
	// In every database: a producer given another database of this
	// Redis (redis://…/1) sees the marker too and refuses, rather than
	// queue real orders no -dev worker reads. miniredis serves any
	// database number; this one serves the 16 a Redis has by default.
	replid := strings.ReplaceAll(uuid.NewString()+uuid.NewString(), "-", "")[:40]
	m.Server().SetPreHook(func(c *server.Peer, cmd string, args ...string) bool {
		if cmd == "INFO" && len(args) == 1 && strings.EqualFold(args[0], "replication") {
			// A single master without replicas, as a Redis says it:
			// the ledger takes no durable write on a server whose
			// replicas it cannot read.
			c.WriteBulk(devReplication(replid))
			return true
		}
		if cmd != "SELECT" || len(args) != 1 {
			return false
		}
		if n, err := strconv.Atoi(args[0]); err == nil && n >= 0 && n < devDatabases {
			return false
		}
		c.WriteError("ERR DB index is out of range")
		return true
	})
	for i := range devDatabases {
		if err := m.DB(i).Set(devMarkerKey, devMarkerValue); err != nil {
			m.Close()
			return fmt.Errorf("start embedded redis: %w", err)
		}
	}
	d.mini = m
	cfg.RedisURL = "redis://" + m.Addr() + "/0"
	log.Warn("dev: started an embedded Redis (data lives in memory); -dev-redis URL uses another", "redis", tasks.RedactURL(cfg.RedisURL))
	// miniredis keeps time only when told to: advance its clock so keys
	// with a TTL (locks, asynq's leases) expire.
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-d.stop:
				return
			case <-t.C:
				m.FastForward(250 * time.Millisecond)
			}
		}
	}()
	return nil
}

// devDatabases is how many databases a Redis has by default (and
// miniredis): the embedded one marks them all.
const devDatabases = 16

// startOwn starts m on devmode.RedisAddr, unless REDIS_URL names that
// port itself (then the real Redis may be the one there, down:
// errOwnPortNamed).
func startOwn(m *miniredis.Miniredis, redisURL string) error {
	if u, err := url.Parse(redisURL); err == nil && u.Port() == devmode.RedisPort {
		return errOwnPortNamed
	}
	return m.StartAddr(devmode.RedisAddr)
}

// errOwnPortNamed is startOwn's refusal of the port REDIS_URL names.
var errOwnPortNamed = errors.New("REDIS_URL names -dev's own port")

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serve runs h on a free loopback port and returns its base URL.
func (d *devEnv) serve(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("start sandbox: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	d.servers = append(d.servers, srv)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Default().Error("sandbox stopped", "error", err)
		}
	}()
	return "http://" + ln.Addr().String(), nil
}

// Close stops everything -dev started.
func (d *devEnv) Close() {
	if d == nil {
		return
	}
	close(d.stop)
	for _, s := range d.servers {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.Shutdown(ctx)
		cancel()
	}
	if d.mini != nil {
		d.mini.Close()
	}
}

// demoPayloads returns one sample order per provider the registry lists,
// with the provider's example params, its order number ending in suffix
// ("DemoTencent-20261130T120000").
func demoPayloads(suffix string) []tasks.Payload {
	var out []tasks.Payload
	for _, s := range registry.All() {
		out = append(out, tasks.Payload{
			Provider: s.Name,
			OrderNo:  "Demo" + strings.ToUpper(s.Name[:1]) + s.Name[1:] + "-" + suffix,
			Params:   s.Example,
		})
	}
	return out
}

// devOnly runs a task only while -dev's Redis (rdb) holds the -dev marker;
// otherwise the task waits, untouched, before anything reads it
// (devmode.Watch stops the worker within a second). A task a producer
// wrote into asynq itself is never run: -dev's producers (enqueue -dev,
// its API, its demo) claim every order first, while such a task may be a
// real order whose producer was given -dev's Redis, which the sandboxes
// would pay without creating it. It is archived untouched, with the
// reason, for the dashboard to show.
func devOnly(rdb redis.UniversalClient) asynq.MiddlewareFunc {
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			if t.Type() == tasks.TypeOrderSubmit && !tasks.QueuedWithClaim(t) {
				return fmt.Errorf("-dev: not run: a task written into asynq by its producer, not claimed by enqueue -dev or -dev's API, may be a real order sent to -dev's Redis, which the sandboxes would pay without creating it: %w", asynq.SkipRetry)
			}
			marked, err := devmode.Marked(ctx, rdb)
			// A wait, not a failure: the order is untouched, and asynq's
			// retry count (which the handler reads as "ran before") stays.
			switch {
			case err != nil:
				return tasks.Wait(time.Second, fmt.Errorf("-dev: cannot read the -dev marker, so the order is not run: %w", err))
			case !marked:
				return tasks.Wait(time.Second, errors.New("-dev: the -dev marker is gone from this Redis (flushed?): the order is not run, since it may be a real one, which the sandboxes would pay"))
			}
			return next.ProcessTask(ctx, t)
		})
	}
}

// devRecordCheck is the handler's BeforeRecord in -dev (nil otherwise): an
// order whose record is missing is recorded only while -dev's Redis holds
// its marker. A flush while -dev runs takes every record; a task under way
// then would record its order again, unknown, in a Redis no longer marked
// -dev's, where a real worker started later would create it at the real
// provider.
func devRecordCheck(dev bool, rdb redis.UniversalClient) func(context.Context) error {
	if !dev {
		return nil
	}
	return func(ctx context.Context) error {
		marked, err := devmode.Marked(ctx, rdb)
		switch {
		case err != nil:
			return fmt.Errorf("-dev: cannot read the -dev marker: %w", err)
		case !marked:
			return errors.New("-dev: the -dev marker is gone from this Redis (flushed?): nothing is recorded in it")
		}
		return nil
	}
}

// devReplication is the embedded Redis's answer to INFO replication: a
// master (replication id replid) with no replicas.
func devReplication(replid string) string {
	return "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_failover_state:no-failover\r\n" +
		"master_replid:" + replid + "\r\nmaster_replid2:0000000000000000000000000000000000000000\r\n" +
		"master_repl_offset:0\r\nsecond_repl_offset:-1\r\nrepl_backlog_active:0\r\n"
}
