package tasks

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/hibiken/asynq"
)

// ParseRedisURL parses a Redis URL into asynq's connection options:
// asynq's own forms (redis://, rediss:// for TLS, redis-socket://,
// redis-sentinel://) and redis-cluster://[user:password@]host:port,host:port.
// Its errors never include the password.
func ParseRedisURL(raw string) (asynq.RedisConnOpt, error) {
	if rest, ok := strings.CutPrefix(raw, "redis-cluster://"); ok {
		u, err := url.Parse("redis://" + rest)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("redis url %s: want redis-cluster://host:port,host:port", RedactURL(raw))
		}
		opt := asynq.RedisClusterClientOpt{Addrs: strings.Split(u.Host, ",")}
		if u.User != nil {
			opt.Username = u.User.Username()
			opt.Password, _ = u.User.Password()
		}
		return opt, nil
	}
	opt, err := asynq.ParseRedisURI(raw)
	if err != nil {
		return nil, fmt.Errorf("redis url %s: want redis://, rediss://, redis-sentinel:// or redis-cluster://", RedactURL(raw))
	}
	return opt, nil
}

// RedactURL hides a password in a URL.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}
