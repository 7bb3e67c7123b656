invalid value "abc" for flag -older-than: parse error
Usage:
  enqueue [flags] redrive -state errored [-provider P] [-reason-match TEXT] [-older-than D] [-dry-run] [-by NAME] [-note TEXT]

Moves errored orders that surely created nothing at the provider back to
submission, their failure budget reset, and queues their tasks. Orders that
may exist at the provider are never re-driven: they are listed as "skipped".
Prints one JSON line per matching order, newest first: "status" is redriven,
would_redrive (with -dry-run, which changes nothing), skipped or refused (the
order changed meanwhile). Run it with -dry-run first. Exits 1 when any order
was refused.

Flags:
  -by string
    	who re-drives, recorded in each order's history (default: the operating system's user name; a service account such as root or nonroot is recorded as such, with a warning)
  -dry-run
    	list what would be re-driven; change nothing
  -note string
    	why (recorded in each order's history)
  -older-than duration
    	only orders errored at least this long ago (15m, 2h)
  -provider string
    	only this provider's orders
  -reason-match string
    	only orders whose reason contains this text (any case)
  -state string
    	errored (required: only errored orders are re-driven)
