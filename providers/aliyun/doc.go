// Package aliyun submits orders to the Alibaba Cloud IoT Living Platform
// (生活物联网平台, Feiyan): it creates live-sharing plan orders (直播分享套餐)
// with /vision/customer/streaming/order/create and follows them up with
// order/get, order/pay and order/query, all through the platform's API
// gateway.
//
// # Wire format
//
// Every call is a POST of one JSON envelope to {endpoint}{path}:
//
//	{"id":"<uuid>","version":"1.0",
//	 "request":{"apiVer":"1.0.0","cloudToken":"…"},
//	 "params":{"iotId":"…","commodityCode":"…","copies":1,…}}
//
// The cloudToken goes in "request", never in "params". It comes from
// /cloud/token (params {grantType:"project", res:ProjectID}), lives for
// expireIn (or expiresIn) milliseconds, 2 hours by default, and asking for
// a new one invalidates the previous one for every process using the same
// project. A TokenStore therefore holds it: MemoryTokenStore for a single
// process, RedisTokenStore (keys under "orderworker:aliyun:token:") for a
// fleet of workers. The store refreshes a token before it expires, one
// process at a time under a Redis lock (SET NX PX, compare-and-delete),
// while the others keep using the current token or, when there is none,
// wait for the new one instead of asking their own. When the platform
// refuses a call's token (code 401 in the body) the client invalidates
// that token only if it is still the current one (compare-and-delete, so a
// stampede of refusals causes one refresh) and retries the call once: a
// refused call created nothing.
//
// # Signing
//
// The gateway's digest authentication (SignRequest, a pure function of the
// request, credentials, time and nonce) signs, at send time for every
// attempt:
//
//	POST \n Accept \n Content-MD5 \n Content-Type \n Date \n
//	X-Ca-Key:… \n X-Ca-Nonce:… \n X-Ca-Signature-Method:HmacSHA256 \n X-Ca-Timestamp:… \n
//	/vision/customer/streaming/order/create
//
// with Base64(HMAC-SHA256(AppSecret, ·)) in X-Ca-Signature, the signed
// header names in X-Ca-Signature-Headers, a fresh X-Ca-Timestamp (epoch
// ms) and X-Ca-Nonce (UUID), and Content-MD5 over the exact body bytes.
// The JSON body is not part of the Url line; only Content-MD5 covers it.
// KAT-A1 and KAT-A2 from the provider notes pin it byte for byte.
//
// # Outcome
//
// create answers the new order with paymentStatus 0 (unpaid), 1 (paid) or
// 2 (paying). 1 is reported paid; anything else pending, with the orderId
// as the ProviderOrderID. Lookup with that id reads order/get: 1 is paid,
// 2 pending (NextCheck = PollInterval), and 0 is paid with order/pay when
// Options.AutoPay is set (reporting pay's answer), pending otherwise
// (NextCheck = 10 × PollInterval). AutoPay is off by default because paying
// spends money. A pay failure worth retrying leaves the order pending; a
// permanent one (forbidden, arrears) is returned.
//
// # Finding an order without its id
//
// create takes no client order number, so after an ambiguous create Lookup
// has only the order's params and FirstAttempt to go on. It lists every
// order of the device (order/query, pages of PageSize up to MaxPages; the
// list ends at an empty page or once the listed total is reached, never at
// a merely short page) and judges each one (Match):
//
//   - excluded when commodityCode or copies differ, when the params name a
//     userId and the listing gives a different one, or when it was created
//     before FirstAttempt − MatchMargin (1 minute by default, for clock
//     skew);
//   - a candidate when orderId, commodityCode, copies and the creation
//     time are all given and nothing excludes it;
//   - undecidable otherwise (a field needed to recognise it is missing).
//
// Exactly one candidate and nothing undecidable is the order. No candidate
// and nothing undecidable is NotFound, and only then may the order be
// created again. Everything else is an Ambiguous error that says why: more
// than one candidate, an undecidable order, or more orders than MaxPages
// pages hold. The client never guesses: a wrongly matched order is an
// order lost. Lookup without FirstAttempt is a FailedPrecondition.
//
// Limitations of this rule: two orders of the worker's own for the same
// device, commodity and copies (and userId) whose first attempts fall
// within the margin of each other cannot be told apart and need a human.
// The public documents show no creation-time field in order listings; this
// client reads gmtCreate or createTime (epoch ms, "2006-01-02 15:04:05" in
// UTC+8, or RFC 3339), which the sandbox provides. If the live API lists
// neither, every earlier order of the same kind on the device is
// undecidable and such lookups stay Ambiguous until checked by hand, which
// costs time but never money. A listing that lags behind a create would
// make a NotFound premature; the worker's retry backoff puts time between
// an ambiguous create and its lookup.
//
// # Errors
//
// Both layers are classified (PROVIDERS.md §2.4–2.5). Gateway failures
// carry the reason in the X-Ca-Error-Message header and often no body:
// Invalid Signature, Invalid AppKey, Empty Signature and Invalid
// Content-MD5 are Unauthenticated; Throttled by … Flow Control is
// RateLimited; Timestamp Expired, Invalid Timestamp and nonce errors are
// Unavailable (nothing was done, and the next attempt re-signs); Quota
// Exhausted and User Arrears are PermissionDenied; otherwise the HTTP
// status decides. Platform failures carry a code in the JSON body: 401
// Unauthenticated (after one token refresh), 403 PermissionDenied, 404
// FailedPrecondition, 429 RateLimited, 400, 460, every other 4xx and
// 2000–2999 InvalidArgument. Every 5xx, unknown code and unreadable 2xx is
// Ambiguous for create and Unavailable for the other calls. RetryAfter is
// taken from a Retry-After header when there is one. The gateway echoes its
// StringToSign, AppKey included, on a signature mismatch: messages are
// redacted of the AppKey, AppSecret, cloudToken and userName (and phone
// numbers masked) before they reach an error or a log line.
//
// # Where the sources disagree, and what was decided
//
//   - Header list separator: the Feiyan signing page says colons, every
//     official SDK uses commas. Commas.
//   - Signed header name case: the Java and Python demos use X-Ca-Key, the
//     Node SDK x-ca-key; both produce accepted signatures (KAT-A1, KAT-A2).
//     The client signs Go's canonical X-Ca-Key form; the sandbox verifies
//     names exactly as listed, so it accepts both.
//   - Content-Type: application/octet-stream; charset=utf-8, as the official
//     iotx client sends a raw JSON body (and as the KATs use).
//   - cloudToken: "optional" on the streaming pages, required for every API
//     but /cloud/token on the how-to-call page. Always sent. A third-party
//     Go client puts it in params, against the documents; Validate rejects
//     a cloudToken param as an unknown field.
//   - Token lifetime spelt expireIn and expiresIn: both parsed; 2 hours when
//     neither is given.
//   - A failed gateway signature check is 401 on one page and 400 with
//     "Invalid Signature" in the error table: both are Unauthenticated.
//   - A 5xx on create is Ambiguous even when the gateway says Service
//     Unavailable (503): nothing documents that the gateway answers it
//     before the backend acted, and a wrongly "surely not created" order is
//     created twice. The cost is one order/query before the next create.
//   - Code 2064 appears in no public page; like the documented 2xxx codes it
//     is treated as a permanent InvalidArgument.
//   - The apiVer of order/get, pay and query could not be retrieved; 1.0.0
//     is sent, as for create.
//   - The order/query data shape is undocumented: the order array is read
//     bare or under data, list, items, orderList or records, with the total
//     under total or totalCount.
//   - orderId and outOrderNo are kept as strings, digits included when they
//     arrive as JSON numbers. paymentStatus values beyond 0–2 are pending;
//     the order status (valid, expired, frozen, "creating" on the
//     cloud-storage counterpart) does not change the outcome.
//   - userName is personal data (often a phone number): the client reports
//     it through providers.Sensitive and never shows it in clear; the
//     platform itself echoes it masked.
//   - Timeouts: 3000 ms for create and 10000 ms for pay, as documented
//     (Options.CreateTimeout, PayTimeout); 10 s for the others, which
//     document none.
package aliyun
