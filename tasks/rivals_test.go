package tasks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/aliyun"
	aliyunsandbox "github.com/orderworker/orderworker/providers/aliyun/sandbox"
	"github.com/orderworker/orderworker/providers/fault"
	"github.com/orderworker/orderworker/providers/unicloud"
	unicloudsandbox "github.com/orderworker/orderworker/providers/unicloud/sandbox"
	"github.com/orderworker/orderworker/tasks"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// rivalsEnv is an env with an Aliyun sandbox, and tasks for orders of one
// device and commodity.
type rivalsEnv struct {
	*env
	t      *testing.T
	tasks  map[string]*asynq.Task
	device string
}

func newRivalsEnv(t *testing.T, device string) *rivalsEnv {
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{MaxAttempts: 8,
		Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}}})
	return &rivalsEnv{env: e, t: t, tasks: map[string]*asynq.Task{}, device: device}
}

// order enqueues an order of the device with the given copies; its task
// carries the claim mark, as the Enqueuer queues it.
func (r *rivalsEnv) order(no string, copies int) {
	r.t.Helper()
	r.tasks[no] = enqueueTask(r.t, r.env, []byte(fmt.Sprintf(`{"provider":"aliyun","order_no":%q,"params":{"iotId":%q,"commodityCode":"streamingResource_20_10","copies":%d}}`, no, r.device, copies)))
}

// enqueueTask enqueues payload and returns its order's task as the
// Enqueuer queues it: the params as recorded, the claim mark.
func enqueueTask(t *testing.T, e *env, payload []byte) *asynq.Task {
	t.Helper()
	res := e.enqueue(t, payload)
	rec, err := e.ledger.Get(context.Background(), ledger.Ref{Provider: res.Provider, OrderNo: res.OrderNo})
	if err != nil || rec == nil {
		t.Fatalf("order %s/%s not recorded: %v", res.Provider, res.OrderNo, err)
	}
	p, _ := json.Marshal(tasks.Payload{Provider: rec.Provider, OrderNo: rec.OrderNo, Params: json.RawMessage(rec.Params)})
	return asynq.NewTaskWithHeaders(tasks.TypeOrderSubmit, p,
		map[string]string{"orderworker-claimed": fmt.Sprintf("%d:%s", rec.CreatedAt.UnixMilli(), rec.Claim)})
}

// unicloudOrder is the payload of a UniCloud order named no for an
// instance named name.
// addUnicloud serves sb and adds a UniCloud client of its credentials
// ("UKey", "usecret") to e's providers.
func addUnicloud(t *testing.T, e *env, sb *unicloudsandbox.Server) {
	t.Helper()
	addUnicloudWith(t, e, sb, unicloud.Options{})
}

// addUnicloudWith serves sb and adds a UniCloud client for it, with o's
// options beside its endpoint and the sandbox's keys (no create overrun),
// to e's providers.
func addUnicloudWith(t *testing.T, e *env, sb *unicloudsandbox.Server, o unicloud.Options) *unicloud.Client {
	t.Helper()
	hs := httptest.NewServer(sb)
	t.Cleanup(hs.Close)
	o.Endpoint, o.AccessKeyID, o.AccessKeySecret, o.CreateOverrun = hs.URL, "UKey", providers.Secret("usecret"), -1
	c, err := unicloud.New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.set.Add(c)
	return c
}

func unicloudOrder(no, name string) []byte {
	return []byte(fmt.Sprintf(`{"provider":"unicloud","order_no":%q,"params":{"azoneId":"cn-tianjin-yfb1","componentCode":"nas.onestor","dataEncryption":0,"instanceName":%q,"orderCategory":"NEW","payType":"DAY_MONTH_USAGE","projectId":"rg-k0n2gf8ew1pd","regionId":"cn-tianjin-yfb","renewType":"manualrenew","rentCount":1,"rentUnit":"month","specificationCode":"nas.capacity.nfs","unit":"GB","vpc":"vpc-g2gmswxtthml"}}`, no, name))
}

func (r *rivalsEnv) get(no string) *tasks.Record {
	rec, _ := r.ledger.Get(context.Background(), ledger.Ref{Provider: "aliyun", OrderNo: no})
	return rec
}

func (r *rivalsEnv) run(nos ...string) {
	for _, no := range nos {
		_ = r.handler.ProcessTask(context.Background(), r.tasks[no])
	}
}

// An order whose record was lost (a failover) and is recorded again as
// unknown by its task's next run counts as a rival before its first
// lookup, as one marked before its create does: otherwise another order's
// lookup could take its order, and it would be created again.
func TestLostRecordIsARivalAgain(t *testing.T) {
	t.Parallel()
	r := newRivalsEnv(t, "dev3")
	sb := addAliyun(t, r.env, nil)
	r.order("L-X", 1)
	r.order("L-Y", 1)
	sb.Faults().Script(fault.FailBefore) // X: nothing made, unknown
	r.run("L-X")
	sb.Faults().Script(fault.FailAfter) // Y: made, its answer lost
	r.run("L-Y")
	yOrder := sb.Orders()["dev3"][0].OrderID
	keys, _ := r.rdb.Keys(context.Background(), "*:L-Y").Result()
	r.rdb.Del(context.Background(), keys...) // Y's record lost
	for range 4 {
		r.run("L-Y", "L-X")
	}
	x, y := r.get("L-X"), r.get("L-Y")
	if x.ProviderOrderID == yOrder || sb.Count("dev3") != 1 {
		t.Errorf("X %s with %q, Y %s with %q, %d orders; want X never holding Y's order %s, nothing created again",
			x.State, x.ProviderOrderID, y.State, y.ProviderOrderID, sb.Count("dev3"), yOrder)
	}
}

// Orders of one device and commodity but other copies are no rivals: the
// listing tells their orders apart.
func TestOtherCopiesAreNoRivals(t *testing.T) {
	t.Parallel()
	r := newRivalsEnv(t, "dev4")
	sb := addAliyun(t, r.env, nil)
	r.order("C-X", 1)
	r.order("C-Y", 2)
	sb.Faults().Script(fault.FailAfter)
	r.run("C-X")
	sb.Faults().Script(fault.FailAfter)
	r.run("C-Y")
	for range 3 {
		r.run("C-X", "C-Y")
	}
	if x, y := r.get("C-X"), r.get("C-Y"); x.ProviderOrderID == "" || y.ProviderOrderID == "" || x.ProviderOrderID == y.ProviderOrderID || sb.Count("dev4") != 2 {
		t.Errorf("X %s with %q, Y %s with %q, %d orders; want each its own order", x.State, x.ProviderOrderID, y.State, y.ProviderOrderID, sb.Count("dev4"))
	}
}

// A rival whose creates all ended before an order's snapshot was read (a
// listing lag before: here none) holds that order up no more: the snapshot
// holds the rival's order, which the lookup therefore cannot take. X and Y
// both made an order and lost the answer; Z, enqueued later, made one too.
// Each ends with its own.
func TestRivalsBeforeTheSnapshotHoldNothingUp(t *testing.T) {
	t.Parallel()
	r := newRivalsEnv(t, "dev5")
	sb := addAliyun(t, r.env, nil)
	r.order("S-X", 1)
	r.order("S-Y", 1)
	// A create that ended in the millisecond a snapshot's read began
	// counts as a rival of that snapshot's order (the ledger's clock
	// cannot order the two): each create here ends a few before the next
	// snapshot is read.
	gap := func() { time.Sleep(3 * time.Millisecond) }
	sb.Faults().Script(fault.FailAfter)
	r.run("S-X")
	gap()
	sb.Faults().Script(fault.FailAfter)
	r.run("S-Y")
	gap()
	r.order("S-Z", 1)
	sb.Faults().Script(fault.FailAfter)
	r.run("S-Z")
	for range 3 {
		r.run("S-Z", "S-Y", "S-X")
	}
	orders := map[string]string{}
	for _, o := range sb.Orders()["dev5"] {
		orders[o.OrderID] = ""
	}
	for _, no := range []string{"S-X", "S-Y", "S-Z"} {
		rec := r.get(no)
		if _, ok := orders[rec.ProviderOrderID]; !ok || orders[rec.ProviderOrderID] != "" {
			t.Errorf("%s: %s with %q; want an order of its own of the device's %d", no, rec.State, rec.ProviderOrderID, len(orders))
			continue
		}
		orders[rec.ProviderOrderID] = no
	}
	if len(orders) != 3 {
		t.Errorf("%d orders on the device; want 3, one each", len(orders))
	}
}

// slowPrepare is the Aliyun client whose Prepare, once its listing is read,
// lets hook run before it returns (the time between the listing's read and
// the snapshot's settle: pages, a stall).
type slowPrepare struct {
	*aliyun.Client
	hook func()
}

func (s *slowPrepare) Prepare(ctx context.Context, o providers.Order) ([]string, error) {
	k, err := s.Client.Prepare(ctx, o)
	if h := s.hook; h != nil {
		s.hook = nil
		h()
	}
	return k, err
}

// Y's create ends (its answer lost) after X's snapshot was read but
// before it was recorded: Y's order is not in X's snapshot, and Y, no
// longer in flight, still counts as X's rival, since the snapshot's time is
// when the step that read it began. X takes nothing; nothing is created
// again.
func TestRivalEndedDuringTheSnapshotCounts(t *testing.T) {
	t.Parallel()
	r := newRivalsEnv(t, "devR")
	sb := aliyunsandbox.New("TestKey", "test-secret", "test-project")
	hs := httptest.NewServer(sb)
	t.Cleanup(hs.Close)
	c, err := aliyun.New(aliyun.Options{Endpoint: hs.URL, AppKey: "TestKey", AppSecret: providers.Secret("test-secret"), ProjectID: "test-project"})
	if err != nil {
		t.Fatal(err)
	}
	wrapped := &slowPrepare{Client: c}
	r.set.Add(wrapped)
	plain := providers.NewSet()
	plain.Add(c)
	other := tasks.NewHandler(r.ledger, plain, &tasks.HandlerOptions{Logger: quiet, ListingLag: -1, MaxAttempts: 8,
		Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}})
	r.order("R-X", 1)
	r.order("R-Y", 1)
	wrapped.hook = func() {
		sb.Faults().Script(fault.FailAfter) // Y: made, answer lost
		_ = other.ProcessTask(context.Background(), r.tasks["R-Y"])
		time.Sleep(5 * time.Millisecond)
		sb.Faults().Script(fault.FailBefore) // X: nothing made
	}
	r.run("R-X")
	for range 3 {
		r.run("R-X")
	}
	for range 3 {
		_ = other.ProcessTask(context.Background(), r.tasks["R-Y"])
	}
	if x := r.get("R-X"); sb.Count("devR") != 1 || x.ProviderOrderID != "" {
		t.Errorf("%d orders on the device, X holds %q; want Y's one order, not taken by X", sb.Count("devR"), x.ProviderOrderID)
	}
}

// UniCloud's window is widened by LookupMargin for the provider's clock,
// and so is the rivals' bound: with the provider's clock ahead of Redis's
// by more than the listing lag (within the margin), a rival whose create
// ended before the window's start lists its order inside the window, and
// still counts. X takes nothing.
func TestRivalBeforeTheWindowCountsWithinTheClockMargin(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{MaxAttempts: 8, ListingLag: time.Second,
		Backoff: tasks.Backoff{Base: time.Millisecond, Max: time.Millisecond}}})
	sb := unicloudsandbox.New("UKey", "usecret")
	sb.Now = func() time.Time { return time.Now().Add(3500 * time.Millisecond) } // provider clock 3.5s ahead
	hs := httptest.NewServer(sb)
	t.Cleanup(hs.Close)
	c, err := unicloud.New(unicloud.Options{Endpoint: hs.URL, AccessKeyID: "UKey", AccessKeySecret: providers.Secret("usecret"), CreateOverrun: -1, LookupMargin: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.set.Add(c)
	ctx := context.Background()
	ty, tx := enqueueTask(t, e, unicloudOrder("U-Y", "same-nas")), enqueueTask(t, e, unicloudOrder("U-X", "same-nas"))
	sb.Faults().Script(fault.FailAfter) // Y: made, answer lost
	_ = e.handler.ProcessTask(ctx, ty)
	time.Sleep(6 * time.Second)
	sb.Faults().Script(fault.FailBefore) // X: nothing made
	_ = e.handler.ProcessTask(ctx, tx)
	time.Sleep(1200 * time.Millisecond)
	for range 3 {
		_ = e.handler.ProcessTask(ctx, tx)
		time.Sleep(300 * time.Millisecond)
	}
	if x, _ := e.ledger.Get(ctx, ledger.Ref{Provider: "unicloud", OrderNo: "U-X"}); x.ProviderOrderID != "" {
		t.Errorf("X took Y's order %q (orders at the provider: %d)", x.ProviderOrderID, len(sb.Orders()))
	}
}
