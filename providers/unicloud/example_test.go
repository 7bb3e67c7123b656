package unicloud_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/unicloud"
	"github.com/orderworker/orderworker/providers/unicloud/sandbox"
)

// Signing the NAS doc's example query (KAT-U1) with a made-up secret.
func ExampleSign() {
	params := map[string]string{
		"AccessKeyId": "6oPiV0WMJXhxiT65", "Action": "CreateOrder", "Format": "json",
		"SignatureMethod": "HMAC-SHA1", "SignatureNonce": "16343456325226", "SignatureVersion": "2.0",
		"Timestamp": "2020-07-30T12:00:00Z", "Version": "2020-07-30", "regionId": "cn-tianjin-yfb",
	}
	sig := unicloud.Sign("POST", params, "testsecret")
	fmt.Println(sig)
	fmt.Println(unicloud.PercentEncode(sig))
	// Output:
	// U+7ziGlauZIuvzhyZTi84Yat9Oc=
	// U%2B7ziGlauZIuvzhyZTi84Yat9Oc%3D
}

// Submitting an order to the sandbox, then finding it again without the
// provider's id, as the worker does after an ambiguous failure.
func ExampleClient_Lookup() {
	sb := sandbox.New("ExampleKeyId", "ExampleSecret")
	srv := httptest.NewServer(sb)
	defer srv.Close()
	c, err := unicloud.New(unicloud.Options{Endpoint: srv.URL, AccessKeyID: "ExampleKeyId", AccessKeySecret: "ExampleSecret"})
	if err != nil {
		panic(err)
	}
	o := providers.Order{OrderNo: "Order100001", Params: json.RawMessage(`{"azoneId":"cn-tianjin-yfb1",
		"componentCode":"nas.onestor","dataEncryption":0,"instanceName":"instance","orderCategory":"NEW",
		"payType":"DAY_MONTH_USAGE","projectId":"rg-k0n2gf8ew1pd","regionId":"cn-tianjin-yfb",
		"renewType":"manualrenew","rentCount":1,"rentUnit":"month","specificationCode":"nas.capacity.nfs",
		"unit":"GB","vpc":"vpc-g2gmswxtthml"}`)}
	r, err := c.Submit(context.Background(), o)
	if err != nil {
		panic(err)
	}
	o.FirstAttempt = sb.Orders()[0].Created
	found, err := c.Lookup(context.Background(), o)
	if err != nil {
		panic(err)
	}
	fmt.Println(r.Status, found.Status, found.ProviderOrderID == r.ProviderOrderID, sb.Count("instance"))
	// Output: paid paid true 1
}
