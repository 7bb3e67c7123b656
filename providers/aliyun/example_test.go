package aliyun_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/aliyun"
	"github.com/orderworker/orderworker/providers/aliyun/sandbox"
)

// An order's life against the sandbox: created unpaid (payable, since
// AutoPay is on), paid with Pay, and seen paid by Lookup.
func Example() {
	sb := sandbox.New("24881234", "example-secret", "a123ProjectX")
	srv := httptest.NewServer(sb)
	defer srv.Close()

	c, err := aliyun.New(aliyun.Options{
		Endpoint:  srv.URL,
		AppKey:    "24881234",
		AppSecret: "example-secret",
		ProjectID: "a123ProjectX",
		AutoPay:   true,
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	o := providers.Order{
		OrderNo:      "Order100001",
		Params:       json.RawMessage(`{"iotId":"bZGD54swRgFkEs000101","commodityCode":"streamingResource_20_10","copies":1}`),
		FirstAttempt: time.Now(),
	}
	// The device's orders before the first create, so that after an
	// ambiguous create Lookup can tell the new one from them.
	o.Known, err = c.Prepare(ctx, o)
	fmt.Println("known before create:", len(o.Known), err)
	r, err := c.Submit(ctx, o)
	fmt.Println(r.Status, r.Message, r.Payable, err)
	o.ProviderOrderID = r.ProviderOrderID
	r, err = c.Pay(ctx, o)
	fmt.Println(r.Status, r.Message, r.Payable, err)
	r, err = c.Lookup(ctx, o)
	fmt.Println(r.Status, r.Message, r.Payable, err)
	// Output:
	// known before create: 0 <nil>
	// pending created, unpaid true <nil>
	// pending pay requested, paying false <nil>
	// paid found, paid false <nil>
}

// Workers sharing credentials share the cloudToken through Redis.
func ExampleNewRedisTokenStore() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	c, err := aliyun.New(aliyun.Options{
		AppKey:    "24881234",
		AppSecret: "from-the-environment",
		ProjectID: "a123ProjectX",
		Tokens:    aliyun.NewRedisTokenStore(rdb, nil),
	})
	if err != nil {
		panic(err)
	}
	_ = c
}
