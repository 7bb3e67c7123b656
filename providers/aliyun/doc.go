// Package aliyun submits orders to the Alibaba Cloud IoT Living Platform
// (生活物联网平台, Feiyan): it creates live-sharing plan orders (直播分享套餐)
// with /vision/customer/streaming/order/create and follows them up with
// order/get, order/pay and order/query, all through the platform's API
// gateway. The provider notes in docs/providers/aliyun.md give the
// endpoints, signing vectors, error tables and what the platform leaves
// undocumented.
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
// refused call created nothing. When /cloud/token itself is refused (any
// refusal, not a 5xx, a timeout, throttling or an undocumented answer,
// which stay retryable), the call fails Unauthenticated, "cloud/token
// refused": the configuration (or the clock, or the account, when the
// gateway's refusal says so: providers.ErrClock, ErrAccount) is wrong, no
// order call was sent, and the order waits for it rather than being
// errored.
//
// Redirects are never followed (not even by a caller's
// Options.HTTPClient, which is used as a copy that refuses them): a call
// redirected elsewhere would be sent again, signed headers, AppKey,
// cloudToken and userName included, to whatever host the Location names,
// and for a create that is a second create. A 3xx is unsure (see Errors).
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
// KAT-A1 and KAT-A2 (docs/providers/aliyun.md, "Signing") pin it byte for
// byte.
//
// # Outcome
//
// create answers the new order with paymentStatus 0 (unpaid), 1 (paid) or
// 2 (paying). 1 is reported paid; anything else pending, with the orderId
// as the ProviderOrderID. Lookup with that id reads order/get: 1 is paid,
// 2 pending (no NextCheck: the worker's backoff, doubling up to a minute,
// since an order may stay paying for hours), 0 pending and, when
// Options.AutoPay is set, Payable (NextCheck = PollInterval; without
// AutoPay, 10 × PollInterval). An order/get answer naming another order is
// Unavailable ("order/get answered for another order"), and a pay answer
// naming another order leaves ours pending with its payment status
// unknown: another order's status is never taken for ours.
//
// An order Lookup identified by matching the device's listing (Matched)
// is never Payable with AutoPay unless Options.PayMatched: one the
// device's user bought meanwhile matches just as ours would. Such an
// order is Held for a person whatever its payment status, paid included:
// this client never pays it, so one found paid was paid by someone else,
// and the worker does not record it paid without a person. Without
// AutoPay the device's user pays every order: a matched order found unpaid
// is not held (nothing here would pay it), and one found paid is held all
// the same (it may be an order the user bought and paid for themselves).
//
// Submit and Lookup never pay. The client is a providers.Payer: the
// caller pays a Payable order with Pay (order/pay), a step of its own and
// the only call that moves money, and polls with Lookup until it is paid.
// Pay refuses (FailedPrecondition) without AutoPay, which is off by
// default because paying spends money, or without a provider order id.
// A pay whose effect is unknown (a 5xx, a timeout after sending) is
// Ambiguous, like a create: the order is looked up. The worker records
// the pay as sent before the call leaves, and pays again only when a
// check a listing lag after it still finds the order unpaid, or after a
// pay refused before the platform acted (RateLimited: the gateway's own
// throttle; Unauthenticated).
//
// # Finding an order without its id
//
// create takes no client order number, so after an ambiguous create
// Lookup has to recognise the order among the device's orders, and
// nothing the listing is documented to carry names it or tells when it was
// created. The client is therefore a providers.Preparer: before the
// order's first create, Prepare lists every order of the device
// (order/query, all pages: one call per PageSize orders and one for the
// empty page that ends the list) and returns their ids, which the caller
// keeps and hands back in Order.Known. Past MaxPages pages Prepare fails
// with FailedPrecondition rather than return a partial snapshot; a
// listing that changes while it is read, or that cannot be read in full,
// is Unavailable. A refusal of the snapshot's first page is Unauthenticated
// (a configuration problem: the order waits), unless it refuses the
// order's own identity (2062, 2063, 2065, 2066: InvalidArgument):
// order/query is undocumented, and its params but the iotId are the
// client's.
//
// Lookup lists the device's orders the same way and judges each one
// (Rule). A listing ends at an empty page, never at a merely short page
// and never on the listed total, whose meaning is not documented. A page
// that brings no new order ends it only when it is not a full page and
// the totals confirm the end (every page gave the same total, equal to
// the distinct orders read: a server repeating its last page past the
// end); otherwise paging does not
// work. The total only checks the listing: when it is missing, or the
// same on every page and equal to the orders read, the listing is
// complete; the same on every page and more than the orders read, orders
// were not served (Unavailable); smaller, or varying, the listing is read
// again and must give the same orders on each page (in whatever order
// within a page, which is not documented), or the orders moved
// (Unavailable). Where pageNo starts is not documented either: a listing
// the total does not confirm reads page 0 too, until the server has shown
// where it counts from (never learnt from a listing that ended at a page
// served again), unless Options.PageBase (ALIYUN_PAGE_BASE: auto, 0 or 1)
// says. Only order/query refusing page 0 with a documented parameter error
// (460 or 2000) shows the server counts from 1; a page 0 that fails
// otherwise, twice, leaves the listing incomplete (Unavailable) whatever
// page 1 held, since on a server counting from 0 it holds the newest
// orders. A server shown to count from 1 still has page 0 read once a
// listing: one that counts from 0 later (nothing documents that it keeps
// counting as it did) would hide its newest orders there, ours among them
// (a not_found, a second create); page 0 holding orders other than page
// 1's has the base judged afresh. A device whose listing cannot be judged stays Unavailable (or
// Ambiguous) with a message naming that setting (docs/providers/aliyun.md
// has the whole procedure). Each order is
//
//   - excluded when it is in the snapshot, or when commodityCode or copies
//     differ (a commodityCode the same as ours by its letters and digits,
//     case and punctuation aside, is undecidable: nothing documents that a
//     listing gives the code back as sent);
//   - a candidate when orderId, commodityCode and copies are given and
//     nothing excludes it;
//   - undecidable otherwise, and also when the params name a userId and
//     the listing gives another: userId may be the platform identity or
//     the vendor's own account id, and nothing says the listing gives
//     back what was sent.
//
// A listing that lacks an order Order.Listed says it must show (one our
// creates on the device were answered with) is not whole: Unavailable.
//
// Orders that Order.Owned reports as another record's are left out: they
// are never this order. So are orders that name another device, and
// orders that name none but were listed or created for another device
// before (the client remembers which device each id was seen for: a
// server that ignores the listing's iotId filter lists every device's
// orders, and the documented order shape names no device); once the
// listing has shown that, an order naming no device is never the one
// found by matching (Ambiguous). Exactly one candidate and nothing undecidable is
// the order. No candidate and nothing undecidable, in a complete listing,
// is NotFound, and only then may the order be created again (after a
// create that may have been received, only with Options.RecreateUnlisted:
// which orders order/query lists is not documented, so NotFound does not
// prove such an order absent, UnlistedNotAbsent, and the worker holds it
// for a person). Everything
// else is an Ambiguous error that says why (several candidates, an
// undecidable order, more orders than MaxPages pages hold, a repeated
// page), and a person decides: a wrongly matched order is an order lost.
//
// Without a snapshot (Order.Known nil: an order whose first create
// predates Prepare), Lookup falls back to creation times: an order
// created before FirstAttempt − MatchMargin is excluded, one whose listing
// gives no creation time (gmtCreate or createTime, which no public
// document shows) is undecidable, and owned orders are left out the same
// way. A creation time is read as epoch seconds below 1e11 and epoch
// milliseconds from it on, as "2006-01-02 15:04:05" in UTC+8, or as RFC
// 3339; one before 2015 or more than a day ahead was misread and is
// unknown (undecidable), and one read without a zone excludes an order
// only when it falls before the bound by more than ZoneSlack (14 hours),
// makes it a candidate only when it falls ZoneSlack or more after the
// bound, and leaves it undecidable in between.
// Such lookups stay Ambiguous until checked by hand whenever the device
// holds an order of the same kind.
//
// What is left to a person: several new, unowned orders of the same
// commodity and copies on one device (one bought in the app meanwhile, or
// two records' creates ambiguous at once); devices with more orders than a
// listing may read. A listing that lags behind a create would make a
// NotFound premature; the worker does not believe one within its listing
// lag (ORDERWORKER_LISTING_LAG) of the last create. docs/providers/aliyun.md
// ("Identification") has the whole rule and its limits.
//
// # Errors
//
// Both layers are classified (docs/providers/aliyun.md, "Errors"). Only
// the codes and gateway messages the documents list keep their meaning;
// any other answer is unsure, which for the calls that act, create and
// pay, means the call may have acted (Ambiguous: the order is looked up,
// and created again only after a NotFound, paid again never) and for the
// others Unavailable. Gateway
// failures carry the reason in the X-Ca-Error-Message header and often no
// body, matched exactly on the reason before the first comma: Invalid
// Signature, Invalid AppKey and Empty Signature are Unauthenticated;
// Throttled by … Flow Control is RateLimited; Timestamp Expired and Invalid
// Timestamp are Unauthenticated with cause providers.ErrClock (nothing was
// done, and every attempt re-signs, so one that lasts is the worker's
// clock: the order waits for it), Quota Exhausted and User Arrears
// Unauthenticated with cause providers.ErrAccount (the order waits for the
// account to be put right; see GatewayCause);
// Internal Error, Failed To Call Backend Service, Service Unavailable and
// Async Service are unsure. Any other reason (a nonce refused as used,
// whose wording is not documented, Invalid Content-MD5, …) goes by the
// HTTP status as a bare one does. Platform failures carry a code in the
// JSON body: 401 Unauthenticated (after one token refresh), 403
// PermissionDenied, 404 FailedPrecondition, 400, 460, 2000, 2062, 2063,
// 2065 and 2066 InvalidArgument; 429 RateLimited for a read and unsure for
// create and pay (the error table calls it retryable, and nothing says it
// comes before the platform acted: a create or pay throttled after acting,
// sent again, would make or pay the order twice); 500, 503 and every other
// code (2064 included, which no public page shows) are unsure. A bare HTTP
// status (no reason, no body code) is Unauthenticated for 401 and, for
// 429, as the body code 429; any other, 4xx included, is unsure, as is an
// unreadable 2xx. Only the gateway's own throttle (Throttled by … Flow
// Control, a gateway-level failure) is RateLimited for create and pay. An answer that contradicts itself is unsure too: code
// 200 under an error status, or, for create and pay, a failure whose data
// names an orderId. For create and pay, an answer at HTTP 5xx is unsure
// whatever code or gateway reason it carries: the server may have failed
// after acting, and a refusal read as throttling or a refused token would
// be sent again without a lookup. An answer at HTTP 3xx (a redirect, never
// followed) is unsure for every call, whatever code or gateway reason it
// carries: a redirect proves nothing about what the server that sent it
// did. RetryAfter is taken from a Retry-After header when there is one.
// The gateway echoes its StringToSign, AppKey included, on a signature
// mismatch: messages are redacted of the AppKey, AppSecret, cloudToken and
// userName (and phone numbers masked) before they reach an error or a log
// line.
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
//     Unavailable (503), and whatever platform code it carries (460 at
//     HTTP 500, say): nothing documents that the gateway answers it before
//     the backend acted, and a wrongly "surely not created" order is
//     created twice. The cost is one order/query before the next create.
//   - Code 2064 appears in no public page (its meaning is unknown);
//     like every undocumented code it is Ambiguous for create and pay and
//     Unavailable for the other calls, never a permanent refusal: an order
//     wrongly errored may exist, and one created again is created twice.
//   - The apiVer of order/get, pay and query could not be retrieved; 1.0.0
//     is sent, as for create.
//   - The order/query data shape is undocumented: the order array is read
//     bare, under data, list, items, orderList or records, or, when none
//     of those holds one, under the one member that holds an array (two
//     or more: malformed); a one-element array holding a page object
//     (known list name, no order field: the shape a third-party client
//     types) is read as that page. The total is read under total or
//     totalCount. An entry with none of orderId, commodityCode or copies
//     is no order, and makes the page malformed (Unavailable). Only an
//     explicit array under a known name is a page on its own; an answer
//     that shows no array (data missing or null, a null or missing array,
//     an empty one under another name) is an empty page only when a total
//     confirms it: 0 on the first page, and on a later page the total
//     every page gave, equal to the orders read. Anything else is a
//     malformed order list (Unavailable), never "no orders". What the
//     total counts is not known, so it never ends a listing of itself
//     (see above).
//   - A page after the first that is refused is no refusal of the order
//     (the first page was read with the same params): Unavailable, never
//     InvalidArgument, FailedPrecondition or PermissionDenied, which would
//     error the order uncreated (an Unauthenticated refusal, of the
//     credentials, the clock or the account, holds the order as anywhere). When the totals confirm every order was
//     read, a documented parameter refusal (460, 2000) of the page past
//     the end ends the listing complete.
//   - One exception, for Prepare only: a first page whose data is missing
//     or null (code 200, so no total) is read again at once, and is a
//     device without orders, the snapshot empty, only when the second
//     answer has no data either. A server may answer a device without
//     orders so; read as malformed, it would keep Prepare Unavailable, and
//     every first order on that device would wait until its deadline and
//     be errored, never created. One such answer may be a fault, and a
//     wrong empty snapshot, kept for good, makes an older order of our
//     commodityCode and copies that no record owns look new: after a
//     create that failed ambiguously having made nothing, a lookup would
//     take it for ours (and pay it). A wrong absence in a lookup creates
//     the order twice. So Lookup never reads such an answer as an empty
//     page (Unavailable), nor does Prepare on a later page (unless the
//     totals confirm it), or on page 0 beside a page 1 holding orders
//     (that would teach every later listing to skip page 0).
//   - Members the client does not need never fail an answer: an
//     unreadable creation time, outOrderNo, status or paymentStatus is
//     left unknown. create's orderId is read first and kept whatever else
//     fails to read: an answer naming an order is an order created.
//   - orderId and outOrderNo are kept as strings, digits included when they
//     arrive as JSON numbers. paymentStatus values beyond 0–2 are pending.
//     The order status (0 valid, 1 expired, 2 frozen, 3 "creating" on the
//     cloud-storage counterpart) does not change the outcome, but an
//     unpaid order is Payable only when it is 0 or not given: what paying
//     an expired, frozen or otherwise unknown order does is not
//     documented, so such an order (or one whose status cannot be read) is
//     Held for a person instead.
//   - userName is personal data (often a phone number): the client reports
//     it through providers.Sensitive and never shows it in clear; the
//     platform itself echoes it masked.
//   - Timeouts: the documents give 3000 ms for create and 10000 ms for
//     pay (超时时间), without saying what they bound. They are read as
//     the gateway's own wait for the backend, not the client's round
//     trip: the client waits 5 s more (8 s and 15 s,
//     Options.CreateTimeout, PayTimeout), so that an answer the backend
//     gives just within its time is read rather than timed out (Ambiguous,
//     and a lookup). 10 s for the others, which document none.
package aliyun
