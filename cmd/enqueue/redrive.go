package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os/user"
	"strings"

	"github.com/orderworker/orderworker/tasks/ops"
)

// redrive re-drives the errored orders that surely created nothing at the
// provider (and match), printing one JSON line per matching order:
// redriven, would_redrive (-dry-run), skipped (it may exist at the
// provider: never re-driven) or refused (it changed meanwhile). It exits 1
// when any was refused.
func redrive(ctx context.Context, c cmdEnv, args []string) int {
	fs := flag.NewFlagSet("enqueue redrive", flag.ContinueOnError)
	subUsage(fs, `Usage:
  enqueue [flags] redrive -state errored [-provider P] [-reason-match TEXT] [-older-than D] [-dry-run] [-by NAME] [-note TEXT]

Moves errored orders that surely created nothing at the provider back to
submission, their failure budget reset, and queues their tasks. Orders that
may exist at the provider are never re-driven: they are listed as "skipped".
Prints one JSON line per matching order, newest first: "status" is redriven,
would_redrive (with -dry-run, which changes nothing), skipped or refused (the
order changed meanwhile). Run it with -dry-run first. Exits 1 when any order
was refused.
`)
	state := fs.String("state", "", "errored (required: only errored orders are re-driven)")
	provider := fs.String("provider", "", "only this provider's orders")
	reasonMatch := fs.String("reason-match", "", "only orders whose reason contains this text (any case)")
	olderThan := fs.Duration("older-than", 0, "only orders errored at least this long ago (15m, 2h)")
	dryRun := fs.Bool("dry-run", false, "list what would be re-driven; change nothing")
	by := fs.String("by", "", "who re-drives, recorded in each order's history (default: the operating system's user name; a service account such as root or nonroot is recorded as such, with a warning)")
	note := fs.String("note", "", "why (recorded in each order's history)")
	pos, err := parseArgs(fs, c, args)
	if err != nil {
		return parseFailed(err)
	}
	if len(pos) > 0 {
		return c.fail(exitError, "redrive takes no arguments, got %q", pos)
	}
	if *state != "errored" {
		return c.fail(exitError, "-state errored is required: only errored orders are re-driven")
	}
	if strings.TrimSpace(*by) == "" {
		// The history names who re-drove: the operating system's user
		// when it is a person's; a service account's or none is recorded
		// as such, with a warning, rather than refused (a container's
		// operator runs as one).
		u := osUser(c.getenv)
		switch {
		case u == "":
			*by = "an unnamed operator (no -by)"
		case serviceAccount(u):
			*by = u + " (a service account; no -by)"
		default:
			*by = u
		}
		if !*dryRun && (u == "" || serviceAccount(u)) {
			fmt.Fprintf(c.stderr, "enqueue redrive: no -by given: the history records the re-drive as by %q; name who re-drives with -by\n", *by)
		}
	}
	if *olderThan < 0 {
		return c.fail(exitError, "-older-than cannot be negative")
	}
	o, closeOrders, err := c.orders()
	if err != nil {
		return c.fail(exitError, "%s", err)
	}
	defer closeOrders()
	enc := json.NewEncoder(c.stdout)
	counts := map[string]int{}
	err = o.Redrive(ctx, ops.RedriveArgs{Provider: *provider, ReasonMatch: *reasonMatch, OlderThan: *olderThan,
		DryRun: *dryRun, By: *by, Note: *note}, func(r ops.Redriven) error {
		counts[r.Status]++
		if r.Unacknowledged != "" {
			counts["unacknowledged"]++
		}
		return enc.Encode(r)
	})
	if err != nil {
		return c.fail(exitError, "%s", err)
	}
	done := fmt.Sprintf("%d re-driven", counts[ops.StatusRedriven])
	if *dryRun {
		done = fmt.Sprintf("dry run: %d would be re-driven", counts[ops.StatusWouldRedrive])
	}
	fmt.Fprintf(c.stderr, "enqueue: %s, %d skipped (they may exist at the provider), %d refused\n",
		done, counts[ops.StatusSkipped], counts[ops.StatusRefused])
	if n := counts["unacknowledged"]; n > 0 {
		fmt.Fprintf(c.stderr, "enqueue: %d of the re-drives were %s\n", n, ops.NotAcknowledged)
	}
	if counts[ops.StatusRefused] > 0 {
		return exitRejected
	}
	return exitOK
}

// serviceAccount reports whether name is an account a container or a
// service runs as rather than a person's: not a name for the history.
func serviceAccount(name string) bool {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "root", "nonroot", "nobody", "daemon", "admin", "ubuntu", "debian", "app", "orderworker":
		return true
	}
	return false
}

// osUser is the operating system's name for whoever runs the command
// ($USER, else the account's name), "" when it cannot tell.
func osUser(getenv func(string) string) string {
	if u := strings.TrimSpace(getenv("USER")); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}
