package tasks_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/orderworker/orderworker/providers/aliyun"
	"github.com/orderworker/orderworker/tasks"
)

func newSealer(t *testing.T) *tasks.Sealer {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	s, err := tasks.NewSealer(base64.StdEncoding.EncodeToString(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealedParamsNeverInClearInRedis(t *testing.T) {
	t.Parallel()
	sealer := newSealer(t)
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{Sealer: sealer}})
	e.enqueuer = tasks.NewEnqueuer(e.client, e.ledger, e.set, &tasks.EnqueuerOptions{Sealer: sealer})
	const phone = "13912345678" // a customer id that is a phone number
	payload := []byte(`{"provider":"tencent","order_no":"Sealed-1","params":{"CustomerId":"` + phone + `","ItemId":"D-FireInsurance2020","ItemNum":1}}`)
	if res := e.enqueue(t, payload); res.Status != tasks.Enqueued {
		t.Fatalf("Enqueue = %+v", res)
	}
	if res := e.enqueue(t, payload); res.Status != tasks.Duplicate {
		t.Fatalf("same sealed order again = %+v, want duplicate", res)
	}
	e.startServer(t)
	e.waitState(t, "Sealed-1", tasks.StatePaid)
	if got := e.sandbox.Orders()["Sealed-1"]; len(got) != 1 || got[0].CustomerId != phone {
		t.Fatalf("sandbox got %+v, want the customer id in clear at the provider", got)
	}
	if dump := e.redis.Dump(t); strings.Contains(dump, phone) {
		t.Errorf("Redis holds the phone number in clear:\n%s", dump)
	}
}

func TestPersonalDataNeedsADataKey(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	e.set.Disable(aliyun.Name, "test", aliyun.Validate, aliyun.Spec().Sensitive...)
	res := e.enqueue(t, []byte(`{"provider":"aliyun","order_no":"P1","params":{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":1,"userName":"13912345678"}}`))
	if res.Status != tasks.Invalid || !strings.Contains(res.Reason, "params.userName is personal data") {
		t.Fatalf("Enqueue = %+v, want invalid: personal data without a data key", res)
	}
	if strings.Contains(res.Reason, "13912345678") {
		t.Errorf("reason %q shows the phone number", res.Reason)
	}
	// userId, the user's platform identity or the vendor's own account
	// id (an e-mail address, perhaps), is personal data too.
	res = e.enqueue(t, []byte(`{"provider":"aliyun","order_no":"P1","params":{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":1,"userId":"zhang.san@example.com"}}`))
	if res.Status != tasks.Invalid || !strings.Contains(res.Reason, "params.userId is personal data") || strings.Contains(res.Reason, "zhang") {
		t.Fatalf("Enqueue with a userId = %+v, want invalid: personal data without a data key, the id not shown", res)
	}
	// Given twice, the checks would see the empty one and the stored
	// params hold both.
	res = e.enqueue(t, []byte(`{"provider":"aliyun","order_no":"P1","params":{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":1,"userName":"Zhang Sanfeng","userName":""}}`))
	if res.Status != tasks.Invalid || !strings.Contains(res.Reason, `the key "userName" appears twice`) {
		t.Fatalf("Enqueue with userName given twice = %+v, want invalid", res)
	}
	if keys := e.rdb.Keys(context.Background(), "*").Val(); len(keys) != 0 {
		t.Errorf("rejected order left keys: %v", keys)
	}
}

// Without a data key, a phone number is refused in any param, not only in
// the ones a provider declares personal.
func TestPhoneNumberAnywhereNeedsADataKey(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	// userId is personal data itself, refused whatever it holds; here it
	// stands for a free-text param no provider declares personal, the
	// only kind of field where these forms pass validation.
	e.set.Disable(aliyun.Name, "test", aliyun.Validate, "userName")
	for field, order := range map[string]string{
		"CustomerId": `{"provider":"tencent","order_no":"P2","params":{"CustomerId":"13912345678","ItemId":"D-FireInsurance2020","ItemNum":1}}`,
		"userId":     `{"provider":"aliyun","order_no":"P2","params":{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":1,"userId":"139-1234-5678"}}`,
		// An international number in groups.
		"userId\u0020": `{"provider":"aliyun","order_no":"P2","params":{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":1,"userId":"+44 7700 901234"}}`,
		// Mobile numbers in other groupings.
		"userId\u0020\u0020":       `{"provider":"aliyun","order_no":"P2","params":{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":1,"userId":"(139)1234-5678"}}`,
		"CustomerId\u0020\u0020":   `{"provider":"tencent","order_no":"P2","params":{"CustomerId":"139_1234_5678","ItemId":"D-FireInsurance2020","ItemNum":1}}`,
		"userId\u0020\u0020\u0020": `{"provider":"aliyun","order_no":"P2","params":{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":1,"userId":"139 \u2013 1234 \u2013 5678"}}`,
		// Escaped digits are digits: judged on the decoded text.
		"userId\u0020\u0020\u0020\u0020":                   `{"provider":"aliyun","order_no":"P2","params":{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":1,"userId":"+86.138.0013.8000"}}`,
		"userId\u0020\u0020\u0020\u0020\u0020":             `{"provider":"aliyun","order_no":"P2","params":{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":1,"userId":"+86_138_0013_8000"}}`,
		"userId\u0020\u0020\u0020\u0020\u0020\u0020":       `{"provider":"aliyun","order_no":"P2","params":{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":1,"userId":"%2B86%20138%200013%208000"}}`,
		"userId\u0020\u0020\u0020\u0020\u0020\u0020\u0020": `{"provider":"aliyun","order_no":"P2","params":{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":1,"userId":"&#49;&#51;&#56;&#48;&#48;&#49;&#51;&#56;&#48;&#48;&#48;"}}`,
		"CustomerId\u0020":                                 `{"provider":"tencent","order_no":"P2","params":{"CustomerId":"\u0031\u0033\u0039\u0031\u0032\u0033\u0034\u0035\u0036\u0037\u0038","ItemId":"D-FireInsurance2020","ItemNum":1}}`,
		// A value that is itself escaped text, as the answers' masks
		// read it; any dash.
		"userId\u0020\u0020\u0020\u0020\u0020\u0020\u0020\u0020\u0020": `{"provider":"aliyun","order_no":"P2","params":{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":1,"userId":"\\u0031\\u0033\\u0039\\u0031\\u0032\\u0033\\u0034\\u0035\\u0036\\u0037\\u0038"}}`,
		"userId\u0020\u0020\u0020\u0020\u0020\u0020\u0020\u0020":       `{"provider":"aliyun","order_no":"P2","params":{"iotId":"dev1","commodityCode":"streamingResource_20_10","copies":1,"userId":"139\u301c1234\u301c5678"}}`,
	} {
		field, _, _ = strings.Cut(field, "\u0020")
		res := e.enqueue(t, []byte(order))
		if res.Status != tasks.Invalid || !strings.Contains(res.Reason, "params."+field+" holds what looks like a phone number") {
			t.Errorf("Enqueue %s = %+v, want invalid: a phone number without a data key", order, res)
		}
		if strings.Contains(res.Reason, "1234") {
			t.Errorf("reason %q shows the phone number", res.Reason)
		}
	}
	// A provider name that looks like a phone number is unknown, and
	// answered masked.
	if res := e.enqueue(t, []byte(`{"provider":"13912345690","order_no":"P2","params":{}}`)); res.Status != tasks.Invalid ||
		strings.Contains(res.Provider+res.Reason, "1234") {
		t.Errorf("Enqueue for provider 13912345690 = %+v, want invalid, the name masked", res)
	}
	if keys := e.rdb.Keys(context.Background(), "*").Val(); len(keys) != 0 {
		t.Errorf("rejected orders left keys: %v", keys)
	}
	if res := e.enqueue(t, []byte(`{"provider":"tencent","order_no":"P3","params":{"CustomerId":"C12345678","ItemId":"D-FireInsurance2020","ItemNum":1}}`)); res.Status != tasks.Enqueued {
		t.Errorf("Enqueue without a phone number = %+v, want enqueued", res)
	}
}

func TestSealerRoundTripAndWrongKey(t *testing.T) {
	t.Parallel()
	a, b := newSealer(t), newSealer(t)
	params := json.RawMessage(`{"userName":"13912345678"}`)
	sealed, err := a.Seal(params)
	if err != nil || !tasks.IsSealed(sealed) || strings.Contains(string(sealed), "1391234") {
		t.Fatalf("Seal = %s, %v", sealed, err)
	}
	if got, err := a.Open(sealed); err != nil || string(got) != string(params) {
		t.Fatalf("Open = %s, %v", got, err)
	}
	if _, err := b.Open(sealed); err == nil {
		t.Error("Open with another key succeeded")
	}
	var none *tasks.Sealer
	if _, err := none.Open(sealed); err != tasks.ErrSealed {
		t.Errorf("Open without a key = %v, want ErrSealed", err)
	}
	if _, err := tasks.NewSealer("short"); err == nil {
		t.Error("NewSealer accepted a bad key")
	}
}

// A producer without a data key records params as they are, hashed
// plainly; a worker with a key (worker -dev holds one) still processes the
// order, however the producer spaced its JSON, and so does the reconciler's
// re-queued task.
func TestKeylessProducerKeyedWorker(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true, handler: &tasks.HandlerOptions{Sealer: newSealer(t)}})
	payload := []byte("{\n  \"provider\": \"tencent\",\n  \"order_no\": \"Pretty-1\",\n  \"params\": {\n    \"CustomerId\": \"C1\",\n    \"ItemId\": \"D-FireInsurance2020\",\n    \"ItemNum\": 1\n  }\n}\n")
	if res := e.enqueue(t, payload); res.Status != tasks.Enqueued {
		t.Fatalf("Enqueue = %+v", res)
	}
	e.startServer(t)
	rec := e.waitState(t, "Pretty-1", tasks.StatePaid)
	if got := e.sandbox.Orders()["Pretty-1"]; len(got) != 1 || got[0].ItemId != "D-FireInsurance2020" {
		t.Fatalf("sandbox got %+v, want one order with the item as sent", got)
	}
	if strings.ContainsAny(string(rec.Params), " \n") {
		t.Errorf("recorded params %s are not the task's compact form", rec.Params)
	}
}

// A producer writing asynq tasks itself gets the Enqueuer's rule: without
// a data key, params holding a phone number are not recorded in clear.
func TestHandWrittenTaskWithAPhoneNumberIsNotRecorded(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	const phone = "13812345678"
	payload := []byte(`{"provider":"tencent","order_no":"Raw-Phone","params":{"CustomerId":"` + phone + `","ItemId":"D-FireInsurance2020","ItemNum":1}}`)
	err := e.handler.ProcessTask(context.Background(), asynq.NewTask(tasks.TypeOrderSubmit, payload))
	if err == nil || !strings.Contains(err.Error(), "CustomerId holds what looks like a phone number") || strings.Contains(err.Error(), phone) {
		t.Fatalf("ProcessTask = %v, want refused naming the field, not the number", err)
	}
	if rec, err := e.ledger.Get(context.Background(), tasks.OrderRef{Provider: "tencent", OrderNo: "Raw-Phone"}); err != nil || rec != nil {
		t.Errorf("record = %+v, %v; want none", rec, err)
	}
	if dump := e.redis.Dump(t); strings.Contains(dump, phone) {
		t.Errorf("Redis holds the phone number in clear:\n%s", dump)
	}
	if n := e.sandbox.Calls("ServiceCreateOrder"); n != 0 {
		t.Errorf("ServiceCreateOrder called %d times", n)
	}
}

// A producer writing asynq tasks itself with personal data in clear: the
// worker seals the record and says, without the data, that the task keeps
// it in Redis; a task without personal data is taken without a word.
func TestHandWrittenTaskWithPersonalDataIsSaidSo(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	var logs lockedBuffer
	h := tasks.NewHandler(e.ledger, e.set, &tasks.HandlerOptions{Sealer: newSealer(t), ListingLag: -1,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	const phone = "13812345678"
	for no, customer := range map[string]string{"Raw-Phone-Keyed": phone, "Raw-Plain": "C1"} {
		payload := []byte(`{"provider":"tencent","order_no":"` + no + `","params":{"CustomerId":"` + customer + `","ItemId":"D-FireInsurance2020","ItemNum":1}}`)
		if err := h.ProcessTask(context.Background(), asynq.NewTask(tasks.TypeOrderSubmit, payload)); err != nil {
			t.Fatalf("ProcessTask %s = %v", no, err)
		}
		if rec, err := e.ledger.Get(context.Background(), tasks.OrderRef{Provider: "tencent", OrderNo: no}); err != nil || rec == nil || rec.State != tasks.StatePaid {
			t.Fatalf("record %s = %+v, %v; want paid", no, rec, err)
		}
	}
	out := logs.String()
	if strings.Contains(out, phone) {
		t.Errorf("the log shows the phone number:\n%s", out)
	}
	warned := regexp.MustCompile(`(?m)^.*holds personal data in clear.*$`).FindAllString(out, -1)
	if len(warned) != 1 || !strings.Contains(warned[0], "order_no=Raw-Phone-Keyed") || !strings.Contains(warned[0], "field=params.CustomerId") {
		t.Errorf("want one warning, for Raw-Phone-Keyed naming params.CustomerId; got %q", warned)
	}
	if dump := e.redis.Dump(t); strings.Count(dump, phone) > 0 {
		// The task itself was never written to Redis here (ProcessTask
		// was called directly): only the record could hold it.
		t.Errorf("the record holds the phone number in clear:\n%s", dump)
	}
}

// Producers with and without the data key hash params differently (keyed
// and plain). An order sent again by the other kind of producer is still
// a duplicate, never a conflict: a keyed producer compares a record in
// clear by its plain hash; a keyless one cannot read a sealed record, and
// says so (an error naming the key) rather than answer conflict.
func TestKeyedAndKeylessProducersAgreeOnDuplicates(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{noServer: true})
	ctx := context.Background()
	keyed := tasks.NewEnqueuer(e.client, e.ledger, e.set, &tasks.EnqueuerOptions{Sealer: newSealer(t)})
	keyless := e.enqueuer
	for _, tt := range []struct {
		name        string
		first, then *tasks.Enqueuer
		payload     []byte
		want        string // "": ErrNoKeyToCompare
	}{
		{"keyless, then keyed: same params", keyless, keyed, order("Mix-1"), tasks.Duplicate},
		{"keyed, then keyless: same params", keyed, keyless, order("Mix-2"), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if res, err := tt.first.Enqueue(ctx, tt.payload); err != nil || res.Status != tasks.Enqueued {
				t.Fatalf("first Enqueue = %+v, %v", res, err)
			}
			res, err := tt.then.Enqueue(ctx, tt.payload)
			switch {
			case tt.want == "" && !errors.Is(err, tasks.ErrNoKeyToCompare):
				t.Errorf("sent again = %+v, %v; want ErrNoKeyToCompare", res, err)
			case tt.want != "" && (err != nil || res.Status != tt.want):
				t.Errorf("sent again = %+v, %v; want %s", res, err, tt.want)
			}
		})
	}
	// Other params under the number are still a conflict.
	other := []byte(`{"provider":"tencent","order_no":"Mix-1","params":{"CustomerId":"Customer100001","ItemId":"D-FireInsurance2020","ItemVNO":"FireBusiness","ItemNum":3}}`)
	if res, err := keyed.Enqueue(ctx, other); err != nil || res.Status != tasks.Conflict {
		t.Errorf("other params, keyed = %+v, %v; want conflict", res, err)
	}
}
