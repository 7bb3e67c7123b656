// Package guard stands between the worker and the providers: a rate
// limiter shared by every worker through Redis, applied to each HTTP
// request, and a circuit breaker per provider, consulted before each
// operation. *Guard implements tasks.Guard; cmd/worker wires it in.
//
// The two work at different levels on purpose. A provider's quota counts
// requests, and one operation may make many (a UniCloud lookup reads up to
// 50 QueryOrders pages and makes up to 100 OrderDetail calls; an Aliyun
// call may first fetch a cloudToken), so the limiter sits in the HTTP
// transport each provider client is built on (Transport). The breaker
// judges whether a provider is up from what operations conclude (a lookup
// that pages through a hundred answers and cannot single the order out
// says nothing against the provider), so it stays with the handler: Wait
// before each provider operation, Done with its result. Wait never sleeps:
// it returns 0 (go ahead) or how long to wait, and the handler hands that
// delay to asynq, which runs the task again later without spending the
// order's retry budget.
//
// # Rate limits
//
// Options.Limits holds a Limit (requests per second and a burst) per
// provider; a provider without one is unlimited, and its Transport is the
// underlying transport itself: no Redis round trip.
//
// Each limit is one Redis key (orderworker:{guard}:rate:PROVIDER) holding
// the theoretical arrival time of the generic cell rate algorithm (GCRA).
// Before each request, a Lua script reads the time from Redis itself
// (TIME), so the workers' clocks do not matter, and reserves the request's
// place: the time it may be sent, now or later. The request waits for it in
// the transport. Over any interval of length t the limiter lets at most
// Burst + Rate*t requests go per provider, however many workers share it.
// A request waits only as long as leaves it half of the time to its
// context's deadline (a minute without one); when its place would come
// later, nothing is reserved and the request fails before it is sent with
// a *providers.Error of code RateLimited and the wait as RetryAfter, which
// the handler treats as throttling. Keys expire when idle. They carry the
// {guard} hash tag, so the script also runs on Redis Cluster.
//
// When Redis cannot be reached, a request to a limited provider fails the
// same way (RateLimited, nothing sent): nothing goes to a provider
// unmetered.
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
// and throttling (RateLimited, by the provider or by the limiter, which the
// handler retries after the delay it names; and a create or pay throttled
// where it may have acted, Ambiguous with providers.ErrThrottled, which
// is providers.ErrNoNews) neither count as failures nor reset the count; neither
// does a call cut short because the worker itself cancelled it (shutdown).
// The handler reports a read the provider answered at a 2xx in full but
// that could not single the order out (Ambiguous) as a success, and one
// it answered unusably (Unavailable at a 2xx without an error code: a
// malformed or unending listing) as providers.ErrNoNews, which counts
// neither way.
// A success (nil error) resets the count.
//
// The breaker counts consecutive failures rather than a failure ratio: one
// worker may make only a few calls a minute to a provider, too few for a
// ratio over a window to mean much, and a run of timeouts or refused
// connections is the signature of an outage either way.
//
// # Throttling
//
// A provider's throttling (RateLimited from the provider, not from this
// worker's own limiter; or a create or pay throttled where it may have
// acted, providers.ErrThrottled) leaves the breaker's state alone but
// sets this process's own rate of requests to the provider, which
// Transport keeps (see adaptive): cut to adaptiveCut of what the process
// sent (later, of the rate in force) at once when most requests were
// refused, or after a trial when a share of them was throttled (kept when
// the share refused at the rate cut falls as a limit's would, undone when
// it does not: throttles whatever the pace), raised while requests use it
// and no trial is under way, dropped adaptiveForget after the last cut. A
// throttle within adaptiveBurst of a cut, or before its Retry-After ended,
// is of its burst. Answers of requests this worker's
// own limits held back say nothing either way. Guard.Rate reads it.
// Disabled breakers disable it too.
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
