package tasks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// RESP2 returns opt with every client it makes speaking RESP2 instead of
// go-redis's default RESP3. orderworker uses nothing RESP3 adds (push
// messages, client-side caching), and under RESP3 go-redis checks each
// reply for pending push notifications, work every command pays for.
// Options it does not know are returned as they are.
func RESP2(opt asynq.RedisConnOpt) asynq.RedisConnOpt {
	switch opt.(type) {
	case asynq.RedisClientOpt, asynq.RedisFailoverClientOpt, asynq.RedisClusterClientOpt, ClusterOpt:
		return resp2Conn{RedisConnOpt: opt}
	}
	return opt
}

type resp2Conn struct {
	asynq.RedisConnOpt
	poolSize int // when not 0, the pool size per node
}

// WithPoolSize returns opt, as RESP2 returned it, with clients that keep up
// to n connections per node (go-redis's default is 10 per CPU). Options
// RESP2 does not know are returned as they are.
func WithPoolSize(opt asynq.RedisConnOpt, n int) asynq.RedisConnOpt {
	if c, ok := opt.(resp2Conn); ok {
		c.poolSize = n
		return c
	}
	return opt
}

// connMaxLifetime is how long the clients RESP2 and ClusterOpt make use
// a connection before they close it and dial anew (give or take a sixth,
// so that a pool's connections do not all re-dial at once). After a
// failover that moved an address (a DNS name, a proxy, a managed
// endpoint) and left the old master running, the connections made before
// still reach the old master: the ledger refuses the writes they carry (it
// checks the server that ran each durable write), and this bounds how long
// they keep producers and workers from writing, and how long a read can
// come from the old master. (Left without replicas for repl-backlog-ttl,
// an hour by default, the old master takes a new replication id; the
// ledger holds it as before, as a master restarted.) Cost: each connection is dialed again once a minute (a handshake
// of two or three commands).
const connMaxLifetime = time.Minute

// MakeRedisClient builds the client asynq's own MakeRedisClient would,
// with Protocol 2 and connections re-dialed after connMaxLifetime.
func (c resp2Conn) MakeRedisClient() any { return c.makeClient(connMaxLifetime) }

// makeClient is MakeRedisClient with connections re-dialed after life.
func (c resp2Conn) makeClient(life time.Duration) any {
	switch o := c.RedisConnOpt.(type) {
	case asynq.RedisClientOpt:
		return redis.NewClient(&redis.Options{
			Network: o.Network, Addr: o.Addr, Username: o.Username, Password: o.Password, DB: o.DB,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
			PoolSize: cmp.Or(c.poolSize, o.PoolSize), TLSConfig: o.TLSConfig, Protocol: 2,
			ConnMaxLifetime: life, ConnMaxLifetimeJitter: life / 6,
		})
	case asynq.RedisFailoverClientOpt:
		fc := redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: o.MasterName, SentinelAddrs: o.SentinelAddrs,
			SentinelUsername: o.SentinelUsername, SentinelPassword: o.SentinelPassword,
			Username: o.Username, Password: o.Password, DB: o.DB,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
			PoolSize: cmp.Or(c.poolSize, o.PoolSize), TLSConfig: o.TLSConfig, Protocol: 2,
			ConnMaxLifetime: life, ConnMaxLifetimeJitter: life / 6,
		})
		fc.AddHook(unknownMasterHook{o.MasterName})
		return fc
	case asynq.RedisClusterClientOpt:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: o.Addrs, MaxRedirects: o.MaxRedirects, Username: o.Username, Password: o.Password,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
			TLSConfig: o.TLSConfig, Protocol: 2, PoolSize: c.poolSize,
			ConnMaxLifetime: life, ConnMaxLifetimeJitter: life / 6,
		})
	case ClusterOpt:
		return newClusterClient(o.RedisClusterClientOpt, 2, c.poolSize, life)
	}
	return c.RedisConnOpt.MakeRedisClient()
}

// ClusterOpt is what a redis-cluster:// URL parses to: asynq's cluster
// options, with clients that notice a new master at once. go-redis's
// cluster client asks the cluster where the slots are only on a MOVED
// reply or once a minute, so after a master dies it would keep dialing the
// dead address for up to a minute; these clients ask again whenever a
// command fails on the network, and every few seconds.
type ClusterOpt struct{ asynq.RedisClusterClientOpt }

// MakeRedisClient returns a *redis.ClusterClient.
func (o ClusterOpt) MakeRedisClient() any {
	return newClusterClient(o.RedisClusterClientOpt, 0, 0, connMaxLifetime)
}

// clusterStateReload is how often a cluster client re-reads the slots
// without a reason to.
const clusterStateReload = 5 * time.Second

func newClusterClient(o asynq.RedisClusterClientOpt, protocol, poolSize int, life time.Duration) *redis.ClusterClient {
	c := redis.NewClusterClient(&redis.ClusterOptions{
		PoolSize: poolSize,
		Addrs:    o.Addrs, MaxRedirects: o.MaxRedirects, Username: o.Username, Password: o.Password,
		DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
		TLSConfig: o.TLSConfig, Protocol: protocol, ClusterStateReloadInterval: clusterStateReload,
		ConnMaxLifetime: life, ConnMaxLifetimeJitter: life / 6,
	})
	c.AddHook(reloadOnNetError{c})
	return c
}

// reloadOnNetError has the cluster client re-read the slots when a command
// or pipeline fails on the network (a master gone, a refused dial).
type reloadOnNetError struct{ c *redis.ClusterClient }

func (h reloadOnNetError) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadOnNetError) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if isNetError(err) {
			h.c.ReloadState(ctx)
		}
		return err
	}
}

func (h reloadOnNetError) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if isNetError(err) || slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return isNetError(c.Err()) }) {
			h.c.ReloadState(ctx)
		}
		return err
	}
}

// isNetError reports whether err is a network failure (not a Redis reply).
func isNetError(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false // the caller gave up: nothing says the node is gone
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// CapTimeouts returns opt with its clients' dial, read and write timeouts
// at most d (go-redis's defaults: 5 s each; the read timeout also bounds a
// new connection's handshake, and go-redis does not cut a socket read at
// its context's deadline), so that a command bounded by d is not held
// longer by a Redis that accepts connections and never answers. A durable
// write's WAIT is read under the read timeout too: a ledger on these
// clients needs a WaitTimeout well under d (the enqueue command gives it
// at most half). Call it before RESP2; options it does not know, and a d
// of 0 or less, return opt as it is.
func CapTimeouts(opt asynq.RedisConnOpt, d time.Duration) asynq.RedisConnOpt {
	if d <= 0 {
		return opt
	}
	capped := func(v, def time.Duration) time.Duration {
		if v == 0 {
			v = def
		}
		if v < 0 { // go-redis: no timeout, or no deadline set: as chosen
			return v
		}
		return min(v, d)
	}
	const dial, rw = 5 * time.Second, 5 * time.Second
	switch o := opt.(type) {
	case asynq.RedisClientOpt:
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = capped(o.DialTimeout, dial), capped(o.ReadTimeout, rw), capped(o.WriteTimeout, rw)
		return o
	case asynq.RedisFailoverClientOpt:
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = capped(o.DialTimeout, dial), capped(o.ReadTimeout, rw), capped(o.WriteTimeout, rw)
		return o
	case asynq.RedisClusterClientOpt:
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = capped(o.DialTimeout, dial), capped(o.ReadTimeout, rw), capped(o.WriteTimeout, rw)
		return o
	case ClusterOpt:
		c := o.RedisClusterClientOpt
		c.DialTimeout, c.ReadTimeout, c.WriteTimeout = capped(c.DialTimeout, dial), capped(c.ReadTimeout, rw), capped(c.WriteTimeout, rw)
		return ClusterOpt{c}
	}
	return opt
}

// UnknownMasterError is the error of every command of a client whose
// sentinels know no master by its name (the URL's ?master=). go-redis
// reports it wrapping redis.Nil, which every reader takes for "no such
// key": a mistyped master name would make orders look absent (status
// "no order", an empty list, a 404) instead of Redis unusable. This error
// does not wrap redis.Nil.
type UnknownMasterError struct{ msg string }

func (e *UnknownMasterError) Error() string { return e.msg }

// unknownMasterHook turns go-redis's dial error for a master no sentinel
// knows into an *UnknownMasterError, on the failover clients RESP2 makes.
type unknownMasterHook struct{ name string }

func (h unknownMasterHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		cn, err := next(ctx, network, addr)
		switch {
		case err == nil:
		case everySentinelNil(err):
			return nil, &UnknownMasterError{msg: fmt.Sprintf("sentinel: no master named %q (the URL's ?master=)", h.name)}
		case errors.Is(err, redis.Nil):
			// Some sentinels answered nil, others could not be reached:
			// Redis is not known to lack the master, and no reader may
			// take the error for "no such key". The same text, without
			// redis.Nil inside.
			return nil, &sentinelDialError{msg: err.Error(), errs: notNil(err)}
		}
		return cn, err
	}
}

func (unknownMasterHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (unknownMasterHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// sentinelDialError is a failover client's dial error that go-redis gave
// wrapping redis.Nil while not every sentinel answered nil: its text, and
// the sentinels' other errors (the network's: a transient failure), without
// redis.Nil (see UnknownMasterError).
type sentinelDialError struct {
	msg  string
	errs []error
}

func (e *sentinelDialError) Error() string   { return e.msg }
func (e *sentinelDialError) Unwrap() []error { return e.errs }

// notNil returns the errors joined in err (through its wraps) that are
// not redis.Nil.
func notNil(err error) []error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			var out []error
			for _, one := range j.Unwrap() {
				if !errors.Is(one, redis.Nil) {
					out = append(out, one)
				}
			}
			return out
		}
	}
	return nil
}

// everySentinelNil reports whether err, a failover client's dial error,
// comes from sentinels that all answered nil for the master's name: with
// one of them unreachable instead, Redis is not known to lack the master,
// and the error stays as go-redis gave it.
func everySentinelNil(err error) bool {
	if !unknownMasterNil(err) {
		return false
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, one := range j.Unwrap() {
				if !errors.Is(one, redis.Nil) {
					return false
				}
			}
			return true
		}
	}
	return true
}
