package sandbox_test

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderworker/orderworker/providers/unicloud"
	"github.com/orderworker/orderworker/providers/unicloud/sandbox"
)

const keyID, secret = "SandboxKeyId", "SandboxSecret"

const body = `{"azoneId":"cn-tianjin-yfb1","componentCode":"nas.onestor","dataEncryption":0,"instanceName":"sdf",
"orderCategory":"NEW","payType":"DAY_MONTH_USAGE","projectId":"rg-k0n2gf8ew1pd","regionId":"cn-tianjin-yfb",
"regionName":"天津研发-YFB区","renewType":"manualrenew","rentCount":1,"rentUnit":"month",
"specificationCode":"nas.capacity.nfs","unit":"GB","vpc":"vpc-g2gmswxtthml"}`

// common returns freshly stamped common parameters for action.
func common(action string) map[string]string {
	return map[string]string{
		"Action": action, "Format": "json", "Version": unicloud.APIVersion, "AccessKeyId": keyID,
		"SignatureMethod": "HMAC-SHA1", "SignatureVersion": "2.0",
		"Timestamp": time.Now().UTC().Format(unicloud.TimestampLayout), "SignatureNonce": uuid.NewString(),
	}
}

type answer struct {
	status int
	body   map[string]any
}

// send signs params with sign (the secret, unless overridden) and sends
// them to path with method and body.
func send(t *testing.T, url, method, path string, params map[string]string, sign string, reqBody string) answer {
	t.Helper()
	if _, ok := params["Signature"]; !ok {
		params["Signature"] = unicloud.Sign(method, params, sign)
	}
	q := unicloud.CanonicalQuery(params) + "&Signature=" + unicloud.PercentEncode(params["Signature"])
	var rd io.Reader
	if reqBody != "" {
		rd = strings.NewReader(reqBody)
	}
	req, err := http.NewRequest(method, url+path+"?"+q, rd)
	if err != nil {
		t.Fatal(err)
	}
	if reqBody != "" {
		req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	}
	resp, err := ownClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	a.status = resp.StatusCode
	d := json.NewDecoder(resp.Body)
	d.UseNumber()
	if err := d.Decode(&a.body); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	return a
}

func setup(t *testing.T) (*sandbox.Server, string) {
	t.Helper()
	sb := sandbox.New(keyID, secret)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	return sb, srv.URL
}

func with(p map[string]string, k, v string) map[string]string {
	p = maps.Clone(p)
	if v == "" {
		delete(p, k)
	} else {
		p[k] = v
	}
	return p
}

func TestCreateOrderAnswers(t *testing.T) {
	t.Parallel()
	create := func() map[string]string { return with(common("CreateOrder"), "regionId", "cn-tianjin-yfb") }
	tests := []struct {
		name     string
		method   string
		params   map[string]string
		secret   string
		body     string
		status   int
		code     string
		msg      string // exact, when set
		auth     string // "false" to expect Auth false
		created  int
		hasOrder bool
	}{
		{name: "doc example", params: create(), body: body, status: 200, code: "Success", created: 1, hasOrder: true},
		{name: "bad signature", params: create(), secret: "nope", body: body, status: 400, code: "InvalidParameter",
			msg: `The specified parameter "Signature" is not valid.`},
		{name: "signed as GET, sent as POST", params: with(create(), "Signature", unicloud.Sign("GET", create(), secret)), body: body,
			status: 400, code: "InvalidParameter"},
		{name: "unknown key", params: with(create(), "AccessKeyId", "Nobody"), body: body, status: 200, code: "InvalidAccessKeyId.NotFound", auth: "false"},
		{name: "no Timestamp", params: with(create(), "Timestamp", ""), body: body, status: 400, code: "MissingParameter"},
		{name: "stale Timestamp", params: with(create(), "Timestamp", time.Now().Add(-16*time.Minute).UTC().Format(unicloud.TimestampLayout)),
			body: body, status: 400, code: "InvalidTimeStamp.Expired"},
		{name: "local Timestamp", params: with(create(), "Timestamp", time.Now().Format("2006-01-02T15:04:05+08:00")),
			body: body, status: 400, code: "InvalidTimeStamp.Format"},
		{name: "Version", params: with(create(), "Version", "2014-05-26"), body: body, status: 400, code: "InvalidParameter"},
		{name: "GET", method: http.MethodGet, params: create(), status: 405, code: "UnsupportedHTTPMethod"},
		{name: "missing vpc", params: create(), body: strings.Replace(body, `"vpc":"vpc-g2gmswxtthml"`, `"x":1`, 1), status: 400, code: "MissingParameter"},
		{name: "dataEncryption 2", params: create(), body: strings.Replace(body, `"dataEncryption":0`, `"dataEncryption":2`, 1), status: 400, code: "InvalidParameter"},
		{name: "rentCount string", params: create(), body: strings.Replace(body, `"rentCount":1`, `"rentCount":"1"`, 1), status: 400, code: "InvalidParameter"},
		{name: "regionId differs from the query", params: with(create(), "regionId", "cn-beijing"), body: body, status: 400, code: "InvalidParameter"},
		{name: "product config", params: create(), body: strings.Replace(body, "nas.capacity.nfs", "ebs.ssd", 1), status: 200, code: "ProductConfigError"},
		{name: "not JSON", params: create(), body: "azoneId=x", status: 400, code: "InvalidParameter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sb, url := setup(t)
			method, s := tt.method, tt.secret
			if method == "" {
				method = http.MethodPost
			}
			if s == "" {
				s = secret
			}
			a := send(t, url, method, unicloud.NASPath, tt.params, s, tt.body)
			if a.status != tt.status || a.body["Code"] != tt.code {
				t.Fatalf("answer %d %v, want %d %s", a.status, a.body, tt.status, tt.code)
			}
			if tt.msg != "" && a.body["Msg"] != tt.msg {
				t.Errorf("Msg = %q, want %q", a.body["Msg"], tt.msg)
			}
			if tt.auth == "false" && a.body["Auth"] != false {
				t.Errorf("Auth = %v, want false", a.body["Auth"])
			}
			if id, _ := a.body["RequestId"].(string); len(id) != 36 {
				t.Errorf("RequestId = %v", a.body["RequestId"])
			}
			if n := sb.Count("sdf"); n != tt.created {
				t.Errorf("sandbox holds %d orders, want %d", n, tt.created)
			}
			if !tt.hasOrder {
				return
			}
			res, _ := a.body["Res"].(map[string]any)
			id, _ := res["OrderId"].(string)
			ids, _ := res["Ids"].([]any)
			if !regexp.MustCompile(`^9[0-9]{17}$`).MatchString(id) || len(ids) != 1 || !strings.HasPrefix(ids[0].(string), "nas-") {
				t.Errorf("Res = %v, want an 18-digit OrderId string and one nas- id", res)
			}
			if a.body["Status"] != true || a.body["Auth"] != true {
				t.Errorf("answer %v lacks Status and Auth true", a.body)
			}
		})
	}
}

func TestNonceReuse(t *testing.T) {
	t.Parallel()
	_, url := setup(t)
	p := with(common("QueryOrders"), "Page", "1")
	p["Size"] = "10"
	if a := send(t, url, http.MethodGet, unicloud.TransactionPath, maps.Clone(p), secret, ""); a.status != 200 {
		t.Fatalf("first call: %d %v", a.status, a.body)
	}
	if a := send(t, url, http.MethodGet, unicloud.TransactionPath, p, secret, ""); a.status != 400 || a.body["Code"] != "SignatureNonceUsed" {
		t.Errorf("replay: %d %v, want 400 SignatureNonceUsed", a.status, a.body)
	}
}

func TestTransactionAnswers(t *testing.T) {
	t.Parallel()
	sb, url := setup(t)
	base := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	var seeded []sandbox.Order
	for i, name := range []string{"a", "b", "c", "d", "e"} {
		seeded = append(seeded, sb.Seed(sandbox.Order{InstanceName: name, OrderCategory: "NEW", PayType: "DAY_MONTH_USAGE",
			RentCount: 1, RentUnit: "month", Created: base.Add(time.Duration(i) * time.Minute)}))
	}
	q := func(page, size, start, end string) answer {
		p := with(with(common("QueryOrders"), "Page", page), "Size", size)
		p = with(with(p, "StartTime", start), "EndTime", end)
		return send(t, url, http.MethodGet, unicloud.TransactionPath, p, secret, "")
	}
	// 18:01 to 18:03 in UTC+8 is 10:01Z to 10:03Z: b, c and d, newest first.
	a := q("1", "2", "2024-03-01 18:01:00", "2024-03-01 18:03:00")
	list := a.body["OrderList"].(map[string]any)["Order"].([]any)
	if a.body["TotalCount"] != json.Number("3") || a.body["PageNum"] != json.Number("1") || len(list) != 2 {
		t.Fatalf("page 1 = %v", a.body)
	}
	first := list[0].(map[string]any)
	if first["Id"] != seeded[3].ID || first["CreateTime"] != "2024-03-01 18:03:00" || first["OrderCategory"] != "NEW" {
		t.Errorf("first listed = %v, want order d created 2024-03-01 18:03:00", first)
	}
	if _, ok := first["InstanceName"]; ok {
		t.Errorf("listed order carries an undocumented InstanceName")
	}
	a = q("2", "2", "2024-03-01 18:01:00", "2024-03-01 18:03:00")
	if list := a.body["OrderList"].(map[string]any)["Order"].([]any); len(list) != 1 || list[0].(map[string]any)["Id"] != seeded[1].ID {
		t.Errorf("page 2 = %v, want order b", a.body)
	}
	if a := q("9", "2", "", ""); len(a.body["OrderList"].(map[string]any)["Order"].([]any)) != 0 || a.body["TotalCount"] != json.Number("5") {
		t.Errorf("page past the end = %v", a.body)
	}
	if a := q("1", "2", "2024-03-01T18:01:00Z", ""); a.status != 400 {
		t.Errorf("bad StartTime answered %d", a.status)
	}
	if a := q("0", "2", "", ""); a.status != 400 {
		t.Errorf("Page 0 answered %d", a.status)
	}

	d := send(t, url, http.MethodGet, unicloud.TransactionPath, with(common("OrderDetail"), "OrderId", seeded[2].ID), secret, "")
	order, _ := d.body["Order"].(map[string]any)
	items, _ := order["Items"].([]any)
	if order["Id"] != seeded[2].ID || len(items) != 1 || items[0].(map[string]any)["instanceName"] != "c" ||
		items[0].(map[string]any)["instanceId"] != seeded[2].FileSystemID {
		t.Errorf("OrderDetail = %v", d.body)
	}
	d = send(t, url, http.MethodGet, unicloud.TransactionPath, with(common("OrderDetail"), "OrderId", "1"), secret, "")
	if d.status != 200 || d.body["Status"] != false || d.body["Code"] != "OrderNotExist" {
		t.Errorf("OrderDetail of an unknown id = %d %v", d.status, d.body)
	}
	if a := send(t, url, http.MethodGet, "/openapi/ecs", common("DescribeInstances"), secret, ""); a.status != 404 {
		t.Errorf("unknown API answered %d", a.status)
	}
}

// ownClient has a transport of its own: httptest.Server.Close drops the
// idle connections of http.DefaultTransport, which breaks a request
// another parallel test is sending on one of them at that moment.
var ownClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
