package tencent

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestParseResponseShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body, code string
		ok         bool
	}{
		{`{"Response":{"RequestId":"r","Status":"OK"}}`, "", true},
		{`{"Response":{"Error":{"Code":"InvalidParameterValue","Message":"Signature 无效"},"RequestId":"r"}}`, "InvalidParameterValue", true},
		{`{"code":0,"msg":"","data":{"RequestId":"r","Status":"OK"}}`, "", true},
		{`{"code":0,"data":{"Error":{"Code":"InternalError","Message":"x"}}}`, "InternalError", true},
		{`{"code":1001,"msg":"bad"}`, "InternalError", true},
		{`{"code":0}`, "", false},
		{`{"Error":{"Code":"InternalError","Message":"x"},"RequestId":"r"}`, "InternalError", true},
		{`{"error":{"Message":"x"}}`, "InternalError", true},
		{`{"Orders":[],"Total":0,"RequestId":"r"}`, "", true},
		{`{"Total":"1"}`, "", true},
		{`{"RequestId":"r","Data":{"Status":"OK"}} trailing`, "", false},
		{`{"Response":{"RequestId":"r","Status":"OK"}}{}`, "", false},
		{`{"Response":{"RequestId":"r","Status":"OK"}} {"Response":{}}`, "", false},
		{"{\"Response\":{\"RequestId\":\"r\",\"Status\":\"OK\"}}\n", "", true},
		{`{"RequestId":"r","Status":"OK"}`, "", false},
		{`{"RequestId":"r","Error":null,"Data":null}`, "", false},
		{`{"Response":null}`, "", false},
		{`{"Error":"text"}`, "", false},
		{`<html>`, "", false},
		{`{}`, "", false},
	}
	for _, tt := range tests {
		_, code, _, err := ParseResponse([]byte(tt.body))
		if (err == nil) != tt.ok || code != tt.code {
			t.Errorf("ParseResponse(%s) = code %q, err %v; want code %q ok %v", tt.body, code, err, tt.code, tt.ok)
		}
	}
}

// FuzzParseResponse: any body parses or fails without panicking, and a
// parsed error code comes with a Response object or a transport code.
func FuzzParseResponse(f *testing.F) {
	f.Add([]byte(`{"Response":{"RequestId":"r","Status":"OK"}}`))
	f.Add([]byte(`{"Response":{"Error":{"Code":"InvalidParameterValue","Message":"Signature 无效"},"RequestId":"r"}}`))
	f.Add([]byte(`{"code":0,"msg":"","data":{"Orders":[{"OrderNo":"a"}],"Total":1}}`))
	f.Add([]byte(`{"code":7,"msg":"x"}`))
	f.Add([]byte(`{"Response":null}`))
	f.Add([]byte(`{"Error":{"Code":"InternalError","Message":"x"},"RequestId":"r"} {`))
	f.Add([]byte(`{"Orders":null,"Total":"2","Data":{}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, code, msg, err := ParseResponse(body)
		if err != nil {
			return
		}
		if code == "" && r == nil {
			t.Fatalf("no error, no code and no response for %q", body)
		}
		if r != nil && !json.Valid(r) {
			t.Fatalf("response %q is not JSON", r)
		}
		_ = utf8.ValidString(msg)
	})
}
