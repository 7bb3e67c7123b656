package ops_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers/registry"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/ops"
	"github.com/orderworker/orderworker/tasks/taskstest"
)

type setup struct {
	t      *testing.T
	ledger *ledger.Ledger
	enq    *tasks.Enqueuer
	sealer *tasks.Sealer
	insp   *asynq.Inspector
	client *asynq.Client

	mu       sync.Mutex
	observed []string
}

func newSetup(t *testing.T) *setup {
	t.Helper()
	rs := taskstest.StartRedis(t, nil)
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	sealer, err := tasks.NewSealer(base64.StdEncoding.EncodeToString(key))
	if err != nil {
		t.Fatal(err)
	}
	opt := asynq.RedisClientOpt{Addr: rs.Addr}
	s := &setup{t: t, ledger: ledger.New(rs.Client(t), nil), sealer: sealer, insp: asynq.NewInspector(opt), client: asynq.NewClient(opt)}
	t.Cleanup(func() { s.insp.Close(); s.client.Close() })
	s.enq = tasks.NewEnqueuer(s.client, s.ledger, registry.Validators("test"), &tasks.EnqueuerOptions{Sealer: sealer})
	return s
}

// orders are the operator actions on s. Their decisions are not held back
// for the listing lag (the tests decide about orders just made; the lag
// has tests of its own).
func (s *setup) orders(sealer *tasks.Sealer) *ops.Orders {
	return ops.New(s.ledger, s.insp, s.client, registry.Validators("test"), &ops.Options{Sealer: sealer, ListingLag: -1,
		Observe: func(action, result string) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.observed = append(s.observed, action+":"+result)
		}})
}

func (s *setup) order(provider, no, params string, tr *ledger.Transition) ledger.Ref {
	s.t.Helper()
	res, err := s.enq.Enqueue(context.Background(), []byte(fmt.Sprintf(`{"provider":%q,"order_no":%q,"params":%s}`, provider, no, params)))
	if err != nil || res.Status != tasks.Enqueued {
		s.t.Fatalf("enqueue %s: %+v, %v", no, res, err)
	}
	ref := ledger.Ref{Provider: provider, OrderNo: no}
	if tr != nil {
		if _, err := s.ledger.Begin(context.Background(), ref, ledger.BeginArgs{Token: "t-" + no}); err != nil {
			s.t.Fatal(err)
		}
		if err := s.ledger.Settle(context.Background(), ref, "t-"+no, *tr); err != nil {
			s.t.Fatal(err)
		}
	}
	return ref
}

func ptr(t ledger.Transition) *ledger.Transition { return &t }

const aliyunParams = `{"iotId":"dev-1","commodityCode":"streamingResource_20_10","copies":1,"userName":"15812348558"}`

// Show opens sealed params with the data key and masks them; without the
// key they stay sealed; phone numbers in the reason and the history are
// masked.
func TestShowMasks(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	ref := s.order("aliyun", "S1", aliyunParams, ptr(ledger.SetUnknown("no answer for 13912345678").WithMayExist(true).
		WithAttempt(&ledger.Attempt{N: 1, At: time.Now(), Call: "submit", Result: "ambiguous", Message: "user 13912345678"})))
	rec, err := s.orders(s.sealer).Get(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(rec.Params); !strings.Contains(got, `"userName":"158****8558"`) {
		t.Errorf("params with the key = %s, want the userName masked", got)
	}
	if rec.Reason != "no answer for 139****5678" || rec.History[0].Message != "user 139****5678" {
		t.Errorf("reason %q, message %q: want the phone numbers masked", rec.Reason, rec.History[0].Message)
	}
	rec, err = s.orders(nil).Get(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if !tasks.IsSealed(rec.Params) {
		t.Errorf("params without the key = %s, want them sealed", rec.Params)
	}
	// Tencent's CustomerId (the vendor's user id, perhaps a login name)
	// is shown masked too, though not refused without a key.
	tref := s.order("tencent", "S2", `{"CustomerId":"zhang_san_feng","ItemId":"D-1","ItemNum":1}`, nil)
	for _, o := range []*ops.Orders{s.orders(s.sealer), s.orders(nil)} {
		if _, err := o.Get(context.Background(), tref); err != nil {
			t.Fatal(err)
		}
	}
	rec, err = s.orders(s.sealer).Get(context.Background(), tref)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(rec.Params); strings.Contains(got, "zhang") || !strings.Contains(got, `"CustomerId":"z****g"`) || !strings.Contains(got, `"ItemId":"D-1"`) {
		t.Errorf("tencent params = %s, want the CustomerId masked and the rest kept", got)
	}
	if _, err := s.orders(nil).Get(context.Background(), ledger.Ref{Provider: "aliyun", OrderNo: "nope"}); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Get of a missing order: %v, want ErrNotFound", err)
	}
}

// Every resolve and re-drive attempted is observed once, with its result;
// a dry run is not; refusals change nothing.
func TestActionsAreObserved(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	o := s.orders(s.sealer)
	ctx := context.Background()
	tencent := `{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`
	u := s.order("aliyun", "U1", aliyunParams, ptr(ledger.SetUnknown("timeout").WithMayExist(true)))
	q := s.order("tencent", "Q1", tencent, nil)
	e := s.order("tencent", "E1", tencent, ptr(ledger.SetErrored("invalid ItemId").WithMayExist(false)))

	var refused *ledger.RefusedError
	if _, err := o.Resolve(ctx, q, ops.ResolveArgs{As: ledger.ResolveAbsent, Note: "n", By: "ann"}); !errors.As(err, &refused) {
		t.Errorf("resolve absent of a queued order: %v, want refused", err)
	}
	var usage *ops.UsageError
	if _, err := o.Resolve(ctx, u, ops.ResolveArgs{As: "maybe", Note: "n", By: "ann"}); !errors.As(err, &usage) {
		t.Errorf("an unknown decision: %v, want a usage error (bad input, answered 400)", err)
	}
	if _, err := o.Resolve(ctx, u, ops.ResolveArgs{As: ledger.ResolveErrored, Note: strings.Repeat("x", ops.MaxNote+1), By: "ann"}); !errors.As(err, &usage) {
		t.Errorf("a note too long: %v, want a usage error", err)
	}
	res, err := o.Resolve(ctx, u, ops.ResolveArgs{As: ledger.ResolveErrored, Note: "cancelled, customer 13912345678", By: "ann"})
	if err != nil || res.State != ledger.StateErrored || !strings.Contains(res.Reason, "139****5678") {
		t.Fatalf("resolve errored: %+v, %v", res, err)
	}
	r, err := o.RedriveOne(ctx, q, "ann", "")
	if err != nil || r.Status != ops.StatusRefused || !strings.Contains(r.Why, "not errored") {
		t.Errorf("re-drive of a queued order: %+v, %v; want refused", r, err)
	}
	var seen []string
	if err := o.Redrive(ctx, ops.RedriveArgs{DryRun: true}, func(r ops.Redriven) error { seen = append(seen, r.OrderNo+":"+r.Status); return nil }); err != nil {
		t.Fatal(err)
	}
	// U1 was errored by the operator after a create that may have reached
	// the provider: never re-driven. (Both entered errored within the same
	// few milliseconds, so the listing order is not the point here.)
	slices.Sort(seen)
	if fmt.Sprint(seen) != "[E1:would_redrive U1:skipped]" {
		t.Errorf("dry run saw %v", seen)
	}
	if err := o.Redrive(ctx, ops.RedriveArgs{}, func(ops.Redriven) error { return nil }); !errors.As(err, &usage) {
		t.Errorf("a re-drive without a name: %v, want a usage error", err)
	}
	if r, err := o.RedriveOne(ctx, e, "ann", "fixed"); err != nil || r.Status != ops.StatusRedriven || r.State != ledger.StateSubmitting {
		t.Errorf("re-drive of E1: %+v, %v", r, err)
	}
	want := "[resolve_absent:refused resolve_errored:ok redrive:refused redrive:ok]"
	s.mu.Lock()
	defer s.mu.Unlock()
	if fmt.Sprint(s.observed) != want {
		t.Errorf("observed %v, want %s", s.observed, want)
	}
}

// A provider order id an operator names is checked before anything is
// written: one a provider gives no order, a placeholder, one that is no
// id of the provider's form, and one that another order owns but for
// leading zeros (the same order, most likely) are refused; a note and a
// name are required.
func TestResolvePaidChecksTheID(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	o := s.orders(s.sealer)
	ctx := context.Background()
	const unicloud = `{"azoneId":"cn-tianjin-yfb1","componentCode":"nas.onestor","dataEncryption":0,"instanceName":"demo-nas","orderCategory":"NEW","payType":"DAY_MONTH_USAGE","projectId":"rg-k0n2gf8ew1pd","regionId":"cn-tianjin-yfb","renewType":"manualrenew","rentCount":1,"rentUnit":"month","specificationCode":"nas.capacity.nfs","unit":"GB","vpc":"vpc-g2gmswxtthml"}`
	unknown := ptr(ledger.SetUnknown("timeout").WithMayExist(true))
	s.order("unicloud", "U-OK", unicloud, ptr(ledger.SetPaid("900000000000000002")))
	u := s.order("unicloud", "U-AMB", unicloud, unknown)
	s.order("aliyun", "A-OK", aliyunParams, ptr(ledger.SetPaid("20261202000003")))
	s.order("aliyun", "A-OK0", aliyunParams, ptr(ledger.SetPaid("0123456")))
	a := s.order("aliyun", "A-AMB", aliyunParams, unknown)
	tc := s.order("tencent", "T-AMB", `{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`, unknown)

	var usage *ops.UsageError
	var refused *ledger.RefusedError
	for _, tt := range []struct {
		ref    ledger.Ref
		args   ops.ResolveArgs
		usage  bool // else refused
		reason string
	}{
		{u, ops.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "0900000000000000002"}, true, "without leading zeros"},
		{u, ops.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "99999999999999999999"}, true, "64-bit"},
		{u, ops.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "nas-123"}, true, "positive number"},
		{u, ops.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "000"}, true, "names no order"},
		{u, ops.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "-5"}, true, "names no order"},
		{u, ops.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "900000000000000002"}, false, "U-OK"},
		{a, ops.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "020261202000003"}, false, "which order A-OK owns"},
		{a, ops.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "0020261202000003"}, false, "which order A-OK owns"},
		{a, ops.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "123456"}, false, "which order A-OK0 owns"},
		{a, ops.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "null"}, true, "names no order"},
		{a, ops.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "2026 1202"}, true, "without spaces"},
		{a, ops.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "２０２６１２０２０００００３"}, true, "printable ASCII"},
		{a, ops.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: `"20261202000003"`}, true, "quotes"},
		{a, ops.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: strings.Repeat("7", 129)}, true, "128 bytes"},
		{a, ops.ResolveArgs{As: ledger.ResolveErrored, ProviderOrderID: "20261202000004"}, true, "paid only"},
		{tc, ops.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "SOMEID-1"}, true, "no id of its own"},
		{a, ops.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "20261202000004", By: " "}, true, "a note and a name"},
	} {
		if tt.args.Note == "" {
			tt.args.Note = "seen in the console"
		}
		if tt.args.By == "" {
			tt.args.By = "ann"
		}
		_, err := o.Resolve(ctx, tt.ref, tt.args)
		if tt.usage && !errors.As(err, &usage) || !tt.usage && !errors.As(err, &refused) || !strings.Contains(fmt.Sprint(err), tt.reason) {
			t.Errorf("resolve %s %+v: %v; want a %s error saying %q", tt.ref.OrderNo, tt.args, err, map[bool]string{true: "usage", false: "refusal"}[tt.usage], tt.reason)
		}
	}
	for _, ref := range []ledger.Ref{u, a, tc} {
		if rec, err := s.ledger.Get(ctx, ref); err != nil || rec.State != ledger.StateUnknown || rec.ProviderOrderID != "" {
			t.Errorf("%s after refused decisions: %+v, %v; want unknown, no id", ref.OrderNo, rec, err)
		}
	}
	// The right ids pass.
	for ref, id := range map[ledger.Ref]string{u: "900000000000000003", a: "020261202000004", tc: ""} {
		if res, err := o.Resolve(ctx, ref, ops.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: id, Note: "found", By: "ann"}); err != nil || res.State != ledger.StatePaid || res.ProviderOrderID != id {
			t.Errorf("resolve %s paid %q: %+v, %v", ref.OrderNo, id, res, err)
		}
	}
}

// A ref naming a provider that does not exist finds no order, and no
// action reaches the record whose key reads alike ("tencent:E2" and "X"
// against "tencent" and "E2:X": the ledger joins them with a colon).
func TestNoOrderOfAnUnknownProvider(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	o := s.orders(s.sealer)
	ctx := context.Background()
	s.order("tencent", "E2:X", `{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`, ptr(ledger.SetErrored("invalid ItemId").WithMayExist(false)))
	alike := ledger.Ref{Provider: "tencent:E2", OrderNo: "X"}
	if rec, err := o.Get(ctx, alike); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Get %v = %+v, %v; want not found", alike, rec, err)
	}
	if _, err := o.RedriveOne(ctx, alike, "Operator", "retry"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("RedriveOne %v = %v; want not found", alike, err)
	}
	if _, err := o.Resolve(ctx, alike, ops.ResolveArgs{As: ledger.ResolveAbsent, Note: "checked", By: "Operator"}); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Resolve %v = %v; want not found", alike, err)
	}
	if rec, _ := s.ledger.Get(ctx, ledger.Ref{Provider: "tencent", OrderNo: "E2:X"}); rec == nil || rec.State != ledger.StateErrored || len(rec.History) != 0 {
		t.Errorf("tencent/E2:X = %+v; want it untouched, errored", rec)
	}
}

// An operator's note and name are stored without the process's secrets:
// a key pasted into a note would otherwise stay in Redis and go out with
// the order's event. (Found by a black-box run.)
func TestResolveNoteWithoutSecrets(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	const secret = "Sup3rSecretAppSecret0123456789"
	o := ops.New(s.ledger, s.insp, s.client, registry.Validators("test"), &ops.Options{Sealer: s.sealer, Secrets: []string{secret}, ListingLag: -1})
	ref := s.order("tencent", "T-NOTE", `{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`, ptr(ledger.SetUnknown("timeout").WithMayExist(true)))
	ctx := context.Background()
	if _, err := o.Resolve(ctx, ref, ops.ResolveArgs{As: ledger.ResolveErrored, By: "ann " + secret, Note: "checked with key " + secret + " and phone 13912345678"}); err != nil {
		t.Fatal(err)
	}
	raw, err := s.ledger.Get(ctx, ref)
	if err != nil || raw == nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(raw)
	if strings.Contains(string(b), secret) || strings.Contains(string(b), "13912345678") || !strings.Contains(string(b), "checked with key") {
		t.Errorf("the record after the resolve: %s; want the note kept without the secret or the phone number", b)
	}
}

// A note naming the order's own customer (its personal-data params, read
// with the data key) is stored without the name: the note becomes the
// order's reason and goes out in its event. So is a re-drive's.
func TestNoteWithoutTheOrdersPersonalData(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	ctx := context.Background()
	a := s.order("aliyun", "N-A", `{"iotId":"dev-1","commodityCode":"streamingResource_20_10","copies":1,"userName":"张三丰","userId":"zhangwei_1990"}`,
		ptr(ledger.SetUnknown("timeout").WithMayExist(true)))
	tc := s.order("tencent", "N-T", `{"CustomerId":"zhang_san_feng","ItemId":"D-1","ItemNum":1}`, ptr(ledger.SetErrored("bad item")))
	o := s.orders(s.sealer)
	if _, err := o.Resolve(ctx, a, ops.ResolveArgs{As: ledger.ResolveErrored, By: "ann", Note: "called 张三丰 (ZHANGWEI_1990): cancel"}); err != nil {
		t.Fatal(err)
	}
	if r, err := o.RedriveOne(ctx, tc, "ann", "zhang_san_feng asked again"); err != nil || r.Status == "refused" {
		t.Fatalf("re-drive: %+v, %v", r, err)
	}
	for ref, kept := range map[ledger.Ref]string{a: "called *** (***): cancel", tc: "*** asked again"} {
		raw, err := s.ledger.Get(ctx, ref)
		if err != nil || raw == nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(raw)
		for _, clear := range []string{"张三丰", "zhangwei", "ZHANGWEI", "zhang_san_feng"} {
			if strings.Contains(string(b), clear) {
				t.Errorf("%s after the note: %s shows %s", ref, b, clear)
			}
		}
		if !strings.Contains(string(b), kept) {
			t.Errorf("%s after the note: %s; want %q", ref, b, kept)
		}
	}
	// Without the data key the params cannot be read: the note is kept
	// as written but for phone numbers and secrets (the README says so).
	b := s.order("aliyun", "N-B", `{"iotId":"dev-1","commodityCode":"streamingResource_20_10","copies":1,"userName":"李四"}`,
		ptr(ledger.SetUnknown("timeout").WithMayExist(true)))
	if res, err := s.orders(nil).Resolve(ctx, b, ops.ResolveArgs{As: ledger.ResolveErrored, By: "ann", Note: "checked 李四"}); err != nil || !strings.Contains(res.Reason, "checked 李四") {
		t.Fatalf("resolve without the data key: %+v, %v; want the note as written", res, err)
	}
}

// An order resolved absent is created at once: a live task of it that
// waits to run (a retry's backoff, or a pending order waiting for a person,
// checked up to an hour apart) is run now, not left to its time, which
// could fall past the order's deadline (and the operator's "create it"
// would end in errored).
func TestResolveAbsentRunsAWaitingTaskNow(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	// The create Begin marks just now would hold absent back a listing lag.
	o := ops.New(s.ledger, s.insp, s.client, registry.Validators("test"), &ops.Options{Sealer: s.sealer, ListingLag: -1})
	ref := s.order("tencent", "T-NOW", `{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`, ptr(ledger.SetUnknown("timeout").WithMayExist(true)))
	id := tasks.TaskID(ref.Provider, ref.OrderNo)
	if err := s.insp.DeleteTask(tasks.DefaultQueue, id); err != nil {
		t.Fatal(err)
	}
	task, err := tasks.NewOrderSubmitTask(tasks.Payload{Provider: ref.Provider, OrderNo: ref.OrderNo, Params: []byte(`{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.Enqueue(task, asynq.TaskID(id), asynq.Queue(tasks.DefaultQueue), asynq.ProcessIn(time.Hour)); err != nil {
		t.Fatal(err)
	}
	out, err := o.Resolve(context.Background(), ref, ops.ResolveArgs{As: ledger.ResolveAbsent, By: "ann", Note: "not in the console"})
	if err != nil || !out.Requeued {
		t.Fatalf("Resolve absent = %+v, %v; want its task run now", out, err)
	}
	if info, err := s.insp.GetTaskInfo(tasks.DefaultQueue, id); err != nil || info.State != asynq.TaskStatePending {
		t.Errorf("task after the resolve: %+v, %v; want pending (to run now), not scheduled an hour on", info, err)
	}
}

// Resolving absent waits out the provider's create overrun after the last
// create, on top of the listing lag (none here): a UniCloud server may go
// on making an order for a minute after the request ended. Configured to
// none (UNICLOUD_CREATE_OVERRUN=0s, as the enqueue CLI reads it), absent is
// taken at once.
func TestResolveAbsentWaitsForTheCreateOverrun(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	const params = `{"azoneId":"cn-tianjin-yfb1","componentCode":"nas.onestor","dataEncryption":0,"instanceName":"overrun-nas","orderCategory":"NEW","payType":"DAY_MONTH_USAGE","projectId":"rg-k0n2gf8ew1pd","regionId":"cn-tianjin-yfb","renewType":"manualrenew","rentCount":1,"rentUnit":"month","specificationCode":"nas.capacity.nfs","unit":"GB","vpc":"vpc-g2gmswxtthml"}`
	ref := s.order("unicloud", "U-OVR", params, ptr(ledger.SetUnknown("timeout").WithMayExist(true)))
	set := registry.Validators("test")
	o := ops.New(s.ledger, s.insp, s.client, set, &ops.Options{Sealer: s.sealer, ListingLag: -1})
	_, err := o.Resolve(context.Background(), ref, ops.ResolveArgs{As: ledger.ResolveAbsent, By: "ann", Note: "not in the console"})
	var refused *ledger.RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "listing lag (1m0s)") {
		t.Fatalf("resolve absent just after the create: %v; want refused within the 1m0s overrun", err)
	}
	env := map[string]string{"UNICLOUD_CREATE_OVERRUN": "0s"}
	for _, sp := range registry.All() {
		if err := set.ConfigureOverrun(sp, func(k string) string { return env[k] }); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := o.Resolve(context.Background(), ref, ops.ResolveArgs{As: ledger.ResolveAbsent, By: "ann", Note: "not in the console"}); err != nil {
		t.Fatalf("resolve absent with no overrun configured: %v", err)
	}
}

// A decision or re-drive recorded on the Redis master that its replicas
// did not acknowledge in time (a replica stopped) is reported done with
// that said (Unacknowledged), not as plainly done.
func TestUnacknowledgedActionSaysSo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := taskstest.StartRedis(t, nil)
	r := m.AttachReplica(t)
	opt := asynq.RedisClientOpt{Addr: m.Addr}
	s := &setup{t: t, ledger: ledger.New(m.Client(t), &ledger.Options{WaitTimeout: 200 * time.Millisecond}),
		insp: asynq.NewInspector(opt), client: asynq.NewClient(opt)}
	t.Cleanup(func() { s.insp.Close(); s.client.Close() })
	s.enq = tasks.NewEnqueuer(s.client, s.ledger, registry.Validators("test"), nil)
	params := `{"CustomerId":"c_1","ItemId":"D-1","ItemNum":1}`
	rd := s.order("tencent", "RD", params, ptr(ledger.SetErrored("rejected")))
	rs := s.order("tencent", "RS", params, ptr(ledger.SetUnknown("no answer").WithMayExist(true)))
	o := s.orders(nil)
	r.Pause(t)
	defer r.Resume()
	red, err := o.RedriveOne(ctx, rd, "ann", "")
	if err != nil || red.Status != ops.StatusRedriven || red.Unacknowledged == "" {
		t.Errorf("re-drive no replica acknowledged: %+v, %v; want redriven, unacknowledged said", red, err)
	}
	res, err := o.Resolve(ctx, rs, ops.ResolveArgs{As: ledger.ResolveErrored, Note: "n", By: "ann"})
	if err != nil || res.Record == nil || res.State != ledger.StateErrored || res.Unacknowledged == "" {
		t.Errorf("decision no replica acknowledged: %+v, %v; want errored, unacknowledged said", res, err)
	}
}

// An operator's paid of an Aliyun order is judged by device: the id another
// device's order owns is accepted, one an order of the same device owns is
// refused, an owner entry an earlier version wrote by the id alone
// included (it is moved under its order's device first; before, both were
// accepted, and the same device's order had two records: a review).
func TestResolvePaidJudgesTheIDOnItsDevice(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	ctx := context.Background()
	dev := func(d string) string { return strings.Replace(aliyunParams, `"dev-1"`, `"`+d+`"`, 1) }
	// Paid under 9 by a version that owned ids by the id alone.
	s.order("aliyun", "Old", dev("dev-1"), ptr(ledger.SetPaid("9")))
	if owner, _ := s.ledger.Owner(ctx, "aliyun", "9"); owner != "Old" {
		t.Fatalf("owner of 9 by the id alone = %q, want Old", owner)
	}
	same := s.order("aliyun", "Same", dev("dev-1"), ptr(ledger.SetUnknown("no answer").WithMayExist(true)))
	other := s.order("aliyun", "Other", dev("dev-2"), ptr(ledger.SetUnknown("no answer").WithMayExist(true)))
	o := s.orders(s.sealer)
	var refused *ledger.RefusedError
	if _, err := o.Resolve(ctx, same, ops.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "9", Note: "console", By: "ann"}); !errors.As(err, &refused) {
		t.Errorf("paid under 9 on Old's device: %v, want refused", err)
	}
	if _, err := o.Resolve(ctx, other, ops.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "9", Note: "console", By: "ann"}); err != nil {
		t.Errorf("paid under 9 on another device: %v, want it recorded", err)
	}
	for d, want := range map[string]string{"dev-1": "Old", "dev-2": "Other"} {
		if owner, _ := s.ledger.OwnerIn(ctx, "aliyun", d, "9"); owner != want {
			t.Errorf("owner of 9 on %s = %q, want %q", d, owner, want)
		}
	}
	// Without the data key the device cannot be read: refused, not judged
	// by the id alone (a review).
	third := s.order("aliyun", "Third", dev("dev-3"), ptr(ledger.SetUnknown("no answer").WithMayExist(true)))
	if _, err := s.orders(nil).Resolve(ctx, third, ops.ResolveArgs{As: ledger.ResolvePaid, ProviderOrderID: "10", Note: "console", By: "ann"}); !errors.As(err, &refused) || !strings.Contains(err.Error(), "device cannot be read") {
		t.Errorf("paid without the data key: %v, want refused for want of the device", err)
	}
}
