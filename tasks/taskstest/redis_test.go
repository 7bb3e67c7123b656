package taskstest

import (
	"context"
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
