// Package devmode holds what worker -dev and enqueue -dev agree on: where
// -dev's own Redis and HTTP API listen, the marker that tells a Redis
// holding only -dev's data, and the data key that seals -dev's params.
//
// -dev pays every order it sees through its sandboxes, so none of its
// addresses is ever one a real producer may have been given: its Redis
// and its API listen on ports of their own (never REDIS_URL's or
// ORDERWORKER_API_ADDR's, which a -dev worker started while the real
// service is down would otherwise take over, and whose orders it would
// pay), and enqueue -dev writes only to a Redis that holds the marker.
package devmode

import (
	"context"

	"github.com/redis/go-redis/v9"
)

const (
	// RedisAddr is where worker -dev's embedded Redis listens (a free
	// loopback port instead when this one is taken), and where enqueue
	// -dev looks for it.
	RedisAddr = "127.0.0.1:" + RedisPort
	RedisPort = "6390"
	// APIAddr is where worker -dev serves the producers' HTTP API (a
	// free loopback port instead when this one is taken).
	APIAddr = "127.0.0.1:" + APIPort
	APIPort = "8090"
	// AdminAddr is where worker -dev's admin server (dashboard, metrics,
	// health) listens unless -admin-addr names one (a free loopback port
	// instead when this one is taken).
	AdminAddr = "127.0.0.1:" + AdminPort
	AdminPort = "9091"
	// MarkerKey is the key a Redis holding only -dev's data carries: the
	// embedded one always, one given with -dev-redis once -dev found it
	// empty. A Redis with data but without it holds somebody else's
	// orders, which -dev never touches.
	MarkerKey = "orderworker:dev"
	// MarkerValue says what the marker is, to whoever finds it.
	MarkerValue = "this database holds only data written by orderworker's worker -dev"
	// DataKey seals params in -dev when ORDERWORKER_DATA_KEY is unset;
	// like the sandboxes' demo credentials it protects nothing real.
	DataKey = "ZGV2LW9ubHkgZGF0YSBrZXksIG5vdCBhIHNlY3JldCE="
)

// RedisURL is the URL of RedisAddr.
const RedisURL = "redis://" + RedisAddr + "/0"

// Marked reports whether the Redis rdb talks to holds MarkerKey.
func Marked(ctx context.Context, rdb redis.UniversalClient) (bool, error) {
	n, err := rdb.Exists(ctx, MarkerKey).Result()
	return n > 0, err
}
