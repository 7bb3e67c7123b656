package tasks

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/internal/devmode"
	"github.com/orderworker/orderworker/internal/jsonscan"
	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/order"
)

// Outcome of an enqueue.
const (
	Enqueued  = "enqueued"  // a new order, now queued
	Duplicate = "duplicate" // the same order was already accepted
	Conflict  = "conflict"  // the order number was taken by different params
	Invalid   = "invalid"   // the payload or params are not acceptable
)

// EnqueueResult is what happened to one order. Its five contract fields
// are always present ("" where they do not apply: the provider and order
// number of a payload too broken to name them, the state of an order not
// recorded, the reason of one accepted).
type EnqueueResult struct {
	Status   string `json:"status"`
	Provider string `json:"provider"`
	OrderNo  string `json:"order_no"`
	// State is the order's ledger state (for duplicates, the existing one).
	State  State  `json:"state"`
	Reason string `json:"reason"`
	// Repaired is set when a duplicate found its order queued without a
	// task (a producer crashed between the claim and the enqueue) and
	// queued it.
	Repaired bool `json:"repaired,omitempty"`
}

// EnqueuerOptions configure an Enqueuer. nil means defaults.
type EnqueuerOptions struct {
	// Queue is the asynq queue. Default DefaultQueue.
	Queue string
	// TaskOptions are added to every task. The Enqueuer's own TaskID,
	// Queue, MaxRetry and Timeout are applied after them, so a TaskID or
	// Queue given here never replaces the order's (dedupe and the
	// reconciler find an order's task by them).
	TaskOptions []asynq.Option
	// Metrics records dedupe hits; nil records nothing.
	Metrics *Metrics
	// Sealer encrypts params before they reach Redis; nil stores them in
	// clear and refuses orders carrying personal-data params.
	Sealer *Sealer
	// Dev: the Enqueuer writes into worker -dev's Redis (enqueue -dev,
	// -dev's own API and demo), whose caller checked its marker. Without
	// it, a Redis that holds the -dev marker is refused (ErrDevRedis):
	// the sandboxes there pay every order without creating it anywhere.
	Dev bool
}

// ErrDevRedis is Enqueue's error when the Redis holds worker -dev's marker
// and the Enqueuer is not EnqueuerOptions.Dev: nothing was written.
var ErrDevRedis = errors.New("refused: this Redis holds the orderworker:dev marker: it is worker -dev's, whose sandboxes pay every order without creating it anywhere; nothing was written (point the producer at your own Redis)")

// Enqueuer accepts orders: it validates them, claims the order number in the
// ledger and queues the task. The claim queues the task itself, in the
// same script: one round trip for a new order, the record and its task
// written together or not at all (a task already there under the order's
// task id is left as it is). On Redis Cluster (the record and asynq's keys
// are in different slots), once Redis refused such a script across hash
// slots (ledger.ErrTaskNotInClaim), or with EnqueuerOptions.TaskOptions
// (which asynq's client applies), the task is enqueued with asynq's client
// after the claim: two round trips. It is safe for concurrent use.
//
// The asynq client and the ledger must use the same Redis, the one the
// workers use.
type Enqueuer struct {
	client    *asynq.Client
	ledger    *ledger.Ledger
	providers *providers.Set
	queue     string
	taskOpts  []asynq.Option
	metrics   *Metrics
	sealer    *Sealer
	keyOK     atomic.Bool // the data key matched the ledger's once
	dev       bool
	// devClear is when a read last found no -dev marker (unix ns).
	devClear atomic.Int64
	// oneTrip: the claim queues the task in the same script (the ledger
	// is not on Redis Cluster and no task options beyond the Enqueuer's
	// own were given, which asynq's client would have to apply).
	oneTrip bool
}

// NewEnqueuer returns an Enqueuer that validates params with set.
func NewEnqueuer(client *asynq.Client, l *ledger.Ledger, set *providers.Set, opts *EnqueuerOptions) *Enqueuer {
	if opts == nil {
		opts = &EnqueuerOptions{}
	}
	e := &Enqueuer{client: client, ledger: l, providers: set, queue: opts.Queue,
		taskOpts: opts.TaskOptions, metrics: opts.Metrics, sealer: opts.Sealer, dev: opts.Dev}
	if e.queue == "" {
		e.queue = DefaultQueue
	}
	e.oneTrip = l.QueuesTasks() && len(e.taskOpts) == 0
	e.taskOpts = append(slices.Clone(e.taskOpts), asynq.Queue(e.queue), asynq.MaxRetry(TaskMaxRetry), asynq.Timeout(TaskTimeout))
	return e
}

// TaskMaxRetry is asynq's retry limit for order tasks. The handler keeps
// its own, smaller, failure budget in the ledger and ends the task itself;
// asynq's limit is only a backstop, set high so that waits which do not
// count as failures (throttling, polling) are never cut off by it.
const TaskMaxRetry = 1000

// TaskTimeout bounds one run of an order task.
const TaskTimeout = 5 * time.Minute

// Enqueue accepts one order given as payload bytes. The returned error is
// for infrastructure failures only (Redis unreachable, a data key that does
// not match the ledger's); everything about the order itself is in the
// result.
func (e *Enqueuer) Enqueue(ctx context.Context, data []byte) (EnqueueResult, error) {
	p, err := decodeProduced(data)
	if err != nil {
		return invalidPayload(data, err), nil
	}
	return e.EnqueuePayload(ctx, p)
}

// invalidPayload is the answer to a payload that could not be decoded
// (err): invalid, naming its provider and order number where the payload
// gives them as strings, so that a producer can tell which order it was.
// Only the keys spelled exactly so count, and only one given once:
// encoding/json would match "Order_No" too, and take the last of several,
// so that the answer would name another order than the producer's.
func invalidPayload(data []byte, err error) EnqueueResult {
	res := EnqueueResult{Status: Invalid, Reason: reasonOf(err)}
	members, ok := jsonscan.Members(data)
	if !ok {
		return res
	}
	exact := func(key string) string {
		var v string
		n := 0
		for _, m := range members {
			if string(m.Key) == key {
				n++
				v = ""
				if m.Value[0] == '"' && json.Unmarshal(m.Value, &v) != nil {
					v = ""
				}
			}
		}
		if n != 1 {
			return ""
		}
		return providers.MaskPhones(v)
	}
	res.Provider, res.OrderNo = echoProvider(exact("provider")), echoOrderNo(exact("order_no"))
	return res
}

// Check judges an order as Enqueue would, without Redis: the invalid
// result Enqueue would answer, and false when the order itself is fine, or
// when only its record can tell: a refusal of personal data (an order
// number that is a phone number, personal-data params without a data key)
// is answered only for an order not recorded yet (see refusePersonal), so
// that a producer told to use another number never has one accepted
// before the rule made twice. Callers that cannot reach Redis use it to
// tell a bad order (which no resend fixes) from one to send again.
func (e *Enqueuer) Check(data []byte) (EnqueueResult, bool) {
	p, err := decodeProduced(data)
	if err != nil {
		return invalidPayload(data, err), true
	}
	// An order refused is not recorded: its number names nothing, and
	// phone numbers in it are masked whatever the reason.
	res := EnqueueResult{Status: Invalid, Provider: echoProvider(p.Provider), OrderNo: echoOrderNo(p.OrderNo)}
	if err := checkOrderPath(p.OrderNo); err != nil {
		res.Reason = reasonOf(err)
		return res, true
	}
	if err := checkDuplicateKeys(p.Params); err != nil {
		res.Reason = reasonOf(err)
		return res, true
	}
	if _, _, err := openAndValidate(p, e.providers, e.sealer); err != nil && !errors.As(err, new(personalError)) {
		res.Reason = reasonOf(err)
		return res, true
	}
	return EnqueueResult{}, false
}

func reasonOf(err error) string {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return ie.Reason
	}
	return err.Error()
}

// EnqueuePayload accepts one decoded order: one round trip for a new
// order (see Enqueuer).
func (e *Enqueuer) EnqueuePayload(ctx context.Context, p Payload) (EnqueueResult, error) {
	pr, err := e.prepare(ctx, p)
	if err != nil || pr.done {
		return pr.res, err
	}
	return e.claimPrepared(ctx, pr)
}

// claimPrepared claims pr, an order prepared and not done, and answers it.
func (e *Enqueuer) claimPrepared(ctx context.Context, pr prepared) (EnqueueResult, error) {
	var a ledger.ClaimArgs
	var claim ledger.ClaimResult
	var err error
	for try := 0; ; try++ {
		if a, err = e.claimArgs(ctx, pr); err != nil {
			return pr.res, err
		}
		if a.Task == nil {
			break
		}
		claim, err = e.ledger.ClaimQueue(ctx, a)
		if errors.Is(err, ledger.ErrTaskNotInClaim) {
			a.Task = nil // nothing was written: claim, then enqueue
		}
		// A mark later than the master's clock (a failover): nothing
		// was written, and the mark is read again.
		if !errors.Is(err, ledger.ErrMarkAhead) || try == 2 {
			break
		}
	}
	if a.Task == nil {
		claim, err = e.ledger.Claim(ctx, a.Ref, a.Params, a.ParamsHash)
	}
	return e.afterClaim(ctx, pr, claim, err, a.Task != nil)
}

// claimArgs is the claim of pr, with its task when the claim queues it.
func (e *Enqueuer) claimArgs(ctx context.Context, pr prepared) (ledger.ClaimArgs, error) {
	a := ledger.ClaimArgs{Ref: pr.ref(), Params: pr.p.Params, ParamsHash: pr.hash}
	if !e.oneTrip || !e.ledger.QueuesTasks() {
		return a, nil
	}
	a.Token = ledger.NewToken()
	data, err := orderTaskPayload(pr.p)
	if err != nil {
		return a, err
	}
	// Now is no later than any create: none leaves before the task runs.
	// On Redis's clock, as the creates' own times: a lookup from this
	// mark (should Redis lose the record) misses nothing however far
	// this process's clock is ahead.
	at, err := e.ledger.NotAfterNow(ctx, pr.ref())
	if err != nil {
		return a, err
	}
	a.Task = &ledger.Task{
		Type:    TypeOrderSubmit,
		Payload: data,
		Headers: map[string]string{claimedHeader: claimMark(at, a.Token)},
		Mark:    at,
		ID:      TaskID(pr.p.Provider, pr.p.OrderNo),
		Queue:   OrderQueue(e.queue, e.ledger, OrderRef{Provider: pr.p.Provider, OrderNo: pr.p.OrderNo}),
		// With shards, a task a producer wrote itself in the queue as
		// named stands for the order too: no second task beside it.
		AlsoQueue: e.queue,
		Retry:     TaskMaxRetry,
		Timeout:   int64(TaskTimeout / time.Second),
	}
	return a, nil
}

// BatchResult is one order's answer in EnqueueBatch: its result, or Err
// for an infrastructure failure (Redis unreachable) that left it unknown
// whether the order was accepted; sending it again is safe.
type BatchResult struct {
	EnqueueResult
	Err error
}

// batchWorkers bounds the asynq enqueues a batch runs at once.
const batchWorkers = 16

// EnqueueBatch accepts several orders given as payload bytes, with the same
// answers as Enqueue for each, in order: the claims, each with its order's
// task, go in one round trip (where claim and enqueue are separate writes,
// the new orders' tasks are then enqueued in parallel). It is the fast way
// for one producer to send many orders.
func (e *Enqueuer) EnqueueBatch(ctx context.Context, payloads [][]byte) []BatchResult {
	out := make([]BatchResult, len(payloads))
	prs := make([]prepared, len(payloads))
	var claims []ledger.ClaimArgs
	var idx []int
	// An order given again in the same batch is answered from its first
	// occurrence's result, never claimed twice: the two would race to
	// queue its task.
	first := map[ledger.Ref]int{}
	repeats := map[int]int{}
	for i, data := range payloads {
		p, err := decodeProduced(data)
		if err != nil {
			out[i].EnqueueResult = invalidPayload(data, err)
			continue
		}
		pr, err := e.prepare(ctx, p)
		if err != nil || pr.done {
			out[i] = BatchResult{pr.res, err}
			continue
		}
		pr.batch = true
		prs[i] = pr
		if f, ok := first[pr.ref()]; ok {
			repeats[i] = f
			continue
		}
		a, err := e.claimArgs(ctx, pr)
		if err != nil {
			out[i] = BatchResult{pr.res, err}
			continue
		}
		first[pr.ref()] = i
		claims = append(claims, a)
		idx = append(idx, i)
	}
	defer func() {
		// Repeats answered from their first occurrence count in the
		// dedupe counts as the claim of each would have.
		var counted []ledger.Ref
		var conflicts []bool
		defer func() { _ = e.ledger.CountRepeats(ctx, counted, conflicts) }() // a metric's: lost on failure
		for i, f := range repeats {
			if got := out[f]; got.Err == nil && got.Status == Conflict && prs[i].hash != prs[f].hash {
				// The first occurrence conflicts with the record; this
				// one, with other params, may be the recorded order
				// sent again: it is judged on its own (a conflict
				// answered for an accepted order could have its
				// producer renumber it, and create it twice).
				res, err := e.claimPrepared(ctx, prs[i])
				out[i] = BatchResult{res, err}
				continue
			}
			out[i] = repeatOf(prs[i], prs[f], out[f])
			if s := out[i].Status; out[i].Err == nil && (s == Duplicate || s == Conflict) {
				counted = append(counted, prs[i].ref())
				conflicts = append(conflicts, s == Conflict)
			}
		}
	}()
	if len(claims) == 0 {
		return out
	}
	results, errs, err := e.ledger.ClaimMany(ctx, claims)
	if errors.Is(err, ledger.ErrTaskNotInClaim) {
		// Switched over since claimArgs (nothing was sent): claim, then
		// enqueue.
		for k := range claims {
			claims[k].Task = nil
		}
		results, errs, err = e.ledger.ClaimMany(ctx, claims)
	}
	if err != nil {
		refused := make([]prepared, len(idx))
		for k, i := range idx {
			refused[k] = prs[i]
		}
		errs := e.refusedUnsent(ctx, refused, err)
		for k, i := range idx {
			out[i] = BatchResult{prs[i].res, errs[k]}
		}
		return out
	}
	var again []int // claims Redis refused with their tasks: nothing written
	for k := range claims {
		if errors.Is(errs[k], ledger.ErrTaskNotInClaim) {
			claims[k].Task = nil
			again = append(again, k)
		}
	}
	if len(again) > 0 {
		retry := make([]ledger.ClaimArgs, len(again))
		for j, k := range again {
			retry[j] = claims[k]
		}
		res2, errs2, err := e.ledger.ClaimMany(ctx, retry)
		for j, k := range again {
			if err != nil {
				results[k], errs[k] = ledger.ClaimResult{}, err
			} else {
				results[k], errs[k] = res2[j], errs2[j]
			}
		}
	}
	sem := make(chan struct{}, batchWorkers)
	var wg sync.WaitGroup
	for k, i := range idx {
		if errors.Is(errs[k], ledger.ErrMarkAhead) {
			// Nothing was written: claimed again with a mark read
			// again.
			res, err := e.claimPrepared(ctx, prs[i])
			out[i] = BatchResult{res, err}
			continue
		}
		queued := claims[k].Task != nil
		if queued && (errs[k] != nil || results[k].Created || results[k].State != StateQueued) {
			// Nothing left to send to asynq: answer here.
			res, err := e.afterClaim(ctx, prs[i], results[k], errs[k], queued)
			out[i] = BatchResult{res, err}
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			res, err := e.afterClaim(ctx, prs[i], results[k], errs[k], queued)
			out[i] = BatchResult{res, err}
		}()
	}
	wg.Wait()
	return out
}

// repeatOf answers an order given a second time in one batch (pr), from
// its first occurrence (first) and that one's answer.
func repeatOf(pr, first prepared, got BatchResult) BatchResult {
	res := pr.res
	switch {
	case got.Err != nil:
		return BatchResult{res, got.Err}
	case got.Status != Enqueued && got.Status != Duplicate:
		res.Status, res.State, res.Reason = got.Status, got.State, got.Reason
	case pr.hash != first.hash:
		res.Status, res.State = Conflict, got.State
		res.Reason = "order_no already used by an order with different params"
	default:
		res.Status, res.State = Duplicate, got.State
	}
	return BatchResult{res, nil}
}

// prepared is an order validated, hashed and sealed, ready to claim; done
// means its result is final without a claim (invalid).
type prepared struct {
	p    Payload
	hash string
	res  EnqueueResult
	done bool
	// clear and parsed are the params in clear, for hashing them as a
	// record made by another producer was hashed (sameParams).
	clear  json.RawMessage
	parsed providers.Params
	// batch says the order is one of a batch (EnqueueBatch): a claim the
	// replicas did not acknowledge is neither taken back nor confirmed on
	// its own (see afterClaim), so that a batch never waits for them order
	// by order.
	batch bool
}

func (pr prepared) ref() ledger.Ref {
	return ledger.Ref{Provider: pr.p.Provider, OrderNo: pr.p.OrderNo}
}

// echoProvider is a provider name as an answer echoes it: as given when it
// is a plain name (ASCII letters, digits, '_', '.', '-', up to 40; phone
// numbers masked), else withheld: an unknown "provider" of other letters
// or spaces may be a person's name put in the wrong field, and a long one
// would only be echoed back whole.
func echoProvider(s string) string {
	if s != "" && !providers.PlainName(s) {
		return "(withheld: not a provider name)"
	}
	return providers.MaskPhones(s)
}

// echoOrderNo is the order number of an order refused as an answer echoes
// it: phone numbers masked, and cut to MaxOrderNoLen characters (one
// longer is refused for that).
func echoOrderNo(s string) string {
	s = providers.MaskPhones(s)
	if r := []rune(s); len(r) > MaxOrderNoLen {
		return string(r[:MaxOrderNoLen]) + "…"
	}
	return s
}

// prepare validates p, hashes its normalized params and seals them.
func (e *Enqueuer) prepare(ctx context.Context, p Payload) (pr prepared, err error) {
	// A provider name is never personal data: one that looks like a phone
	// number is unknown, and answered masked.
	pr = prepared{p: p, res: EnqueueResult{Provider: echoProvider(p.Provider), OrderNo: p.OrderNo}}
	defer func() {
		if pr.res.Status == Invalid {
			// Refused, so not recorded: its number names nothing, and
			// phone numbers in it are masked whatever the reason.
			pr.res.OrderNo = echoOrderNo(p.OrderNo)
		}
	}()
	if err := p.check(); err != nil {
		pr.res.Status, pr.res.Reason, pr.done = Invalid, reasonOf(err), true
		return pr, nil
	}
	// A refusal of personal data is answered once the rest is judged, and
	// only for an order not recorded yet (see personalError).
	personal := checkOrderNoPersonal(p.OrderNo)
	if personal != nil {
		pr.res.OrderNo = providers.MaskPhones(p.OrderNo)
	}
	if err := checkOrderPath(p.OrderNo); err != nil {
		pr.res.Status, pr.res.Reason, pr.done = Invalid, reasonOf(err), true
		return pr, nil
	}
	if err := checkDuplicateKeys(p.Params); err != nil {
		pr.res.Status, pr.res.Reason, pr.done = Invalid, reasonOf(err), true
		return pr, nil
	}
	clear, parsed, err := openAndValidate(p, e.providers, e.sealer)
	var pe personalError
	switch {
	case errors.As(err, &pe):
		personal = cmp.Or(personal, err)
	case err != nil:
		pr.res.Status, pr.res.Reason, pr.done = Invalid, reasonOf(err), true
		return pr, nil
	}
	if e.sealer == nil && personal == nil {
		if field := phoneField(clear); field != "" {
			personal = invalid("%s holds what looks like a phone number, which is personal data: set ORDERWORKER_DATA_KEY so params are stored encrypted", field)
		}
	}
	pr.clear, pr.parsed = clear, parsed
	if pr.hash, err = e.sealer.hash(clear, parsed); err != nil {
		pr.res.Status, pr.res.Reason, pr.done = Invalid, "params: malformed JSON", true
		return pr, nil
	}
	if err := e.CheckDataKey(ctx); err != nil {
		return pr, err
	}
	if err := e.checkNotDev(ctx); err != nil {
		return pr, err
	}
	if personal != nil {
		return e.refusePersonal(ctx, pr, personal)
	}
	if e.sealer != nil {
		if pr.p.Params, err = e.sealer.Seal(clear); err != nil {
			return pr, err
		}
	} else if pr.p.Params, err = marshalParams(clear); err != nil {
		// The task carries params as json.Marshal writes them (compact,
		// HTML escaped); the record gets the same bytes, so a worker
		// tells a task of this order from another's without rehashing.
		pr.res.Status, pr.res.Reason, pr.done = Invalid, "params: malformed JSON", true
		return pr, nil
	}
	return pr, nil
}

// marshalParams is json.Marshal(json.RawMessage(clear)): clear compacted,
// with <, >, & and U+2028, U+2029 escaped, and refused unless it is one
// well-formed JSON value. Valid text holding none of those characters and
// no white space is already so, and is copied as it is. (Not every
// provider's validation reads the whole text: a disabled provider's reads
// none.)
func marshalParams(clear json.RawMessage) ([]byte, error) {
	for _, c := range clear {
		switch c {
		case ' ', '\t', '\n', '\r', '<', '>', '&', 0xE2: // 0xE2 begins U+2028 and U+2029
			return json.Marshal(clear)
		}
	}
	if !json.Valid(clear) {
		return json.Marshal(clear)
	}
	return bytes.Clone(clear), nil
}

// refusePersonal answers pr, which holds what may not be stored in clear
// (refusal): invalid, unless the order is recorded already (accepted
// before the rule, by an older version or from a producer's own task that
// ran): then as a claim would answer it, duplicate or conflict, since
// telling its producer to send it under another number would have it
// made twice.
func (e *Enqueuer) refusePersonal(ctx context.Context, pr prepared, refusal error) (prepared, error) {
	rec, err := e.ledger.Get(ctx, pr.ref())
	if err != nil {
		return pr, err
	}
	if rec == nil {
		// Not recorded: refused, unless Redis lost its data lately, with
		// the order's record perhaps (a resend of an order accepted before
		// the rule, which may exist at the provider): told to use another
		// number, its producer would have it made twice.
		found, err := e.ledger.LossFoundWithin(ctx, pr.ref(), order.DefaultLookFirstWindow)
		if err != nil {
			return pr, err
		}
		if !found.IsZero() {
			return pr, &LostRefusalError{Found: found, Reason: reasonOf(refusal)}
		}
		pr.res.Status, pr.res.Reason, pr.done = Invalid, reasonOf(refusal), true
		pr.res.OrderNo = providers.MaskPhones(pr.p.OrderNo)
		return pr, nil
	}
	// The task a duplicate of a queued order may queue carries the params
	// as the record holds them.
	pr.p.Params = rec.Params
	res, err := e.afterClaim(ctx, pr, ledger.ClaimResult{State: rec.State, ParamsHash: rec.ParamsHash}, nil, false)
	pr.res, pr.done = res, true
	return pr, err
}

// LostRefusalError is Enqueue's answer to an order refused for personal
// data that has no record while Redis lost its data lately: it may have
// been accepted before the rule, its record lost, and it cannot be
// recorded again. Nothing was written. Its producer must not send it
// under another number (it may exist at the provider): an operator looks
// it up. Sent again after the window that follows a loss (a day), it is
// refused as invalid.
type LostRefusalError struct {
	Found  time.Time // when the loss was found, on Redis's clock
	Reason string    // the refusal
}

func (e *LostRefusalError) Error() string {
	return fmt.Sprintf("order not accepted: %s; but Redis lost its data at %s, perhaps with this order's record (accepted before that rule): do not send it under another number, it may exist at the provider; an operator must look it up there", e.Reason, e.Found.UTC().Format(time.RFC3339))
}

// CheckDataKey checks that the ledger's params are sealed with the
// Enqueuer's data key, recording it when none is recorded yet; a mismatch,
// or a ledger whose workers run without a key (Want ""), is a
// *ledger.DataKeyMismatchError. Enqueue checks it before it writes,
// until it once succeeds (a Redis outage at the first order must not
// stick). An Enqueuer without a key is not checked: it stores params in
// clear, beside sealed ones if there are any, and refuses personal-data
// params and phone numbers, so what it stores in clear needs no key.
func (e *Enqueuer) CheckDataKey(ctx context.Context) error {
	if e.sealer == nil || e.keyOK.Load() {
		return nil
	}
	if err := e.ledger.CheckProducerKey(ctx, e.sealer.KeyID()); err != nil {
		return err
	}
	e.keyOK.Store(true)
	return nil
}

// CheckCompare reports, for an Enqueuer without a data key, whether a
// data key is recorded for the ledger (ErrNoKeyToCompare): its params may
// then be sealed, and the Enqueuer, which takes new orders in clear,
// cannot tell a resend of a sealed order from a conflict and answers such
// a resend with that error. An Enqueuer with a key answers nil
// (CheckDataKey checks it). One read each call.
func (e *Enqueuer) CheckCompare(ctx context.Context) error {
	if e.sealer != nil {
		return nil
	}
	id, err := e.ledger.SealedWith(ctx)
	if err != nil {
		return err
	}
	if id != "" {
		return ErrNoKeyToCompare
	}
	return nil
}

// checkNotDev refuses, unless the Enqueuer is EnqueuerOptions.Dev, a Redis
// that holds worker -dev's marker (ErrDevRedis). It asks before the first
// write and again before any write more than devmode.WatchInterval after
// the last answer that found none, as the running workers do: a producer
// writing into a Redis that worker -dev just emptied and marked stops
// within a second. A failed read is no answer, as for the enqueue CLI: it
// is asked again before the next write, and the write reports a Redis that
// does not answer. A Redis user that may not read the marker's key (an ACL
// without it: NOPERM) is taken as answered, and asked again a second later.
func (e *Enqueuer) checkNotDev(ctx context.Context) error {
	if e.dev {
		return nil
	}
	if at := e.devClear.Load(); at != 0 && time.Since(time.Unix(0, at)) < devmode.WatchInterval {
		return nil
	}
	marked, err := e.ledger.DevMarked(ctx)
	switch {
	case err != nil && !strings.HasPrefix(err.Error(), "NOPERM"):
		return nil
	case marked:
		return ErrDevRedis
	}
	e.devClear.Store(time.Now().UnixNano())
	return nil
}

// afterClaim finishes an order whose claim answered claim (or err);
// queued: the claim queued the task of an order it created.
func (e *Enqueuer) afterClaim(ctx context.Context, pr prepared, claim ledger.ClaimResult, err error, queued bool) (EnqueueResult, error) {
	res, p := pr.res, pr.p
	if err != nil && !errors.Is(err, ledger.ErrNotDurable) {
		return res, e.refusedUnsent(ctx, []prepared{pr}, err)[0]
	}
	if err != nil {
		// ErrNotDurable: on the master, not yet on its replicas: no
		// answer yet (a failover may lose it). A record this claim
		// created is taken back, with its task where the claim queued
		// it, unless a worker took the order or another claim found it
		// meanwhile. The answer "not accepted; send it again" is given
		// only once the replicas acknowledged the take-back: a failover
		// cannot bring back a claim its producer was told was not
		// accepted. A take-back they did not acknowledge is
		// ErrMaybeAccepted. What could not be taken back stands and
		// runs: it is confirmed (the replicas asked again), and answered
		// enqueued when they hold it; otherwise ErrMaybeAccepted. A batch
		// answers ErrMaybeAccepted at once, with neither take-back nor
		// confirmation, its records left to run (with their tasks: queued
		// here where the claim did not queue them): it would otherwise
		// wait for the replicas once per such order. A duplicate answer
		// the replicas did not acknowledge is ErrMaybeAccepted too: the
		// record it found stands.
		if claim.Created && pr.batch && !queued {
			// A record with no task would wait for the reconciler. One
			// queued here whose record a failover then loses is looked
			// up before anything is sent (ledger.ClaimLost), never
			// submitted blind.
			if _, qerr := e.enqueueTask(ctx, p, claim.Token, claim.At); qerr != nil {
				return res, fmt.Errorf("order %s: %w (%w; its task: %w)", pr.ref(), ErrMaybeAccepted, err, qerr)
			}
		}
		if !claim.Created || pr.batch {
			return res, fmt.Errorf("order %s: %w (%w)", pr.ref(), ErrMaybeAccepted, err)
		}
		switch e.undoNotDurable(pr, claim.Token, queued) {
		case takenBack:
			return res, fmt.Errorf("order %s: %w (%w)", pr.ref(), ErrNotAccepted, err)
		case takenOnMaster:
			return res, fmt.Errorf("order %s: %w (%w)", pr.ref(), ErrMaybeAccepted, err)
		}
		if !e.confirm(ctx, pr, claim.Token) {
			return res, fmt.Errorf("order %s: %w (%w)", pr.ref(), ErrMaybeAccepted, err)
		}
		// Confirmed: answered as a record the replicas held at once
		// (its task queued below where the claim did not queue it).
	}
	res.State = claim.State
	switch {
	case claim.Created && queued:
		res.Status = Enqueued
		return res, nil
	case claim.Created:
		if _, err := e.enqueueTask(ctx, p, claim.Token, claim.At); err != nil {
			e.undoClaim(pr.ref(), claim.Token)
			return res, err
		}
		res.Status = Enqueued
		return res, nil
	case claim.ParamsHash != pr.hash:
		same, err := e.sameParams(ctx, pr)
		if err != nil {
			return res, err
		}
		if !same {
			e.metrics.dedupe(p.Provider, "conflict")
			res.Status = Conflict
			res.Reason = "order_no already used by an order with different params"
			return res, nil
		}
	}
	e.metrics.dedupe(p.Provider, "duplicate")
	res.Status = Duplicate
	if claim.State == StateQueued {
		// Queued: its task may never have been enqueued (the producer
		// died between the writes). Enqueue it; the task id refuses a
		// second task while the first exists.
		queued, err := e.enqueueTask(ctx, p, "", time.Time{})
		if err != nil {
			return res, err
		}
		res.Repaired = queued
	}
	return res, nil
}

// refusedUnsent answers the orders prs whose claims met err: when err is
// a write refused before it was sent (a master short of the replicas
// durable writes need, a server that is a replica now), nothing was
// written, but an earlier send of an order may have got in (answered "may
// have been accepted" when the replicas did not acknowledge it, say, then
// sent again at once): such an order, found by its record or its task, is
// answered with an *UnconfirmedError, as is every order when that cannot
// be read; the others keep err (not accepted). Any other err is every
// order's as it is.
func (e *Enqueuer) refusedUnsent(ctx context.Context, prs []prepared, err error) []error {
	errs := make([]error, len(prs))
	for k := range errs {
		errs[k] = err
	}
	if errors.Is(err, ledger.ErrReplicaNow) {
		// This server follows another master now: what it holds says
		// nothing of what the master took.
		for k, pr := range prs {
			errs[k] = &UnconfirmedError{Ref: pr.ref(), Cause: err, ReadErr: errNotTheMaster}
		}
		return errs
	}
	if !errors.As(err, new(*ledger.TooFewReplicasError)) {
		return errs
	}
	qs := make([]ledger.StandQuery, len(prs))
	for k, pr := range prs {
		qs[k] = e.standQuery(pr.p)
	}
	stands, serr := e.ledger.Stand(ctx, qs)
	for k, pr := range prs {
		if serr != nil || stands[k] {
			errs[k] = &UnconfirmedError{Ref: pr.ref(), Cause: err, ReadErr: serr}
		}
	}
	return errs
}

// errNotTheMaster is why a replica's data does not answer for an order.
var errNotTheMaster = errors.New("this Redis server is a replica now, and what it holds need not be what the master took")

// standQuery asks Ledger.Stand about p: its record, and its task in its
// own queue and in the Enqueuer's (where a producer writes its own).
func (e *Enqueuer) standQuery(p Payload) ledger.StandQuery {
	ref := OrderRef{Provider: p.Provider, OrderNo: p.OrderNo}
	q := ledger.StandQuery{Ref: ref, TaskID: TaskID(p.Provider, p.OrderNo), Queues: []string{OrderQueue(e.queue, e.ledger, ref)}}
	if e.queue != q.Queues[0] {
		q.Queues = append(q.Queues, e.queue)
	}
	return q
}

// NoneIn reports whether Redis holds none of the orders given as payloads
// (their records, their tasks), read from the server the ledger's client
// reaches: a producer that stopped sending a batch at a master short of
// replicas says that the orders it did not send were not accepted only
// when it is true. A payload that cannot be decoded names no order. An
// error when Redis could not be read.
func (e *Enqueuer) NoneIn(ctx context.Context, payloads [][]byte) (bool, error) {
	var qs []ledger.StandQuery
	for _, data := range payloads {
		if p, err := decodeProduced(data); err == nil {
			qs = append(qs, e.standQuery(p))
		}
	}
	stands, err := e.ledger.Stand(ctx, qs)
	if err != nil {
		return false, err
	}
	return !slices.Contains(stands, true), nil
}

// UnconfirmedError is an enqueue's error for an order whose write was
// refused before it was sent (Cause: a master short of replicas, a server
// that is a replica now) while an earlier send of it is in Redis, its
// record or its task (or that could not be read: ReadErr): the order may
// have been accepted (errors.Is ErrMaybeAccepted), and cannot be confirmed
// on the replicas now. It is never a TooFewReplicasError: that one says
// the order was not accepted.
type UnconfirmedError struct {
	Ref     OrderRef
	Cause   error
	ReadErr error
}

func (e *UnconfirmedError) Error() string { return fmt.Sprintf("order %s: %s", e.Ref, e.Reason()) }

// Reason is the error without the order's name.
func (e *UnconfirmedError) Reason() string {
	return e.ReasonWith(func(err error) string { return err.Error() })
}

// ReasonWith is Reason with Cause and ReadErr as describe words them: an
// answer to a producer over HTTP names what failed in short, without the
// Redis addresses, URL and key names the errors carry for an operator.
func (e *UnconfirmedError) ReasonWith(describe func(error) string) string {
	if e.ReadErr != nil {
		return fmt.Sprintf("the order may have been accepted: this send was refused before it was written (%s), and whether an earlier send of it got in could not be read (%s); send it again with the same order number: it answers duplicate if it got in", describe(e.Cause), describe(e.ReadErr))
	}
	return fmt.Sprintf("the order may have been accepted: an earlier send of it is in Redis, and it cannot be confirmed on the replicas now (this send was refused before it was written: %s); send it again with the same order number: it answers duplicate once it can be confirmed", describe(e.Cause))
}

// Is makes an UnconfirmedError an ErrMaybeAccepted.
func (e *UnconfirmedError) Is(target error) bool { return target == ErrMaybeAccepted }

// ErrNotAccepted is an enqueue's error (with ledger.ErrNotDurable) for an
// order whose record the Redis master's replicas did not acknowledge in
// time, and that was taken back, with its task, the replicas acknowledging
// the take-back: the order was not accepted and will not run. Send it
// again with the same order number.
var ErrNotAccepted = errors.New("the order was not accepted: the Redis master's replicas did not acknowledge it in time, and it was taken back; send it again")

// ErrMaybeAccepted is an enqueue's error (with ledger.ErrNotDurable) for
// an order whose record the replicas did not acknowledge in time and that
// was not surely taken back: a worker took it, another send of it found
// it, the replicas did not acknowledge the take-back either (a failover
// could bring the order back), or it came in a batch (never taken back).
// It may run. Send it again with the same order number: it answers
// duplicate if it got in.
var ErrMaybeAccepted = errors.New("the order may have been accepted: the Redis master's replicas did not acknowledge it in time, and it was not surely taken back; send it again with the same order number: it answers duplicate if it got in")

// ErrNoKeyToCompare is an enqueue's error for an order already recorded
// with params sealed with a data key, sent again by a producer without the
// key: it cannot tell a duplicate from a conflict. Nothing was written.
var ErrNoKeyToCompare = errors.New("the order is recorded with params sealed with ORDERWORKER_DATA_KEY, which this producer does not have: it cannot tell a duplicate from a conflict; give it the producers' key")

// sameParams reports whether pr's params are those of the order's record,
// whose hash differs from pr's: it may have been hashed otherwise, by a
// producer with a data key (keyed, its params sealed) where this one has
// none, or the other way round. A record in clear is compared by its plain
// hash; a sealed one, where this producer has no key, cannot be compared:
// that is an error (neither duplicate nor conflict is known), as a key
// mismatch is.
func (e *Enqueuer) sameParams(ctx context.Context, pr prepared) (bool, error) {
	rec, err := e.ledger.Get(ctx, pr.ref())
	if err != nil {
		return false, err
	}
	if rec == nil {
		// Found by the claim, gone now (Redis lost it): neither a
		// conflict nor a duplicate is known.
		return false, fmt.Errorf("order %s: its record was gone when its params were to be compared; send it again", pr.ref())
	}
	if IsSealed(rec.Params) && e.sealer == nil {
		return false, fmt.Errorf("order %s: %w", pr.ref(), ErrNoKeyToCompare)
	}
	h, err := e.sealer.hashAsRecorded(rec, pr.clear, pr.parsed)
	return err == nil && h == rec.ParamsHash, nil
}

// enqueueTask queues the order's task and reports whether it was new: a
// task that already exists (task id conflict) counts as queued. at is the
// creation time of the record this very claim created (zero: none), which
// the task carries as its claim mark: no create leaves before the record
// is written, and that time is on the clock of the master that holds it,
// as the creates' own times are. A record found (a repair) may have been
// stamped on another clock (an earlier master's, or an older producer's):
// its task is marked with Redis's clock now.
func (e *Enqueuer) enqueueTask(ctx context.Context, p Payload, claimToken string, at time.Time) (bool, error) {
	if at.IsZero() {
		// Now is no later than any create: none leaves before the task
		// runs (a record found still queued has had none marked
		// either). On Redis's clock, as in claimArgs.
		var err error
		if at, err = e.ledger.NotAfterNow(ctx, OrderRef{Provider: p.Provider, OrderNo: p.OrderNo}); err != nil {
			return false, err
		}
	}
	task, err := newClaimedTask(p, at, claimToken)
	if err != nil {
		return false, err
	}
	if e.ledger.Shards() > 1 {
		// A task a producer wrote itself in the queue as named stands
		// for the order (see ledger.Task.AlsoQueue).
		if there, err := e.ledger.TaskExists(ctx, e.queue, TaskID(p.Provider, p.OrderNo)); err != nil || there {
			return false, err
		}
	}
	// The order's task id last: asynq applies these after the task's own.
	opts := append(e.taskOpts[:len(e.taskOpts):len(e.taskOpts)], asynq.TaskID(TaskID(p.Provider, p.OrderNo)))
	if e.ledger.Shards() > 1 {
		opts = append(opts, asynq.Queue(OrderQueue(e.queue, e.ledger, OrderRef{Provider: p.Provider, OrderNo: p.OrderNo})))
	}
	_, err = e.client.EnqueueContext(ctx, task, opts...)
	switch {
	case errors.Is(err, asynq.ErrTaskIDConflict):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("enqueue order task: %w", err)
	}
	return true, nil
}

// confirm asks the replicas again to acknowledge the order's record created
// by the claim with token (ledger.ConfirmClaim), and reports whether they
// did and the record is still that claim's.
func (e *Enqueuer) confirm(ctx context.Context, pr prepared, token string) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	mine, err := e.ledger.ConfirmClaim(ctx, pr.ref(), token)
	return mine && err == nil
}

// takeBack is what undoNotDurable did.
type takeBack int

const (
	notTaken      takeBack = iota // the claim stands (or Redis did not answer)
	takenBack                     // removed, and the replicas acknowledged it
	takenOnMaster                 // removed on the master; a failover could bring it back
)

// undoNotDurable takes back a claim (and the task it queued, if queued)
// that the replicas did not acknowledge, while nothing has happened to it,
// as a durable write.
func (e *Enqueuer) undoNotDurable(pr prepared, token string, queued bool) takeBack {
	// The take-back's own WAIT, with room to spare.
	ctx, cancel := context.WithTimeout(context.Background(), e.ledger.WaitTimeout()+3*time.Second)
	defer cancel()
	var taken bool
	var err error
	if !queued {
		// The claim did not queue the task, and none is queued yet for
		// it: a task already under the order's id (one whose record a
		// failover lost, a producer's own, or one an earlier send queued
		// whose answer was lost) runs the order whatever becomes of the
		// record, so the claim stands. Asked first: the record and the
		// task may be in different hash slots (Redis Cluster).
		// (Where the record and the task can be in one script, the
		// take-back checks again as it removes the record.)
		t := &ledger.Task{ID: TaskID(pr.p.Provider, pr.p.OrderNo),
			Queue: OrderQueue(e.queue, e.ledger, OrderRef{Provider: pr.p.Provider, OrderNo: pr.p.OrderNo}), AlsoQueue: e.queue}
		for _, q := range []string{t.Queue, t.AlsoQueue} {
			if there, err := e.ledger.TaskExists(ctx, q, t.ID); err != nil || there {
				return notTaken
			}
		}
		taken, err = e.ledger.UnclaimTaken(ctx, pr.ref(), token, t)
	} else {
		taken, err = e.ledger.UnclaimQueued(ctx, pr.ref(), token, &ledger.Task{
			ID: TaskID(pr.p.Provider, pr.p.OrderNo), Queue: OrderQueue(e.queue, e.ledger, OrderRef{Provider: pr.p.Provider, OrderNo: pr.p.OrderNo}),
			AlsoQueue: e.queue, // a producer's own task there runs the order
		})
	}
	switch {
	case taken && err == nil:
		return takenBack
	case taken:
		return takenOnMaster
	}
	return notTaken
}

// undoClaim removes a claim whose task could not be queued, so a failed
// enqueue leaves nothing half-written. If Redis is gone too, the claim
// stays, and the next enqueue of the order (or the reconciler) repairs it.
func (e *Enqueuer) undoClaim(ref ledger.Ref, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = e.ledger.Unclaim(ctx, ref, token)
}
