package logmask

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
)

// redisLog is the logger go-redis's own messages go to (RedisLogger).
var redisLog atomic.Pointer[slog.Logger]

// RedisLogger is a go-redis logger (redis.SetLogger) that writes go-redis's
// own messages (a pool that cannot dial, say) as warnings through the
// logger SetRedisLogger last gave, in the command's format, rather than as
// unstructured lines among its JSON ones; before that, through
// slog.Default. Install it once, in main, before any Redis client exists,
// so that every message of the process goes through it.
type RedisLogger struct{}

// Printf implements go-redis's internal.Logging.
func (RedisLogger) Printf(_ context.Context, format string, v ...any) {
	log := redisLog.Load()
	if log == nil {
		log = slog.Default()
	}
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	if !strings.HasPrefix(msg, "redis:") {
		msg = "redis: " + msg
	}
	log.Warn(msg, "from", "go-redis")
}

// SetRedisLogger makes RedisLogger write through log.
func SetRedisLogger(log *slog.Logger) { redisLog.Store(log) }
