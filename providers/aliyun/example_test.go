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

// An order's life against the sandbox: created unpaid, paid by Lookup
// (AutoPay), and seen paid on the next look.
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
	r, err := c.Submit(ctx, o)
	fmt.Println(r.Status, r.Message, err)
	o.ProviderOrderID = r.ProviderOrderID
	for range 2 {
		r, err = c.Lookup(ctx, o)
		fmt.Println(r.Status, r.Message, err)
	}
	// Output:
	// pending created, unpaid <nil>
	// pending pay requested, paying <nil>
	// paid found, paid <nil>
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
