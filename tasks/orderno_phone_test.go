package tasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers/aliyun"
	"github.com/orderworker/orderworker/tasks"
)

// An order number that is or holds a phone number is refused: it would be
// stored and shown in clear (Redis keys, asynq's task ids and error text,
// the dashboard, events), which a data key does not change.
func TestOrderNumberThatIsAPhoneNumberIsRefused(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	for _, no := range []string{"13912345678", "139-1234-5678", "+8613912345678", "Order13912345678", "20241130-139-1234-5678", "SO_15012345678_1"} {
		order := []byte(`{"provider":"tencent","order_no":"` + no + `","params":{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}}`)
		res := e.enqueue(t, order)
		if res.Status != tasks.Invalid || !strings.Contains(res.Reason, "order_no: ") || !strings.Contains(res.Reason, "phone number") {
			t.Errorf("Enqueue order_no %q = %+v; want invalid, the reason naming order_no", no, res)
		}
		if strings.Contains(res.OrderNo+res.Reason, "1234") {
			t.Errorf("answer %+v shows the phone number", res)
		}
		// Without Redis, not final: an order recorded before the rule is
		// answered duplicate (TestPersonalDataRefusalAfterALossIsNotInvalid).
		if res, bad := e.enqueuer.Check(order); bad || strings.Contains(res.OrderNo, "1234") {
			t.Errorf("Check order_no %q = %+v, %v; want not final", no, res, bad)
		}
	}
	if keys := e.rdb.Keys(context.Background(), "*").Val(); len(keys) != 0 {
		t.Errorf("refused orders left keys: %v", keys)
	}
	for _, no := range []string{"SO20261130123456", "Demo-1764510963000001", "INV-2026-1391234"} {
		res := e.enqueue(t, []byte(`{"provider":"tencent","order_no":"`+no+`","params":{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}}`))
		if res.Status != tasks.Enqueued {
			t.Errorf("Enqueue order_no %q = %+v; want enqueued (no phone number in it)", no, res)
		}
	}
}

// An order refused for any reason is not recorded: the order number its
// answer echoes has phone numbers masked, whatever made it invalid (a
// space, its length, a path part, its params, the payload itself), by
// Enqueue, EnqueueBatch and Check alike.
func TestRefusedOrderNumberIsEchoedMasked(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	good := `{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`
	orders := []string{
		`{"provider":"tencent","order_no":"x 13912345678","params":` + good + `}`,
		`{"provider":"tencent","order_no":"+44 7700 900123","params":` + good + `}`,
		`{"provider":"tencent","order_no":"` + strings.Repeat("A", 60) + `13912345678","params":` + good + `}`,
		`{"provider":"tencent","order_no":"ord/../13912345678","params":` + good + `}`,
		`{"provider":"tencent","order_no":"Order13912345678","params":{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":0}}`,
		`{"provider":"tencent","order_no":"Order13912345678","params":{"CustomerId":"C1","CustomerId":"C2","ItemId":"D-1","ItemNum":1}}`,
		`{"provider":"tencent","order_no":"Order13912345678","params":` + good + `,"extra":1}`,
	}
	var batch [][]byte
	for _, o := range orders {
		batch = append(batch, []byte(o))
		res := e.enqueue(t, []byte(o))
		if res.Status != tasks.Invalid || strings.Contains(res.OrderNo, "1234567") || strings.Contains(res.OrderNo, "900123") || res.OrderNo == "" {
			t.Errorf("Enqueue %s = %+v; want invalid, the order number echoed with its phone digits masked", o, res)
		}
		if res, bad := e.enqueuer.Check([]byte(o)); bad && (strings.Contains(res.OrderNo, "1234567") || strings.Contains(res.OrderNo, "900123")) {
			t.Errorf("Check %s = %+v; want the phone digits masked", o, res)
		}
	}
	for i, br := range e.enqueuer.EnqueueBatch(context.Background(), batch) {
		if br.Err != nil || br.Status != tasks.Invalid || strings.Contains(br.OrderNo, "1234567") || strings.Contains(br.OrderNo, "900123") {
			t.Errorf("EnqueueBatch %s = %+v; want invalid, masked", orders[i], br)
		}
	}
	if keys := e.rdb.Keys(context.Background(), "*").Val(); len(keys) != 0 {
		t.Errorf("refused orders left keys: %v", keys)
	}
}

// An unknown provider is echoed only when it reads as a name, and an order
// number too long to take is echoed cut (a review: a "provider" of a
// person's name repeated 300 times came back whole, a 3 KB answer).
func TestRefusedProviderAndLongOrderNumberAreNotEchoedWhole(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	good := `{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`
	for _, c := range []struct{ provider, orderNo, wantProvider string }{
		{strings.Repeat("Zhang San ", 300), "O-1", "(withheld: not a provider name)"},
		{"张伟", "O-2", "(withheld: not a provider name)"},
		{"tencnet", "O-3", "tencnet"},
		{"tencent", strings.Repeat("B", 5000), "tencent"},
	} {
		o := []byte(`{"provider":"` + c.provider + `","order_no":"` + c.orderNo + `","params":` + good + `}`)
		res := e.enqueue(t, o)
		if res.Status != tasks.Invalid || res.Provider != c.wantProvider || len(res.OrderNo) > tasks.MaxOrderNoLen+len("…") {
			t.Errorf("Enqueue provider %.20q order_no %.20q = %.200v; want invalid, provider %q, the order number at most %d characters", c.provider, c.orderNo, res, c.wantProvider, tasks.MaxOrderNoLen)
		}
		if res, bad := e.enqueuer.Check(o); !bad || res.Provider != c.wantProvider || len(res.OrderNo) > tasks.MaxOrderNoLen+len("…") {
			t.Errorf("Check provider %.20q = %.200v, %v; want invalid, provider %q, the order number cut", c.provider, res, bad, c.wantProvider)
		}
	}
	// A payload that does not decode still names what it can, as cut.
	res, bad := e.enqueuer.Check([]byte(`{"provider":"` + strings.Repeat("李四 ", 100) + `","order_no":"` + strings.Repeat("C", 500) + `","params":7}`))
	if !bad || res.Provider != "(withheld: not a provider name)" || len(res.OrderNo) > tasks.MaxOrderNoLen+len("…") {
		t.Errorf("Check of a bad payload = %.200v, %v; want the provider withheld, the order number cut", res, bad)
	}
}

// A task a producer wrote into asynq itself with a phone number for its
// order number is refused by the worker on its first run: nothing is
// recorded under that number.
func TestProducersTaskWithAPhoneNumberForOrderNumberIsRefused(t *testing.T) {
	t.Parallel()
	w := newLossWorld(t)
	err := w.h.ProcessTask(context.Background(), asynq.NewTask(tasks.TypeOrderSubmit, memOrderPayload("13912345678")))
	if err == nil || !errors.Is(err, asynq.SkipRetry) || strings.Contains(err.Error(), "1234") {
		t.Errorf("run = %v; want it refused for good, without the number", err)
	}
	if keys := w.rdb.Keys(context.Background(), "*13912345678*").Val(); len(keys) != 0 {
		t.Errorf("keys under the phone number: %v", keys)
	}
	if n := w.b.Calls("create"); n != 0 {
		t.Errorf("%d creates; want none", n)
	}
}

// An order accepted before a rule that refuses it now (its number a phone
// number, or a personal-data param without a data key: an older version
// took it) is answered as a claim would answer it when its producer sends
// it again, duplicate or conflict: told "invalid, use an order number of
// your own", the producer would have it made twice.
func TestResendOfAnOrderAcceptedBeforeAPersonalDataRuleIsADuplicate(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	e.set.Disable(aliyun.Name, "test", aliyun.Validate, aliyun.Spec().Sensitive...)
	ctx := context.Background()
	for _, tt := range []struct{ provider, no, params, other string }{
		{"tencent", "13912345678", `{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`, `{"CustomerId":"C2","ItemId":"D-FireInsurance2020","ItemNum":1}`},
		{"aliyun", "Old-1", `{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":1,"userId":"zhang.san@example.com"}`, `{"iotId":"dev2","commodityCode":"streamingResource_20_10","copies":1,"userId":"zhang.san@example.com"}`},
	} {
		hash, err := tasks.ParamsHash(json.RawMessage(tt.params))
		if err != nil {
			t.Fatal(err)
		}
		// As an older version recorded it.
		if _, err := e.ledger.Claim(ctx, tasks.OrderRef{Provider: tt.provider, OrderNo: tt.no}, []byte(tt.params), hash); err != nil {
			t.Fatal(err)
		}
		res := e.enqueue(t, []byte(`{"provider":"`+tt.provider+`","order_no":"`+tt.no+`","params":`+tt.params+`}`))
		if res.Status != tasks.Duplicate {
			t.Errorf("%s %s sent again = %+v; want duplicate", tt.provider, tt.no, res)
		}
		res = e.enqueue(t, []byte(`{"provider":"`+tt.provider+`","order_no":"`+tt.no+`","params":`+tt.other+`}`))
		if res.Status != tasks.Conflict {
			t.Errorf("%s %s sent again with other params = %+v; want conflict", tt.provider, tt.no, res)
		}
	}
}

// After Redis lost its data, an order refused for personal data with no
// record may be one accepted before the rule whose record went with the
// loss: it is not answered invalid ("use another number": made twice) but
// with an error saying so, nothing written; a day after the loss, invalid
// again. Without Redis (Check), a personal-data refusal is never called
// final: only the record can tell.
func TestPersonalDataRefusalAfterALossIsNotInvalid(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	ctx := context.Background()
	params := `{"CustomerId":"C1","ItemId":"D-FireInsurance2020","ItemNum":1}`
	body := []byte(`{"provider":"tencent","order_no":"13912345678","params":` + params + `}`)
	hash, err := tasks.ParamsHash(json.RawMessage(params))
	if err != nil {
		t.Fatal(err)
	}
	if res, bad := e.enqueuer.Check(body); bad {
		t.Errorf("Check of an order number that is a phone number = %+v, final; want not final (only its record can tell)", res)
	}
	if res, bad := e.enqueuer.Check([]byte(`{"provider":"tencent","order_no":"13912345678","params":{"ItemId":1}}`)); !bad || res.Status != tasks.Invalid {
		t.Errorf("Check of an order with bad params = %+v, %v; want invalid, final", res, bad)
	}
	if _, err := e.ledger.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	// As an older version recorded it; then Redis loses everything.
	if _, err := e.ledger.Claim(ctx, tasks.OrderRef{Provider: "tencent", OrderNo: "13912345678"}, []byte(params), hash); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if losses, err := e.ledger.Watch(ctx); err != nil || len(losses) != 1 {
		t.Fatalf("Watch after the wipe = %v, %v; want the loss found", losses, err)
	}
	res, err := e.enqueuer.Enqueue(ctx, body)
	var lr *tasks.LostRefusalError
	if !errors.As(err, &lr) || res.Status == tasks.Invalid || strings.Contains(err.Error(), "13912345678") {
		t.Errorf("resend after the loss = %+v, %v; want a LostRefusalError, not invalid, the number not in it", res, err)
	}
	if rec, _ := e.ledger.Get(ctx, tasks.OrderRef{Provider: "tencent", OrderNo: "13912345678"}); rec != nil {
		t.Errorf("recorded %+v; want nothing written", rec)
	}
	out := e.enqueuer.EnqueueBatch(ctx, [][]byte{body})
	if len(out) != 1 || !errors.As(out[0].Err, &lr) {
		t.Errorf("in a batch: %+v; want the same error", out)
	}
	// A new order with no loss behind it: invalid, as before.
	fresh := setup(t, &setupOpts{noServer: true})
	if res := fresh.enqueue(t, body); res.Status != tasks.Invalid {
		t.Errorf("with no loss: %+v; want invalid", res)
	}
}

// The scope a provider's order ids are kept by (Aliyun's device, iotId) is
// stored in clear on the record and in the owner index, whatever the data
// key seals: an order whose scope holds a phone number is refused, with a
// data key as without, as an order number holding one is.
func TestIDScopeThatHoldsAPhoneNumberIsRefused(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	addAliyun(t, e, nil)
	keyed := tasks.NewEnqueuer(e.client, e.ledger, e.set, &tasks.EnqueuerOptions{Sealer: newSealer(t)})
	for _, iot := range []string{"13800138000", "dev-138-0013-8000"} {
		order := []byte(`{"provider":"aliyun","order_no":"Scope-1","params":{"iotId":"` + iot + `","commodityCode":"streamingResource_20_10","copies":1}}`)
		for name, enq := range map[string]*tasks.Enqueuer{"keyed": keyed, "keyless": e.enqueuer} {
			res, err := enq.Enqueue(context.Background(), order)
			if err != nil || res.Status != tasks.Invalid || !strings.Contains(res.Reason, "params.") || !strings.Contains(res.Reason, "phone number") || strings.Contains(res.Reason, "0013") || strings.Contains(res.Reason, "138000") {
				t.Errorf("%s Enqueue of iotId %q = %+v, %v; want invalid naming the param, the number masked", name, iot, res, err)
			}
		}
	}
	if keys := e.rdb.Keys(context.Background(), "*aliyun*").Val(); len(keys) != 0 {
		t.Errorf("refused orders left keys: %v", keys)
	}
	res, err := keyed.Enqueue(context.Background(), []byte(`{"provider":"aliyun","order_no":"Scope-2","params":{"iotId":"bZGD54swRgFkEs000101","commodityCode":"streamingResource_20_10","copies":1}}`))
	if err != nil || res.Status != tasks.Enqueued {
		t.Errorf("Enqueue of a device id without a phone number = %+v, %v; want enqueued", res, err)
	}
}
