package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/internal/cliflag"
	"github.com/orderworker/orderworker/internal/devmode"
	"github.com/orderworker/orderworker/internal/settings"
	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/registry"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
)

const (
	exitOK       = 0
	exitRejected = 1 // some order was not accepted
	exitError    = 2 // usage or infrastructure error
)

// validators knows every provider the registry lists, to check params and
// mask personal data; enqueue needs no provider credentials.
func validators() *providers.Set {
	return registry.Validators("enqueue does not submit")
}

// checkDataKey refuses, before any order is read, a data key that is not
// the one the ledger's params are sealed with (Enqueuer.CheckDataKey; a
// producer without a key is not checked): a configuration error, which no
// resend fixes. Redis not answering is left to the orders' own answers.
func checkDataKey(ctx context.Context, enq *tasks.Enqueuer, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := enq.CheckDataKey(ctx)
	if errors.As(err, new(*ledger.DataKeyMismatchError)) {
		return fmt.Errorf("ORDERWORKER_DATA_KEY: %w", err)
	}
	return nil
}

// defaultRedisURL is the Redis enqueue uses when neither REDIS_URL nor
// -redis-url names one (a variable only so that a test can point it at its
// own server).
var defaultRedisURL = "redis://127.0.0.1:6379/0"

// resultLine is one order's line of output: its result, and where it
// came from (a file and line, stdin, or flags).
type resultLine struct {
	tasks.EnqueueResult
	Source string `json:"source,omitempty"`
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("enqueue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage:
  enqueue [flags] [FILE ...]           enqueue orders (JSON) from files, or stdin when none or "-"
  enqueue [flags] -provider P -order-no N -params '{...}'
  enqueue [flags] status PROVIDER ORDER_NO
  enqueue [flags] serve [-addr ADDR] [-open] the HTTP API for producers (enqueue serve -h)
  enqueue [flags] webhooks [failed|resend|discard] webhook endpoints and failed events (enqueue webhooks -h)
  enqueue [flags] list [-state S] [-provider P] [-older-than D] [-limit N] [-cursor C]
  enqueue [flags] resolve PROVIDER ORDER_NO -as paid|absent|errored [-provider-order-id ID] -note TEXT -by NAME
  enqueue [flags] redrive -state errored [-provider P] [-reason-match TEXT] [-older-than D] [-dry-run] [-by NAME] [-note TEXT]

Prints one JSON line per order: enqueued, duplicate, conflict or invalid (with the reason),
or error (with the reason) for an order an infrastructure error left unanswered: it may or may
not have been accepted, and is safe to send again with the same order_no.
Exits 1 if any order was not accepted, 2 on a usage or infrastructure error (after an error
line, no further order is read or sent; a Redis that refuses the credentials is found before
the first order is read, and nothing is sent). "enqueue SUBCOMMAND -h" prints a subcommand's usage.
list, resolve and redrive act on the ledger's orders (enqueue list -h, ...); they
exit 1 when an action is refused, with the reason.

Flags:
`)
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\nEnvironment (flags override it):\n")
		for _, e := range settings.Enqueue() {
			def := e.Default
			if def == "" {
				def = "-"
			}
			fmt.Fprintf(fs.Output(), "  %-32s %s (default %s)\n", e.Name, e.Help, def)
		}
		fmt.Fprintf(fs.Output(), "\n%s\n", settings.EnqueueAlso)
	}
	redisURL := getenv("REDIS_URL")
	if redisURL == "" {
		redisURL = defaultRedisURL
	}
	queue := getenv("ORDERWORKER_QUEUE")
	if queue == "" {
		queue = tasks.DefaultQueue
	}
	fs.StringVar(&redisURL, "redis-url", redisURL, "Redis URL (REDIS_URL)")
	// -h prints the default: REDIS_URL's, whose password it must not show.
	fs.Lookup("redis-url").DefValue = tasks.RedactURL(redisURL)
	fs.StringVar(&queue, "queue", queue, "asynq queue (ORDERWORKER_QUEUE)")
	provider := fs.String("provider", "", "single order: provider")
	orderNo := fs.String("order-no", "", "single order: order number")
	params := fs.String("params", "", "single order: params as a JSON object")
	timeout := fs.Duration("timeout", 10*time.Second, "Redis timeout per batch of orders, and for each other wait on Redis")
	dev := fs.Bool("dev", false, "use worker -dev's Redis ("+devmode.RedisURL+", or -redis-url; REDIS_URL is ignored), refused unless it holds the -dev marker; seal with -dev's data key unless ORDERWORKER_DATA_KEY is set")
	if err := cliflag.Parse(fs, args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitError
	}
	if *timeout <= 0 {
		fmt.Fprintf(stderr, "enqueue: -timeout %s: want a positive duration like 10s\n", *timeout)
		return exitError
	}
	if err := tasks.CheckQueue(queue); err != nil {
		fmt.Fprintf(stderr, "enqueue: queue %q (ORDERWORKER_QUEUE or -queue): %v\n", queue, err)
		return exitError
	}
	if rest := fs.Args(); len(rest) == 0 || rest[0] != "serve" {
		// serve logs them, in its log's format.
		for _, m := range settings.UnknownHere() {
			fmt.Fprintln(stderr, "enqueue: warning:", m)
		}
	}
	// A subcommand's -h prints its usage and exits 0 before anything asks
	// Redis: -dev does not look for its Redis first (enqueue -dev serve is
	// refused as such, -h or not).
	helpOnly := false
	if rest := fs.Args(); len(rest) >= 2 && slices.Contains(subcommands, rest[0]) {
		// webhooks SUB -h, not webhooks -endpoint -h (-h an endpoint there).
		helpOnly = isHelp(rest[1]) || rest[0] == "webhooks" && len(rest) == 3 && !strings.HasPrefix(rest[1], "-") && isHelp(rest[2]) ||
			rest[0] == "status" && statusHelp(rest)
	}
	if rest := fs.Args(); *dev && len(rest) > 0 && rest[0] == "serve" {
		// Refused before the marker is looked for: there is nothing to
		// check a Redis for.
		fmt.Fprintf(stderr, "enqueue -dev serve: refused: worker -dev serves the API itself (on %s unless its log says otherwise); enqueue serve is the real one\n", devmode.APIAddr)
		return exitError
	}
	if *dev && !helpOnly {
		explicit := false
		fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "redis-url" })
		if !explicit {
			redisURL = devmode.RedisURL
		}
		if err := checkDevRedis(ctx, redisURL, *timeout); err != nil {
			fmt.Fprintln(stderr, "enqueue -dev:", err)
			return exitError
		}
		outer := getenv
		getenv = func(name string) string {
			if v := outer(name); v != "" || name != "ORDERWORKER_DATA_KEY" {
				return v
			}
			return devmode.DataKey
		}
	}
	source := "REDIS_URL"
	switch {
	case *dev && !helpOnly:
		source = "-dev's Redis"
	case flagGiven(fs, "redis-url"):
		source = "-redis-url"
	case getenv("REDIS_URL") == "":
		source = "the default: REDIS_URL is not set"
	}
	redisOpt, err := tasks.ParseRedisURL(redisURL)
	if err != nil {
		fmt.Fprintf(stderr, "enqueue: %s: %v\n", strings.TrimPrefix(source, "the default: "), err)
		return exitError
	}
	// -timeout bounds each wait on Redis, a new connection's too. An
	// error that is not Redis's reply names the Redis and its setting.
	redisOpt = namedRedis{tasks.RESP2(tasks.CapTimeouts(redisOpt, *timeout)), newRedisName(redisURL, source)}
	rest := fs.Args()
	if len(rest) > 0 && rest[0] == "status" {
		if statusHelp(rest) {
			fmt.Fprint(stdout, `Usage: enqueue [flags] status PROVIDER ORDER_NO

Prints the order's record as indented JSON, with its attempt history, params
masked (opened with ORDERWORKER_DATA_KEY when set, else shown sealed). Exits 1
when there is no such order, 2 on a usage or infrastructure error.
`)
			return exitOK
		}
		if len(rest) != 3 {
			fmt.Fprintln(stderr, "enqueue: usage: enqueue [flags] status PROVIDER ORDER_NO (enqueue status -h)")
			return exitError
		}
		return status(ctx, redisOpt, rest[1], rest[2], *timeout, getenv, stdout, stderr)
	}
	if len(rest) > 0 && rest[0] == "serve" {
		return serve(ctx, rest[1:], redisOpt, queue, *timeout, getenv, stdout, stderr)
	}
	if len(rest) > 0 && rest[0] == "webhooks" {
		return webhooks(ctx, rest[1:], redisOpt, *timeout, getenv, stdout, stderr)
	}
	// A script that forgot its environment would otherwise write to
	// whatever Redis listens on the default address, without a word.
	onDefault := getenv("REDIS_URL") == "" && !flagGiven(fs, "redis-url") && !*dev
	if len(rest) > 0 {
		c := cmdEnv{redisOpt: redisOpt, queue: queue, timeout: *timeout, getenv: getenv, stdout: stdout, stderr: stderr}
		switch rest[0] {
		case "list":
			return list(ctx, c, rest[1:])
		case "resolve", "redrive":
			if onDefault && !slices.ContainsFunc(rest[1:], isHelp) {
				fmt.Fprintf(stderr, "enqueue: %s: using %s (the default: REDIS_URL is not set)\n", rest[0], tasks.RedactURL(redisURL))
			}
			if rest[0] == "resolve" {
				return resolve(ctx, c, rest[1:])
			}
			return redrive(ctx, c, rest[1:])
		}
	}

	single := *provider != "" || *orderNo != "" || *params != ""
	if single && len(rest) > 0 {
		fmt.Fprintln(stderr, "enqueue: give either -provider/-order-no/-params or files, not both")
		return exitError
	}
	if !single {
		if len(rest) == 0 {
			rest = []string{"-"}
		}
		// Every file is checked before Redis is asked anything.
		if err := checkInputs(rest); err != nil {
			fmt.Fprintln(stderr, "enqueue:", err)
			return exitError
		}
	}
	sealer, err := dataKey(getenv)
	if err != nil {
		fmt.Fprintln(stderr, "enqueue:", err)
		return exitError
	}
	set := validators()
	client := asynq.NewClient(redisOpt)
	defer client.Close()
	rdb := redisOpt.MakeRedisClient().(redis.UniversalClient)
	defer rdb.Close()
	// A Redis that refuses this process for good (a wrong password, an
	// unknown master) is found before any order is sent, so
	// that enqueue can say that nothing was written, rather than answer
	// the first batch "error: may or may not have been accepted".
	refused, down := usable(ctx, rdb, *timeout)
	if refused != nil {
		fmt.Fprintf(stderr, "enqueue: cannot use Redis (%s): %s; nothing was read or sent\n", source, strings.TrimSuffix(providers.MaskPhones(refused.Error()), "."))
		return exitError
	}
	if down != nil {
		// One wait on Redis, not one for each check and then the first
		// batch: -timeout bounds the command until its first order is
		// sent. Nothing was: every order is safe to send again.
		reason := providers.MaskPhones(tasks.RedisErrorReason(down).Error())
		if single {
			_ = json.NewEncoder(stdout).Encode(resultLine{tasks.EnqueueResult{Status: statusError, Provider: providers.MaskPhones(*provider), OrderNo: providers.MaskPhones(*orderNo),
				Reason: "not sent: Redis not reached: " + reason}, "flags"})
		}
		fmt.Fprintf(stderr, "enqueue: Redis not reached (waited up to -timeout %s): %s; nothing was read or sent: send the orders again with the same order numbers (an earlier send of one may have got in: it then answers duplicate)\n", *timeout, strings.TrimSuffix(reason, "."))
		return exitError
	}
	if onDefault {
		fmt.Fprintf(stderr, "enqueue: sending orders to %s (the default: REDIS_URL is not set)\n", tasks.RedactURL(redisURL))
	}
	var guard *devGuard
	if !*dev {
		guard = &devGuard{rdb: rdb, timeout: *timeout}
		if err := guard.check(ctx); err != nil {
			fmt.Fprintln(stderr, "enqueue:", err)
			return exitError
		}
	}
	l, err := newLedger(rdb, getenv, *timeout)
	if err != nil {
		fmt.Fprintln(stderr, "enqueue:", err)
		return exitError
	}
	enq := tasks.NewEnqueuer(client, l, set, &tasks.EnqueuerOptions{Queue: queue, Sealer: sealer, Dev: *dev})
	if err := checkDataKey(ctx, enq, *timeout); err != nil {
		fmt.Fprintln(stderr, "enqueue:", err)
		return exitError
	}
	out := json.NewEncoder(stdout)
	code := exitOK
	submit := func(source string, data []byte) error {
		if err := guard.check(ctx); err != nil {
			return err
		}
		c, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		res, err := enq.Enqueue(c, data)
		if err != nil {
			line := errorResult(res, err)
			if perr := out.Encode(resultLine{line, source}); perr != nil {
				return perr
			}
			return &answeredError{n: 1, source: source, reason: line.Reason, unwritten: refusedUnwritten(err)}
		}
		if res.Status == tasks.Conflict || res.Status == tasks.Invalid {
			code = exitRejected
		}
		return out.Encode(resultLine{res, source})
	}

	if single {
		p := tasks.Payload{Provider: *provider, OrderNo: *orderNo, Params: json.RawMessage(*params)}
		if strings.TrimSpace(*params) != "" && !json.Valid(p.Params) {
			code = exitRejected
			_ = out.Encode(resultLine{tasks.EnqueueResult{Status: tasks.Invalid, Provider: providers.MaskPhones(p.Provider), OrderNo: providers.MaskPhones(p.OrderNo), Reason: "params: not valid JSON: " + tasks.SyntaxReason(p.Params)}, "flags"})
			return code
		}
		if strings.TrimSpace(*params) == "" {
			p.Params = nil
		}
		data, err := json.Marshal(p)
		if err != nil {
			fmt.Fprintln(stderr, "enqueue:", err)
			return exitError
		}
		if err := submit("flags", data); err != nil {
			fmt.Fprintln(stderr, "enqueue:", err)
			return exitError
		}
		return code
	}
	reject := func(source, reason string) error {
		code = exitRejected
		return out.Encode(resultLine{tasks.EnqueueResult{Status: tasks.Invalid, Reason: reason}, source})
	}
	// Orders go to Redis in batches of what the input has ready (the
	// claims of a batch in one round trip), so one enqueue keeps up with
	// asynq's own client; results are printed in input order.
	b := &batch{enq: enq, ctx: ctx, timeout: *timeout, guard: guard}
	b.print = func(source string, res tasks.EnqueueResult) error {
		if res.Status == tasks.Conflict || res.Status == tasks.Invalid {
			code = exitRejected
		}
		return out.Encode(resultLine{res, source})
	}
	batchReject := func(source, reason string) error {
		if err := b.flush(); err != nil {
			return err
		}
		return reject(source, reason)
	}
	for _, name := range rest {
		err := readOrders(name, stdin, b.add, batchReject, b.flush)
		if err == nil || errors.As(err, new(*stoppedError)) {
			if ferr := b.flush(); ferr != nil {
				err = ferr
			}
		}
		var stopped *stoppedError
		switch {
		case errors.As(err, &stopped):
			fmt.Fprintln(stderr, "enqueue:", err) // reported as invalid; exit 1
		case err != nil:
			fmt.Fprintln(stderr, "enqueue:", err)
			return exitError
		}
	}
	return code
}

// isHelp reports whether arg asks for help, as the flag package takes it.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--h", "--help":
		return true
	}
	return false
}

// statusHelp reports whether "status" and its arguments (rest) ask for
// its usage: -h in place of its provider, or anywhere among a wrong
// number of arguments (an order number may be "-h").
func statusHelp(rest []string) bool {
	return slices.ContainsFunc(rest[1:], isHelp) && (len(rest) != 3 || isHelp(rest[1]))
}

// flagGiven reports whether the named flag was given on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// usable asks Redis once (PING), waiting at most timeout. refused is an
// answer that no waiting heals (tasks.PermanentRedisError: a wrong user or
// password, WRONGPASS or NOAUTH; a database out of range; a master name
// no sentinel knows; a certificate that does not verify), with its reason;
// down is Redis not answering (unreachable, not in time) or answering
// that it is not ready (LOADING, MASTERDOWN): no order has been sent. Any
// other reply (a user denied PING itself, NOPERM, may still have every
// command enqueue sends) is left to the orders' own answers.
func usable(ctx context.Context, rdb redis.UniversalClient, timeout time.Duration) (refused, down error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := rdb.Ping(ctx).Err()
	switch {
	case err == nil:
		return nil, nil
	case tasks.PermanentRedisError(err) && !redis.IsPermissionError(err):
		return tasks.RedisErrorReason(err), nil
	case errors.As(err, new(redis.Error)) && !redis.HasErrorPrefix(err, "LOADING") && !redis.HasErrorPrefix(err, "MASTERDOWN"):
		// Another reply (a proxy without PING, a user denied it): Redis
		// answers, and the orders' own answers say what it does with them.
		return nil, nil
	}
	return nil, err
}

// batch collects orders and sends them together with EnqueueBatch.
type batch struct {
	enq     *tasks.Enqueuer
	ctx     context.Context
	timeout time.Duration
	print   func(source string, res tasks.EnqueueResult) error
	guard   *devGuard
	data    [][]byte
	sources []string
}

// maxBatch bounds the orders sent in one batch.
const maxBatch = 256

func (b *batch) add(source string, data []byte) error {
	b.data = append(b.data, bytes.Clone(data))
	b.sources = append(b.sources, source)
	if len(b.data) >= maxBatch {
		return b.flush()
	}
	return nil
}

// flush sends the collected orders and prints every result in order, an
// order that met an infrastructure error (Redis unreachable) as
// {"status":"error"}; then, if any did, it returns an *answeredError, on
// which the caller reads no further.
func (b *batch) flush() error {
	if len(b.data) == 0 {
		return nil
	}
	if err := b.guard.check(b.ctx); err != nil {
		return err
	}
	c, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	results := b.enq.EnqueueBatch(c, b.data)
	defer func() { b.data, b.sources = b.data[:0], b.sources[:0] }()
	var failed *answeredError
	for i, r := range results {
		res := r.EnqueueResult
		if r.Err != nil {
			res = errorResult(res, r.Err)
			if failed == nil {
				failed = &answeredError{source: b.sources[i], reason: res.Reason, unwritten: true}
			}
			failed.n++
			failed.unwritten = failed.unwritten && refusedUnwritten(r.Err)
		}
		if err := b.print(b.sources[i], res); err != nil {
			return err
		}
	}
	if failed != nil {
		return failed
	}
	return nil
}

// statusError is the status of an order whose enqueue met an
// infrastructure error: it may or may not have been accepted.
const statusError = "error"

// errorResult is the line printed for an order whose enqueue failed with
// err: its provider and order_no, and the reason, phone numbers masked.
func errorResult(res tasks.EnqueueResult, err error) tasks.EnqueueResult {
	return tasks.EnqueueResult{
		Status: statusError, Provider: res.Provider, OrderNo: res.OrderNo,
		Reason: providers.MaskPhones(tasks.RedisErrorReason(err).Error()),
	}
}

// refusedUnwritten reports whether err, an order's enqueue error, is the
// ledger's refusal of this process's settings before anything of the order
// was written (another shard count or data key than the ledger's): the
// order was surely not accepted (a black-box run: such orders were said to
// be "may or may not have been accepted").
func refusedUnwritten(err error) bool {
	var shards *ledger.ShardsMismatchError
	var key *ledger.DataKeyMismatchError
	return errors.As(err, &shards) || errors.As(err, &key)
}

// answeredError says that n orders were answered {"status":"error"}, the
// first at source, and that enqueue read no further.
type answeredError struct {
	n      int
	source string
	reason string
	// unwritten: every one was refused before anything of it was
	// written (refusedUnwritten).
	unwritten bool
}

func (e *answeredError) Error() string {
	orders := "1 order"
	if e.n > 1 {
		orders = fmt.Sprintf("%d orders", e.n)
	}
	if e.unwritten {
		return fmt.Sprintf("%s: %s; %s answered error, and nothing more was read or sent. "+
			"Nothing of those orders was written (the ledger refused this process's settings), nor were orders without an output line sent: "+
			"send them again with the same order_no once the settings agree", e.source, e.reason, orders)
	}
	return fmt.Sprintf("%s: %s; %s answered error, and nothing more was read or sent. "+
		"Orders without an output line were not sent. An order answered error may or may not have been accepted: "+
		"it is safe to send it again with the same order_no (it then answers duplicate if it was)", e.source, e.reason, orders)
}

// status prints the order's record, params masked, as JSON.
func status(ctx context.Context, redisOpt asynq.RedisConnOpt, provider, orderNo string, timeout time.Duration, getenv func(string) string, stdout, stderr io.Writer) int {
	if names := validators().Names(); !slices.Contains(names, provider) {
		// A usage error, as resolve's: no such order could exist.
		fmt.Fprintf(stderr, "enqueue: provider %q: want one of %s\n", providers.MaskPhones(provider), strings.Join(names, ", "))
		return exitError
	}
	rdb := redisOpt.MakeRedisClient().(redis.UniversalClient)
	defer rdb.Close()
	c, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// A data key that cannot be read is refused, as by every command,
	// rather than the params shown sealed as if none were set.
	sealer, err := dataKey(getenv)
	if err != nil {
		fmt.Fprintln(stderr, "enqueue:", err)
		return exitError
	}
	l, err := newLedger(rdb, getenv, timeout)
	if err == nil {
		err = l.VerifyShards(c)
	}
	var rec *tasks.Record
	if err == nil {
		rec, err = l.Get(c, tasks.OrderRef{Provider: provider, OrderNo: orderNo})
	}
	if err != nil {
		fmt.Fprintln(stderr, "enqueue:", err)
		return exitError
	}
	if rec == nil {
		fmt.Fprintf(stderr, "enqueue: no order %s/%s\n", providers.MaskPhones(provider), providers.MaskPhones(orderNo))
		return exitRejected
	}
	// Sealed params are shown opened (and masked) when the data key is
	// set, else as the opaque sealed value.
	if clear, err := sealer.Open(rec.Params); err == nil {
		rec.Params = providers.MaskParams(clear, validators().Masked(provider))
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rec); err != nil {
		return exitError
	}
	return exitOK
}

// newLedger returns the ledger on rdb with ORDERWORKER_LEDGER_SHARDS
// shards (the workers' count: the ledger refuses writes with another) and
// the durable-writes settings ORDERWORKER_DURABLE_WRITES and
// ORDERWORKER_MIN_REPLICAS.
// newLedger is the ledger on rdb, a client whose timeouts tasks.CapTimeouts
// capped at timeout: a durable write's WAIT waits at most half of it (and
// at most the ledger's default), so that its answer arrives within the
// client's read timeout.
func newLedger(rdb redis.UniversalClient, getenv func(string) string, timeout time.Duration) (*tasks.Ledger, error) {
	n, err := tasks.ParseShards(getenv("ORDERWORKER_LEDGER_SHARDS"))
	if err != nil {
		return nil, err
	}
	d, minReplicas, err := ledger.ParseDurable(getenv("ORDERWORKER_DURABLE_WRITES"), getenv("ORDERWORKER_MIN_REPLICAS"))
	if err != nil {
		return nil, err
	}
	return ledger.New(rdb, &ledger.Options{Shards: n, Providers: validators().Names(), Durable: d, MinReplicas: minReplicas,
		WaitTimeout: min(defaultWaitTimeout, timeout/2)}), nil
}

// defaultWaitTimeout is the ledger's own default WAIT timeout.
const defaultWaitTimeout = 2 * time.Second

// dataKey returns the Sealer for ORDERWORKER_DATA_KEY, nil when unset.
func dataKey(getenv func(string) string) (*tasks.Sealer, error) {
	key := getenv("ORDERWORKER_DATA_KEY")
	if key == "" {
		return nil, nil
	}
	s, err := tasks.NewSealer(key)
	if err != nil {
		return nil, fmt.Errorf("ORDERWORKER_DATA_KEY: %w", err)
	}
	return s, nil
}

// checkDevRedis refuses a Redis at rawURL that does not hold the -dev
// marker: enqueue -dev writes only where worker -dev keeps its own data,
// never to a Redis that may hold real orders.
func checkDevRedis(ctx context.Context, rawURL string, timeout time.Duration) error {
	opt, err := tasks.ParseRedisURL(rawURL)
	if err != nil {
		return err
	}
	rdb := tasks.RESP2(tasks.CapTimeouts(opt, timeout)).MakeRedisClient().(redis.UniversalClient)
	defer rdb.Close()
	c, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The marker's final value: one that says -dev is still claiming the
	// Redis (it checks it for other writers first) is no go-ahead yet.
	ready, err := devmode.Ready(c, rdb)
	if err != nil {
		return fmt.Errorf("%s: %w (is worker -dev running? its log names its Redis; give that URL with -redis-url)", tasks.RedactURL(rawURL), err)
	}
	if !ready {
		if marked, _ := devmode.Marked(c, rdb); marked {
			return fmt.Errorf("%s: worker -dev is still claiming it (it checks it for other writers for a few seconds); nothing was sent; try again once its log says it uses it", tasks.RedactURL(rawURL))
		}
		return fmt.Errorf("%s holds no %s marker: it is not worker -dev's Redis, and may hold real orders; nothing was sent (leave -dev out to enqueue into a real one)", tasks.RedactURL(rawURL), devmode.MarkerKey)
	}
	return nil
}

// checkNotDevRedis refuses a Redis that holds the -dev marker to a
// producer without -dev: orders there are paid through worker -dev's
// sandboxes, never created at the providers, while the producer would take
// them for real. An unreachable Redis is left to the writes to report.
func checkNotDevRedis(ctx context.Context, rdb redis.UniversalClient, closeIt bool, timeout time.Duration) error {
	if marked, err := devMarked(ctx, rdb, closeIt, timeout); err == nil && marked {
		return fmt.Errorf("refused: this Redis holds the %s marker: it is worker -dev's, whose sandboxes pay every order without creating it anywhere; give enqueue -dev to enqueue demo orders there, or point REDIS_URL at your own Redis", devmode.MarkerKey)
	}
	return nil
}

// devGuard refuses a producer's writes into a Redis that holds the -dev
// marker (see checkNotDevRedis), asking for it before the first write and
// again before any write more than devmode.WatchInterval after the last
// answer: a read that failed is asked again before the next write (the
// write itself reports an unreachable Redis), and a long run (stdin) stops
// within a second of worker -dev emptying and marking its Redis. nil
// checks nothing (enqueue -dev).
type devGuard struct {
	rdb     redis.UniversalClient
	timeout time.Duration
	clear   time.Time // when a read last found no marker
}

func (g *devGuard) check(ctx context.Context) error {
	if g == nil || (!g.clear.IsZero() && time.Since(g.clear) < devmode.WatchInterval) {
		return nil
	}
	marked, err := devMarked(ctx, g.rdb, false, g.timeout)
	switch {
	case err != nil:
		return nil
	case marked:
		return fmt.Errorf("refused: this Redis holds the %s marker: it is worker -dev's, whose sandboxes pay every order without creating it anywhere; nothing more was sent; give enqueue -dev to enqueue demo orders there, or point REDIS_URL at your own Redis", devmode.MarkerKey)
	}
	g.clear = time.Now()
	return nil
}

// devMarked asks rdb (closed after, when closeIt) for the -dev marker,
// waiting at most timeout.
func devMarked(ctx context.Context, rdb redis.UniversalClient, closeIt bool, timeout time.Duration) (bool, error) {
	if closeIt {
		defer rdb.Close()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return devmode.Marked(ctx, rdb)
}
