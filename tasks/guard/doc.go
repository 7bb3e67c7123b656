// Package guard stands between the order handler and the providers: a rate
// limiter shared by every worker through Redis, and a circuit breaker per
// provider. *Guard implements tasks.Guard; cmd/worker wires it in.
//
// The handler asks Wait before each provider call. Wait never sleeps: it
// returns 0 (go ahead) or how long to wait, and the handler hands that
// delay to asynq, which runs the task again later without spending the
// order's retry budget. Done reports each call's result to the breaker.
//
// # Rate limits
//
// Options.Limits holds a Limit (requests per second and a burst) per key.
// A key is a provider name ("tencent") or a provider and an account
// ("tencent/acct-1"). Wait(ctx, "tencent/acct-1") is held to both the
// account's limit and the provider's, when either is configured; a key
// with neither is unlimited and costs no Redis round trip.
//
// Each limit is one Redis key (orderworker:{guard}:rate:KEY) holding the
// theoretical arrival time of the generic cell rate algorithm (GCRA). A Lua
// script reads the time from Redis itself (TIME), so the workers' clocks do
// not matter, checks every limit that applies and, only when all of them
// admit the call, advances them together. A refused call changes nothing
// and gets back the exact time until it would be admitted. Over any
// interval of length t the limiter admits at most Burst + Rate*t calls per
// key, however many workers share it. Keys expire when idle. All keys share
// the {guard} hash tag, so the script also runs on Redis Cluster.
//
// When Redis cannot be reached, Wait returns the error for a limited key
// (the handler then waits for Redis, as it does for its ledger): nothing
// is sent to a provider unmetered.
//
// # Circuit breaker
//
// Each provider has a breaker with three states (also the value of the
// orderworker_breaker_state gauge):
//
//   - Closed (0): calls go through. Options.FailureThreshold consecutive
//     provider-down results open it.
//   - Open (2): Wait returns the rest of Options.Cooldown, so orders wait
//     instead of burning their retries against a provider that is down.
//   - Half-open (1): after the cool-down, Options.HalfOpenCalls trial calls
//     at a time go through; everyone else is told to wait a tenth of the
//     cool-down (at least a second). A successful call closes the breaker,
//     a provider-down result opens it again for another cool-down. A trial
//     whose result is not reported within Options.TrialTimeout frees its
//     place, so a lost report cannot hold the breaker half-open.
//
// Only results that say the provider is down count as failures: the codes
// Unavailable, Ambiguous and Unknown (providers.CodeOf), which include
// timeouts. Answers about one order (InvalidArgument, NotFound,
// PermissionDenied, FailedPrecondition), bad credentials (Unauthenticated)
// and throttling (RateLimited, which the handler retries after the
// provider's delay) neither count as failures nor reset the count; neither
// does a call cut short because the worker itself cancelled it (shutdown).
// A success (nil error) resets the count.
//
// The breaker counts consecutive failures rather than a failure ratio: one
// worker may make only a few calls a minute to a provider, too few for a
// ratio over a window to mean much, and a run of timeouts or refused
// connections is the signature of an outage either way.
//
// # Why the breaker is per process
//
// Breaker state lives in each worker's memory, not in Redis. Every worker
// observes the provider through its own calls, so a network fault on one
// host opens only that host's breaker while the others keep submitting, and
// a Redis outage can never wedge a breaker open or closed: the breaker
// needs nothing but the process's own calls. The price is that when a
// provider is down for everyone, each worker makes its own
// FailureThreshold failed calls before its breaker opens; that is cheap
// and safe, because any order whose submission may have gone through is
// looked up before it is ever submitted again.
package guard
