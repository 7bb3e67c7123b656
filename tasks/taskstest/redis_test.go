package taskstest

import (
	"context"
	"strings"
	"testing"
)

func TestRestartKeepsDataWithAOF(t *testing.T) {
	s := StartRedis(t, &Options{AOF: true})
	c := s.Client(t)
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Restart(t)
	got, err := c.Get(ctx, "k").Result()
	if err != nil || got != "v" {
		t.Fatalf("after restart: Get(k) = %q, %v; want v", got, err)
	}
}

// ORDERWORKER_TEST_REDIS_URL gives the tests that dial by address the
// server it names, never go-redis's default (localhost:6379), and one that
// address alone cannot reach (another database, TLS, credentials) is
// refused, its password not shown.
func TestExternalServerURL(t *testing.T) {
	s, err := external("redis://127.0.0.1:7399/0")
	if err != nil || s.Addr != "127.0.0.1:7399" || s.URL() != "redis://127.0.0.1:7399/0" {
		t.Errorf("external = %+v, %v; want the address 127.0.0.1:7399", s, err)
	}
	if s, err := external("redis://127.0.0.1:7399"); err != nil || s.Addr != "127.0.0.1:7399" {
		t.Errorf("external without a database = %+v, %v; want database 0 at 127.0.0.1:7399", s, err)
	}
	for _, u := range []string{"redis://127.0.0.1:7399/3", "rediss://127.0.0.1:7399/0", "redis://:s3cret-pw@127.0.0.1:7399/0",
		"redis://user:s3cret-pw@127.0.0.1:7399/0", "unix:///tmp/redis.sock", "redis://:s3cret-pw%zz@127.0.0.1:7399/0"} {
		_, err := external(u)
		if err == nil {
			t.Errorf("external(%q): nil error; want it refused", u)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("external(%q): %v shows the password", u, err)
		}
	}
}
