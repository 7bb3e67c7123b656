// Package settings lists the environment variables orderworker's commands
// read, so that the worker's help and the README's table come from one
// list, and so that both commands can point out a variable of theirs that
// none of them reads (a misspelled ORDERWORKER_MONITORING_TOKEN would
// otherwise leave the dashboard open without a word, a misspelled
// REDIS_URL the worker on the default Redis).
package settings

import (
	"cmp"
	"os"
	"slices"
	"strings"
	"unicode"

	"github.com/orderworker/orderworker/providers/registry"
)

// Var documents one setting.
type Var struct {
	Name, Default, Help string
}

// Worker lists every variable the worker reads: its own, then each
// provider's settings, in the registry's order.
func Worker() []Var {
	vars := slices.Clone(own)
	for _, s := range registry.All() {
		for _, st := range s.Settings {
			vars = append(vars, Var{st.Name, st.Default, st.Help})
		}
	}
	return vars
}

// enqueueOwn are the variables of orderworker's own that enqueue reads,
// with enqueue's default where it differs from the worker's (serve logs
// text unless told otherwise). Besides them, enqueue reads each
// provider's CreateOverrunSetting, and the secrets (SecretValues) only to
// mask them in an operator's notes.
var enqueueOwn = map[string]string{
	"REDIS_URL": "", "ORDERWORKER_QUEUE": "", "ORDERWORKER_LISTING_LAG": "", "ORDERWORKER_LEDGER_SHARDS": "",
	"ORDERWORKER_DURABLE_WRITES": "", "ORDERWORKER_MIN_REPLICAS": "", "ORDERWORKER_LOG_LEVEL": "",
	"ORDERWORKER_LOG_FORMAT": "text", "ORDERWORKER_DATA_KEY": "", "ORDERWORKER_API_TOKENS": "",
}

// Enqueue lists the variables enqueue reads, for its help: in Worker's
// order, with the help the worker's shows, then APIAddr (enqueue serve's).
func Enqueue() []Var {
	overruns := map[string]bool{}
	for _, s := range registry.All() {
		if s.CreateOverrunSetting != "" {
			overruns[s.CreateOverrunSetting] = true
		}
	}
	var out []Var
	for _, v := range Worker() {
		def, own := enqueueOwn[v.Name]
		if !own && !overruns[v.Name] {
			continue
		}
		if def != "" {
			v.Default = def
		}
		if h, ok := enqueueHelp[v.Name]; ok {
			v.Help = h
		}
		out = append(out, v)
	}
	return append(out, APIAddr)
}

// enqueueHelp is enqueue's help for a variable it reads otherwise than
// the worker does.
var enqueueHelp = map[string]string{
	"ORDERWORKER_API_TOKENS": "enqueue serve's bearer tokens, comma-separated; without one it refuses to start unless given -open",
}

// EnqueueAlso says what else enqueue reads, for the end of its help.
const EnqueueAlso = `Also read: USER, the default of resolve's and redrive's -by; and the secrets above
with every provider's secret credentials (TENCENT_APP_SECRET, ...), only to mask them in an
operator's -note before it is stored.`

// APIAddr is where enqueue serve listens; worker -dev reads it only to
// keep clear of it.
var APIAddr = Var{"ORDERWORKER_API_ADDR", ":8080", "the producers' HTTP API: where enqueue serve listens"}

// Prefix starts the name of every setting of orderworker's own.
const Prefix = "ORDERWORKER_"

// testPrefix starts the variables the project's tests read, which no
// command does.
const testPrefix = Prefix + "TEST_"

// Unknown names the variables in environ (as os.Environ gives them) that
// no orderworker command reads and that are likely meant for one, each
// with the known name it is most likely a misspelling of ("" when none is
// close), sorted by name: every variable starting with Prefix, and one
// starting with the prefix of another known name (REDIS_ of REDIS_URL, a
// provider's TENCENT_, ALIYUN_ or UNICLOUD_) when it is close to one of
// them. Other software reads variables of the same prefixes
// (REDIS_PASSWORD, REDIS_HOST), so such a name far from all of ours is
// none of our business; REDIS_ULR or ALIYUN_AUTOPAY would otherwise leave
// the default in effect without a word. The commands warn of them at
// start: orderworker reads the same environment in the worker and in
// enqueue, so a variable one of them reads is never reported by the
// other.
func Unknown(environ []string) []Misspelled {
	known := []string{APIAddr.Name}
	for _, v := range Worker() {
		known = append(known, v.Name)
	}
	var prefixes []string
	for _, k := range known {
		if p, _, ok := strings.Cut(k, "_"); ok && !slices.Contains(prefixes, p+"_") {
			prefixes = append(prefixes, p+"_")
		}
	}
	var out []Misspelled
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, testPrefix) || slices.Contains(known, name) {
			continue
		}
		p, _, ok := strings.Cut(name, "_")
		if !ok || !slices.Contains(prefixes, p+"_") {
			continue
		}
		like := closest(name, known)
		if like == "" && p+"_" != Prefix {
			continue
		}
		out = append(out, Misspelled{Name: name, Like: like})
	}
	slices.SortFunc(out, func(a, b Misspelled) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// UnknownHere is Unknown of this process's environment.
func UnknownHere() []Misspelled { return Unknown(os.Environ()) }

// Misspelled is a variable no command reads.
type Misspelled struct {
	Name string
	// Like is the known variable it is closest to, "" when none is
	// within a few edits.
	Like string
}

// String is the warning to show for m.
func (m Misspelled) String() string {
	s := m.Name + " is set, but no orderworker command reads it"
	if m.Like != "" {
		s += ": did you mean " + m.Like + "?"
	}
	return s
}

// Args are m's attributes for a structured log: its name and, when one
// is close, the known name it may stand for (never its value, which may
// be a secret).
func (m Misspelled) Args() []any {
	if m.Like == "" {
		return []any{"name", m.Name}
	}
	return []any{"name", m.Name, "did_you_mean", m.Like}
}

// closest is the name in known fewest edits away from name, case aside,
// if at most a few: a quarter of the length of what follows the name's
// prefix (up to its first underscore), at least one (ORDERWORKER_QUEU is
// ORDERWORKER_QUEUE; ORDERWORKER_DEBUG is no ORDERWORKER_QUEUE; REDIS_URI
// is REDIS_URL; REDIS_USER is none), or a known name that begins with it
// and an underscore (UNICLOUD_ACCESS_KEY is UNICLOUD_ACCESS_KEY_ID). The
// first such on a tie. A known name
// without the prefix (REDIS_URL, a provider's TENCENT_APP_KEY) is compared
// with name without it too: ORDERWORKER_REDIS_URL is REDIS_URL.
func closest(name string, known []string) string {
	_, rest, _ := strings.Cut(name, "_")
	best, bestD := "", max(1, len(rest)/4)+1
	name = strings.ToUpper(name)
	bare := strings.TrimPrefix(name, Prefix)
	for _, k := range known {
		d := Distance(name, k)
		if !strings.HasPrefix(k, Prefix) {
			d = min(d, Distance(bare, k))
		}
		if strings.HasPrefix(k, name+"_") {
			// A name cut short at an underscore: UNICLOUD_ACCESS_KEY
			// for UNICLOUD_ACCESS_KEY_ID, however much is cut.
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// Distance is the edit distance between a and b (on bytes: for ASCII
// names) counting an insertion, a deletion, a substitution or two
// neighbours swapped (QEUUE for QUEUE) as one edit (optimal string
// alignment): how far a mistyped name is from a known one.
func Distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

var own = []Var{
	{"REDIS_URL", "redis://127.0.0.1:6379/0", "Redis: redis://, rediss:// (TLS), redis-socket://, redis-sentinel://, rediss-sentinel://, redis-cluster://host:port,host:port, rediss-cluster:// (the README's \"Redis URLs\")"},
	{"ORDERWORKER_ADMIN_ADDR", ":9090", "admin HTTP address: /metrics, /healthz, /readyz, /monitoring/, /orders/, /api/orders; worker -dev never uses it: it listens on 127.0.0.1:9091 unless -admin-addr names an address, and on a free loopback port when that one is taken (the log line \"admin server listening\" names it)"},
	{"ORDERWORKER_QUEUE", "orders", "asynq queue"},
	{"ORDERWORKER_CONCURRENCY", "20", "provider calls in flight at once; the worker runs a quarter more orders than that (at least one more), which wait for a call slot while the others' bookkeeping runs"},
	{"ORDERWORKER_DEQUEUERS", "auto", "how many loops take orders off the queue, sharing the concurrency (asynq takes one task per Redis round trip per loop); auto: one per 16 of concurrency, at most 3"},
	{"ORDERWORKER_MAX_ATTEMPTS", "8", "failed submissions (that created nothing) before an order is errored"},
	{"ORDERWORKER_RETRY_BASE", "1s", "first retry backoff (doubles, full jitter)"},
	{"ORDERWORKER_RETRY_MAX", "5m", "backoff cap"},
	{"ORDERWORKER_ORDER_DEADLINE", "24h", "an order not submitted this long after enqueue (or after an operator re-drove it) is errored"},
	{"ORDERWORKER_ORDER_DEADLINES", "", "per-provider deadlines overriding ORDERWORKER_ORDER_DEADLINE: aliyun=2h,tencent=48h"},
	{"ORDERWORKER_PENDING_WINDOW", "30m", "how long a pending order is polled before it is errored as unpaid"},
	{"ORDERWORKER_LISTING_LAG", "2m", "how long after a create a lookup that does not find the order is not believed (no provider documents how soon its listings show a new order); the order stays unknown and is looked up again after it. 0: believed at once (UniCloud's after UNICLOUD_CREATE_OVERRUN); at most 24h"},
	{"ORDERWORKER_SAME_TARGETS", "", "create-target fingerprints (as the worker's log names them for a held order) this worker's providers answer for as for their own, space- or comma-separated: after a key rotation, the old key's, so that orders created with it are looked up with the new one"},
	{"ORDERWORKER_SHUTDOWN_TIMEOUT", "25s", "on SIGTERM, how long in-flight attempts may finish"},
	{"ORDERWORKER_RECONCILE_INTERVAL", "1m", "how often the reconciler sweeps for orders no task will move on"},
	{"ORDERWORKER_POLL_INTERVAL", "80ms", "how often an idle worker looks for a new order: the median pickup is about half of it, and each look costs 3 Redis commands (at least 10ms)"},
	{"ORDERWORKER_LEDGER_SHARDS", "1", "how many shards the ledger spreads orders over, each with its own hash tag and asynq queue: on Redis Cluster, the number of masters (or a multiple); every worker and producer of one ledger sets the same number, and it cannot change once orders exist"},
	{"ORDERWORKER_DURABLE_WRITES", "auto", "auto: claims, in-flight marks and outcomes wait for every replica the Redis master has (WAIT) before they count; off: they do not (a failover may lose the last writes)"},
	{"ORDERWORKER_MIN_REPLICAS", "auto", "with durable writes auto, the fewest replicas each of those writes must reach: a master reporting fewer refuses them unsent (orders wait, enqueues fail). auto: those the master reports, and at least as many as the master was ever seen with (so that no write counts while a replica a failover could promote lacks it); N: at least N, and at least as many as seen; 0: those the master reports, never held to more. Set it to 1 on a replicated deployment"},
	{"ORDERWORKER_RATE_LIMITS", "", "requests per second per provider, shared by all workers: tencent=20:40,aliyun=10 (rate[:burst])"},
	{"ORDERWORKER_BREAKER_FAILURES", "5", "consecutive provider-down results that open a provider's circuit breaker (0 turns breakers off, and the adaptive rate after throttling with them)"},
	{"ORDERWORKER_BREAKER_COOLDOWN", "30s", "how long an open breaker holds orders back before a trial call"},
	{"ORDERWORKER_LOG_LEVEL", "info", "debug, info, warn, error"},
	{"ORDERWORKER_LOG_FORMAT", "json", "json or text"},
	{"ORDERWORKER_DATA_KEY", "", "32 random bytes, base64 (openssl rand -base64 32), shared with producers: order params are stored encrypted in Redis; required for personal-data params (Aliyun userName, userId)"},
	{"ORDERWORKER_MONITORING_TOKEN", "", "if set, /monitoring/, /orders/ and /api/orders need it as a bearer token or basic-auth password"},
	{"ORDERWORKER_MONITORING_READONLY", "true", "false lets the dashboard retry, delete and archive tasks, and operators resolve and re-drive orders from /orders/ and /api/orders"},
	{"ORDERWORKER_WEBHOOK_URLS", "", "comma-separated URLs every outcome event is POSTed to, signed per Standard Webhooks"},
	{"ORDERWORKER_WEBHOOK_SECRET", "", "the webhook signing secret: whsec_ and at least 24 random bytes in base64 (echo whsec_$(openssl rand -base64 32)); several, separated by spaces, sign each request with each (to rotate a secret); required with ORDERWORKER_WEBHOOK_URLS"},
	{"ORDERWORKER_WEBHOOK_MAX_AGE", "72h", "how long an undelivered event is retried before it is kept as failed (enqueue webhooks failed lists it)"},
	{"ORDERWORKER_WEBHOOK_RETRY_BASE", "1s", "first webhook retry backoff (doubles, with jitter)"},
	{"ORDERWORKER_WEBHOOK_RETRY_MAX", "5m", "webhook backoff cap"},
	{"ORDERWORKER_WEBHOOK_TIMEOUT", "10s", "how long one webhook delivery may take"},
	{"ORDERWORKER_WEBHOOK_CONCURRENCY", "8", "webhook deliveries one worker has in flight per endpoint, at most 256 (with a sharded ledger, shared out over the shards, rounded up for each): an endpoint that answers in T seconds gets about this ÷ T events a second from each worker"},
	{"ORDERWORKER_API_TOKENS", "", "the HTTP API's bearer tokens, comma-separated; worker -dev without them serves the API open on loopback"},
}

// ownSecrets are orderworker's own settings that hold secrets, each
// possibly several values separated by whitespace (a rotation) or commas
// (ORDERWORKER_API_TOKENS).
var ownSecrets = []string{"ORDERWORKER_DATA_KEY", "ORDERWORKER_WEBHOOK_SECRET", "ORDERWORKER_API_TOKENS", "ORDERWORKER_MONITORING_TOKEN"}

// SecretValues are the secrets getenv holds (orderworker's own and every
// provider's credentials), for text an operator writes to be cleaned of:
// a note with a key pasted into it would otherwise keep it in Redis and
// send it out in a webhook. Values of fewer than 8 bytes are left out: a
// short setting is no secret worth masking every occurrence of.
func SecretValues(getenv func(string) string) []string {
	names := slices.Clone(ownSecrets)
	for _, s := range registry.All() {
		for _, st := range s.Settings {
			if st.Secret {
				names = append(names, st.Name)
			}
		}
	}
	var out []string
	for _, n := range names {
		// Split as the setting is read: on whitespace, and on commas
		// (ORDERWORKER_API_TOKENS), so that each value is masked on its
		// own; the whole value too, should a secret hold a comma.
		for _, v := range strings.FieldsFunc(getenv(n), func(r rune) bool { return unicode.IsSpace(r) || r == ',' }) {
			if len(v) >= 8 && !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
		if v := strings.TrimSpace(getenv(n)); len(v) >= 8 && strings.Contains(v, ",") && !strings.ContainsFunc(v, unicode.IsSpace) && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
