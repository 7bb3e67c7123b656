package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks/ledger"
	"github.com/orderworker/orderworker/tasks/ops"
)

// resolve records an operator's decision about an order the worker cannot
// settle and prints the record after, as one JSON line with its history.
func resolve(ctx context.Context, c cmdEnv, args []string) int {
	fs := flag.NewFlagSet("enqueue resolve", flag.ContinueOnError)
	subUsage(fs, `Usage:
  enqueue [flags] resolve PROVIDER ORDER_NO -as paid|absent|errored [-provider-order-id ID] -note TEXT -by NAME

Records what you found at the provider about an order the worker cannot settle
(unknown, or pending): paid (with the provider's order id), absent (from
unknown, or from pending for an order found by matching ("matched": true) that
no worker paid, when the order matched is another's: the order goes back to
submission and its task is queued, a matched id is forgotten; its reason reads
"an operator found no such order at the provider: NOTE"), or errored (its
reason, which its event carries, reads "operator: NOTE"; also for an order
queued or submitting while no create of it may have been received: stopped
before it is made, nothing created). Phone numbers in the
note are masked; so are the order's own personal data (with the data key)
and the credentials this process reads. Prints the record after as a JSON line. Exits 1 with the reason
when the decision is not legal for the order as it stands.
`)
	as := fs.String("as", "", "the decision: paid, absent or errored")
	providerOrderID := fs.String("provider-order-id", "", "with -as paid: the provider's id of the order")
	note := fs.String("note", "", "why: what you found at the provider (required)")
	by := fs.String("by", "", "who decides (required)")
	pos, err := parseArgs(fs, c, args)
	if err != nil {
		return parseFailed(err)
	}
	if len(pos) != 2 {
		fs.Usage()
		return exitError
	}
	ref := ledger.Ref{Provider: pos[0], OrderNo: pos[1]}
	if !slices.Contains(validators().Names(), ref.Provider) {
		return c.fail(exitError, "provider %q: want one of %s", providers.MaskPhones(ref.Provider), strings.Join(validators().Names(), ", "))
	}
	resolution, err := ops.ParseResolution(*as)
	if err != nil {
		return c.fail(exitError, "-as: %s", err)
	}
	switch {
	case strings.TrimSpace(*note) == "" || strings.TrimSpace(*by) == "":
		return c.fail(exitError, "-note and -by are required: say why, and who decides")
	case resolution == ledger.ResolvePaid && strings.TrimSpace(*providerOrderID) == "" && validators().HasOrderIDs(ref.Provider):
		return c.fail(exitError, "-as paid needs -provider-order-id: the provider's id of the order (%s gives every order one)", ref.Provider)
	case resolution != ledger.ResolvePaid && *providerOrderID != "":
		return c.fail(exitError, "-provider-order-id goes with -as paid only")
	case strings.TrimSpace(*providerOrderID) != "":
		if err := validators().CheckOrderID(ref.Provider, strings.TrimSpace(*providerOrderID)); err != nil {
			return c.fail(exitError, "-provider-order-id: %s", err)
		}
	}
	o, closeOrders, err := c.orders()
	if err != nil {
		return c.fail(exitError, "%s", err)
	}
	defer closeOrders()
	tc, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res, err := o.Resolve(tc, ref, ops.ResolveArgs{As: resolution, ProviderOrderID: *providerOrderID, Note: *note, By: *by})
	if err != nil {
		return c.actionError(err, ref)
	}
	if err := json.NewEncoder(c.stdout).Encode(res); err != nil {
		return c.fail(exitError, "%s", err)
	}
	if res.Warning != "" {
		fmt.Fprintf(c.stderr, "enqueue: %s resolved: %s\n", ref, res.Warning)
	}
	if res.RequeueError != "" {
		fmt.Fprintf(c.stderr, "enqueue: %s resolved, but its task was not run now (a task it has runs at its time; the reconciler queues one for an order without): %s\n", ref, res.RequeueError)
	}
	if res.Unacknowledged != "" {
		fmt.Fprintf(c.stderr, "enqueue: %s resolved: %s\n", ref, res.Unacknowledged)
	}
	return exitOK
}
