package tencent_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks/ledger"
	ordersm "github.com/orderworker/orderworker/tasks/order"
)

// A create refused for its AppKey, for its licences ("AppKey 授权数不足")
// as for being invalid, is held for the configuration unchanged, like a
// bad signature: an operator's fix, which no order can make; it is never
// errored for it, nor recorded created. A refusal of the order's own
// params is errored. After an earlier create that may have been received,
// any refusal is looked up: it proves nothing of that create.
func TestAppKeyRefusalsInTheOrderStateMachine(t *testing.T) {
	t.Parallel()
	p := ordersm.Policy{MaxAttempts: 3, Deadline: time.Hour, ConfigWait: 30 * time.Second,
		Backoff: ordersm.Backoff{Base: time.Second, Max: time.Minute}}
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		msg      string
		first    ledger.State // after a first create
		next     ordersm.Next
		again    ledger.State // after a create an earlier one of which may have been received
		nextThen ordersm.Next
	}{
		{"AppKey 授权数不足", ledger.StateSubmitting, ordersm.ConfigWait, ledger.StateUnknown, ordersm.Retry},
		{"ItemNum 无效", ledger.StateErrored, ordersm.Stop, ledger.StateUnknown, ordersm.Retry},
		{"AppKey 无效", ledger.StateSubmitting, ordersm.ConfigWait, ledger.StateUnknown, ordersm.Retry},
		{"Signature 无效", ledger.StateSubmitting, ordersm.ConfigWait, ledger.StateUnknown, ordersm.Retry},
		// A refusal of the order's ItemId echoing the request, the
		// AppKey among it, is the order's (a black-box fake: such
		// orders held every order of the worker for the credentials).
		{"ItemId D-BadItem2020 非法 (CustomerId=Customer100001, AppKey=AKIDbb, 客服电话 13912345678)", ledger.StateErrored, ordersm.Stop, ledger.StateUnknown, ordersm.Retry},
		{"Invalid ItemId D-BadItem2020; request: Action=ServiceCreateOrder AppKey=AKIDbb ItemNum=2", ledger.StateErrored, ordersm.Stop, ledger.StateUnknown, ordersm.Retry},
		// Which it refuses cannot be told: the credentials', as before
		// (a review's cases among them: a label before the AppKey, a
		// licence, a secret, a signature check).
		{"Invalid ItemId D-BadItem2020; request: AppKey: AKIDbb, ItemNum: 2", ledger.StateSubmitting, ordersm.ConfigWait, ledger.StateUnknown, ordersm.Retry},
		{"Error: AppKey 无效 (ItemId D-X)", ledger.StateSubmitting, ordersm.ConfigWait, ledger.StateUnknown, ordersm.Retry},
		{"InvalidParameterValue: AppKey disabled for ItemId D-X", ledger.StateSubmitting, ordersm.ConfigWait, ledger.StateUnknown, ordersm.Retry},
		{"reason: Signature mismatch; ItemId D-X", ledger.StateSubmitting, ordersm.ConfigWait, ledger.StateUnknown, ordersm.Retry},
		{"AppKey: AKIDbb 已停用 (ItemId D-X)", ledger.StateSubmitting, ordersm.ConfigWait, ledger.StateUnknown, ordersm.Retry},
		{"AppKey: 授权数不足 (ItemId D-X)", ledger.StateSubmitting, ordersm.ConfigWait, ledger.StateUnknown, ordersm.Retry},
		{"ItemId D-X 授权数不足 (AppKey=AKIDbb)", ledger.StateSubmitting, ordersm.ConfigWait, ledger.StateUnknown, ordersm.Retry},
		{"SecretKey 错误 (ItemId D-X, AppKey=AKIDbb)", ledger.StateSubmitting, ordersm.ConfigWait, ledger.StateUnknown, ordersm.Retry},
		{"ItemId D-X 校验失败 (AppKey=AKIDbb)", ledger.StateSubmitting, ordersm.ConfigWait, ledger.StateUnknown, ordersm.Retry},
		{"AppKey 无效 (ItemId=D-FireInsurance2020)", ledger.StateSubmitting, ordersm.ConfigWait, ledger.StateUnknown, ordersm.Retry},
		{"ItemId D-X invalid for AppKey AKIDbb", ledger.StateSubmitting, ordersm.ConfigWait, ledger.StateUnknown, ordersm.Retry},
		{"ItemId=D-X 非法 (AppKey=AKIDbb)", ledger.StateSubmitting, ordersm.ConfigWait, ledger.StateUnknown, ordersm.Retry},
		{"Signature 无效 (ItemId D-X, AppKey=AKIDbb)", ledger.StateSubmitting, ordersm.ConfigWait, ledger.StateUnknown, ordersm.Retry},
	} {
		t.Run(tt.msg, func(t *testing.T) {
			t.Parallel()
			body, _ := json.Marshal(map[string]any{"Response": map[string]any{"RequestId": "r",
				"Error": map[string]any{"Code": "InvalidParameterValue", "Message": tt.msg}}})
			c := bodyServer(t, http.StatusOK, string(body))
			r, err := c.Submit(lookupCtx(t), order("K1", ours))
			if err == nil {
				t.Fatalf("Submit = %+v, want a refusal", r)
			}
			for _, may := range []bool{false, true} {
				rec := &ledger.Record{Provider: "tencent", OrderNo: "K1", State: ledger.StateSubmitting,
					Inflight: 1, InflightMarked: true, CreatedAt: now.Add(-time.Minute), MayHaveExisted: may}
				d := ordersm.Decide(rec, ordersm.Submit, ordersm.Outcome{Err: err, Result: r}, p, now)
				to, next := tt.first, tt.next
				if may {
					to, next = tt.again, tt.nextThen
				}
				if d.Settle.To() != to || d.Then.Next != next {
					t.Errorf("%s (an earlier create may have been received: %v): to %q then %v, want to %q then %v",
						providers.CodeOf(err), may, d.Settle.To(), d.Then.Next, to, next)
				}
				if d.Settle.To() == ledger.StatePaid || d.Settle.To() == ledger.StatePending {
					t.Errorf("a refused create recorded as created: %q", d.Settle.To())
				}
			}
		})
	}
}

// A refusal that echoes the order's CustomerId (perhaps a login name)
// rewritten (spaced, cased, punctuated otherwise) is withheld whole: Redact
// hides only the copies written as the order gives it (a black-box run: a
// message naming "zhang san 1907" for zhang_san_1907 reached Redis, the
// events and the logs). An exact copy is hidden and the rest kept.
func TestRefusalEchoingTheCustomerRewrittenIsWithheld(t *testing.T) {
	t.Parallel()
	params := `{"CustomerId":"zhang_san_1907","ItemId":"D-FireInsurance2020","ItemNum":1}`
	for msg, want := range map[string]string{
		"CustomerId ZHANG_SAN_1907 不存在 (customer zhang san 1907)": "withheld",
		"customer zhang-san-1907 unknown":                         "withheld",
		"customer zhang is not registered":                        "withheld", // in part (a black-box review)
		"customer zhangsan19... is not registered":                "withheld", // cut
		"CustomerId zhang_san_1907 不存在":                           "不存在",
		"ItemNum 无效":                                              "ItemNum 无效",
	} {
		body, _ := json.Marshal(map[string]any{"Response": map[string]any{"RequestId": "r",
			"Error": map[string]any{"Code": "InvalidParameterValue", "Message": msg}}})
		c := bodyServer(t, http.StatusOK, string(body))
		_, err := c.Submit(lookupCtx(t), order("K2", params))
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(strings.ToLower(err.Error()), "zhang") {
			t.Errorf("refusal %q: %v; want it to hold %q and no part of the CustomerId", msg, err, want)
		}
	}
}

// A short CustomerId that is a word of Tencent Cloud's common codes
// ("para") does not withhold such a code: the client reads it
// (a review); a sub-code holding the CustomerId is withheld.
func TestCodeOfACommonFamilyIsKeptForAShortCustomer(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ customer, code, want string }{
		{"para", "InvalidParameterValue", "InvalidParameterValue"},
		{"para", "InvalidParameterValue.Limit", "InvalidParameterValue.Limit"},
		{"zhang_san_1907", "InvalidParameterValue.ZhangSan1907", "(withheld)"},
		{"zhang_san_1907", "Custom.zhang-san-1907", "(withheld)"},
	} {
		params := `{"CustomerId":"` + c.customer + `","ItemId":"D-FireInsurance2020","ItemNum":1}`
		body, _ := json.Marshal(map[string]any{"Response": map[string]any{"RequestId": "r",
			"Error": map[string]any{"Code": c.code, "Message": "refused"}}})
		srv := bodyServer(t, http.StatusOK, string(body))
		_, err := srv.Submit(lookupCtx(t), order("K3", params))
		var pe *providers.Error
		if !errors.As(err, &pe) || pe.ProviderCode != c.want {
			t.Errorf("customer %q, code %q: %v; want the code %q", c.customer, c.code, err, c.want)
		}
	}
}

// A sub-code that names no param of the order's (a signature failure, the
// AppKey) keeps a refusal the credentials' whatever its message names (a
// review: "InvalidParameterValue.SignatureFailure" with "ItemId D-X 校验
// 失败" was errored); one that names the order's param is the order's.
func TestRefusalSubCodeDecidesWhoseItIs(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]providers.Code{
		"InvalidParameterValue.SignatureFailure": providers.Unauthenticated,
		"InvalidParameterValue.AppKeyInvalid":    providers.Unauthenticated,
		"InvalidParameterValue.ItemId":           providers.InvalidArgument,
	} {
		body, _ := json.Marshal(map[string]any{"Response": map[string]any{"RequestId": "r",
			"Error": map[string]any{"Code": code, "Message": "ItemId D-X 无效 (AppKey=AKIDbb)"}}})
		c := bodyServer(t, http.StatusOK, string(body))
		if _, err := c.Submit(lookupCtx(t), order("K3", ours)); providers.CodeOf(err) != want {
			t.Errorf("%s: %v (%v), want %v", code, providers.CodeOf(err), err, want)
		}
	}
}
