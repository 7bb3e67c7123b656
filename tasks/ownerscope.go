package tasks

import (
	"context"
	"errors"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks/ledger"
)

// OwnerScope is the scope order rec's provider order ids are unique within
// (providers.IDScoper), read from its params (opened with sealer); ok is
// false when its provider keeps ids by scope and neither its params (sealed
// with a key sealer lacks) nor its record (Record.IDScope) tell it.
func OwnerScope(set *providers.Set, sealer *Sealer, rec *ledger.Record) (scope string, ok bool) {
	if _, scoped := set.IDScope(rec.Provider, nil); !scoped {
		return rec.IDScope, true
	}
	clear, err := sealer.Open(rec.Params)
	if err != nil {
		return rec.IDScope, rec.IDScope != ""
	}
	parsed, err := set.Parse(rec.Provider, clear)
	if err != nil || parsed == nil {
		return rec.IDScope, rec.IDScope != ""
	}
	scope, _ = set.IDScope(rec.Provider, parsed)
	return scope, true
}

// MoveLegacyOwner moves the owner entry of provider order id written by id
// alone, by a version that kept ids so, under its order's scope (see
// ledger.Ledger.MoveOwner), where a provider whose ids are unique only
// within a scope looks: each such entry counts for its own order's device,
// not for every device (an order of another device answered with the same
// id was taken for the old entry's, and created again), nor for none (one
// of the same device was recorded under the other's order). It returns the
// entry's order when that order's scope cannot be told (its params sealed
// with a key this process lacks, its record gone): the entry stays, and
// counts in every scope. "" otherwise.
func MoveLegacyOwner(ctx context.Context, l *ledger.Ledger, set *providers.Set, sealer *Sealer, provider, id string) (string, error) {
	owner, err := l.Owner(ctx, provider, id)
	if err != nil || owner == "" {
		return "", err
	}
	rec, err := l.Get(ctx, ledger.Ref{Provider: provider, OrderNo: owner})
	if err != nil {
		return "", err
	}
	if rec == nil {
		return owner, nil
	}
	scope, ok := OwnerScope(set, sealer, rec)
	if !ok {
		return owner, nil
	}
	var owned *ledger.OwnedError
	if err := l.MoveOwner(ctx, provider, id, owner, scope); err != nil && !errors.As(err, &owned) {
		return "", err
	}
	// (Owned in its scope by another order already: that entry stands,
	// and this one, stale, is passed over.)
	return "", nil
}
