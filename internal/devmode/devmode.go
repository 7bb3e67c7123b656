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
	"errors"
	"time"

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
	// WebhookSecret signs -dev's webhooks, whatever
	// ORDERWORKER_WEBHOOK_SECRET says: a receiver that holds the real
	// secret (an upstream app's, on this machine) must refuse the
	// sandboxes' outcome events. Public, like the demo credentials.
	WebhookSecret = "whsec_d29ya2VyIC1kZXYgd2ViaG9vayBrZXk6IHB1YmxpYw=="
)

// RedisURL is the URL of RedisAddr.
const RedisURL = "redis://" + RedisAddr + "/0"

// PendingPrefix starts the marker's value while worker -dev claims an
// empty Redis given with -dev-redis (it watches it for other writers
// first): marked for real processes, which refuse it, but not yet for
// -dev ones (Ready).
const PendingPrefix = "claiming: "

// Ready reports whether the Redis rdb talks to holds MarkerKey with its
// final value: -dev's, claimed and in use.
func Ready(ctx context.Context, rdb redis.UniversalClient) (bool, error) {
	v, err := rdb.Get(ctx, MarkerKey).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	return v == MarkerValue, err
}

// Marked reports whether the Redis rdb talks to holds MarkerKey.
func Marked(ctx context.Context, rdb redis.UniversalClient) (bool, error) {
	n, err := rdb.Exists(ctx, MarkerKey).Result()
	return n > 0, err
}

// WatchInterval is how often Watch asks for the marker.
const WatchInterval = time.Second

// Watch asks rdb for the marker every WatchInterval until ctx ends, and
// returns an error the first time it is not as want says (true: a -dev
// process's own Redis, which must keep it; false: a real one, which must
// not get it). Start-up checks alone miss a Redis that changes under a
// running process: emptied and marked by worker -dev (whose sandbox orders
// a real worker would then send to the real providers, and into which a
// real producer would write orders the sandboxes pay without creating),
// or emptied under worker -dev (which would then pay real orders written
// there). A failed read is no answer: Watch asks again.
func Watch(ctx context.Context, rdb redis.UniversalClient, want bool) error {
	t := time.NewTicker(WatchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		c, cancel := context.WithTimeout(ctx, WatchInterval)
		marked, err := Marked(c, rdb)
		cancel()
		switch {
		case err != nil || marked == want:
		case want:
			return errors.New("the -dev marker (" + MarkerKey + ") vanished from -dev's Redis (flushed, or restarted empty?): stopping, since an order written there now may be a real one, which the sandboxes would pay without creating it")
		default:
			return errors.New("this Redis now holds the -dev marker (" + MarkerKey + "): worker -dev took it over, and its sandbox orders would go to the real providers; stopping (point REDIS_URL at your own Redis, and -dev at another)")
		}
	}
}
