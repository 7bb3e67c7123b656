package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Orders a listing must show. A lookup that finds no order of ours in a
// provider's listing can believe the absence only if the listing is
// whole: one that leaves out orders (a filter whose default the documents
// do not give, unpaid orders not listed) would have the order created
// again. The orders this ledger's creates were answered with are the
// check: each is noted under its listing's scope (a provider's account
// and, for a listing per device, the device), and a lookup in that scope
// asks which of them were created in its window a listing lag ago or
// more, and holds the listing incomplete when it lacks any.

// maxListed is how many orders a scope keeps (the newest), and
// maxListedRead how many a lookup checks.
const (
	maxListed     = 64
	maxListedRead = 16
	listedTTL     = 7 * 24 * time.Hour
)

// listedKey names the scope's set of known orders (hashed: a scope may
// name a device).
func (l *Ledger) listedKey(provider, scope string) string {
	sum := sha256.Sum256([]byte("orderworker listed\x00" + provider + "\x00" + scope))
	return l.shards[0].prefix + "listed:" + provider + ":" + hex.EncodeToString(sum[:16])
}

// NoteListed notes that the provider order id exists in scope, created
// at (on Redis's clock) by a create whose params had the match key whose
// hash is key (RivalKey; "" for none): a listing of that scope whose
// window holds at, read a listing lag after it or later, shows it
// (Listed), and shows it under that match key.
func (l *Ledger) NoteListed(ctx context.Context, provider, scope, id, key string, at time.Time) error {
	if id == "" {
		return nil
	}
	member := id
	if key != "" {
		member += "\x00" + key
	}
	k := l.listedKey(provider, scope)
	_, err := l.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, k, redis.Z{Score: float64(at.UnixMilli()), Member: member})
		p.ZRemRangeByRank(ctx, k, 0, -maxListed-1)
		p.PExpire(ctx, k, listedTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("note a listed order: %w", err)
	}
	return nil
}

// Noted is an order NoteListed noted.
type Noted struct {
	ID string
	// Key is the hash of its create's match key (RivalKey); "" when none
	// was noted.
	Key string
}

// Listed returns up to maxListedRead orders noted in scope (NoteListed)
// as created from from to to: the oldest half and the newest half, oldest
// first (a listing cut short loses its oldest orders, one that lags its
// newest), each id once.
func (l *Ledger) Listed(ctx context.Context, provider, scope string, from, to time.Time) ([]Noted, error) {
	if to.Before(from) {
		return nil, nil
	}
	key := l.listedKey(provider, scope)
	by := &redis.ZRangeBy{Min: strconv.FormatInt(from.UnixMilli(), 10), Max: strconv.FormatInt(to.UnixMilli(), 10), Count: maxListedRead / 2}
	var oldest, newest *redis.StringSliceCmd
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		oldest = p.ZRangeByScore(ctx, key, by)
		newest = p.ZRevRangeByScore(ctx, key, by)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the listed orders: %w", err)
	}
	members := oldest.Val()
	n := newest.Val()
	for i := len(n) - 1; i >= 0; i-- {
		members = append(members, n[i])
	}
	var out []Noted
	for _, m := range members {
		id, k, _ := strings.Cut(m, "\x00")
		switch i := slices.IndexFunc(out, func(x Noted) bool { return x.ID == id }); {
		case i < 0:
			out = append(out, Noted{ID: id, Key: k})
		case out[i].Key == "":
			out[i].Key = k
		}
	}
	return out, nil
}
