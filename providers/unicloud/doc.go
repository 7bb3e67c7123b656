// Package unicloud submits orders to UniCloud (紫光云) OpenAPI, NAS
// CreateOrder, with the transaction API's OrderDetail and QueryOrders to
// reconcile an order whose outcome is unknown. The provider notes in
// docs/providers/unicloud.md give the calls, the signing vectors (KAT-U0,
// KAT-U1), the error table and what the API leaves undocumented.
//
// # Wire format
//
// CreateOrder is a POST to {endpoint}/openapi/nas whose query holds the
// common parameters (Format=json, Version=2020-07-30, AccessKeyId,
// SignatureMethod=HMAC-SHA1, SignatureVersion=2.0, Timestamp in UTC as
// 2006-01-02T15:04:05Z, a fresh UUID SignatureNonce), Action=CreateOrder,
// regionId and Signature. The order's params are the JSON body
// (Content-Type application/json;charset=UTF-8), which is not signed.
// OrderDetail and QueryOrders are GETs to {endpoint}/transaction signed the
// same way.
//
// The signature (Alibaba RPC style) is Base64(HMAC-SHA1(secret+"&",
// METHOD&%2F&percentEncode(CanonicalQuery))), where CanonicalQuery is every
// query parameter but Signature, names and values RFC 3986 encoded
// (A-Za-z0-9-_.~ kept, upper-case hex, space as %20), sorted by encoded name
// in byte order. The query is sent exactly as signed, Signature appended
// percent-encoded. Timestamp and nonce are drawn for every attempt, at send
// time. The UniCloud Go SDK's quirks are not copied: it leaves ':' and the
// like unescaped in any value that holds a space or '+', formats local time
// with a literal Z, and sends query values unencoded.
//
// # Params
//
// The documented body fields, each checked by Fields: the codes and ids
// (azoneId, componentCode, orderCategory, payType, projectId, regionId,
// renewType, rentUnit, specificationCode, unit, vpc) must look like
// identifiers, [A-Za-z0-9][A-Za-z0-9._-]*, which also keeps regionId, the
// one that goes into the query, free of spaces and '+'; dataEncryption is 0
// or 1 (documented: "whether the data is encrypted"); rentCount is 1 to
// 365 [judgement: a year of days, thirty of months; no bound is
// documented];
// instanceName is up to 64 printable characters with no leading or
// trailing space, because Lookup identifies orders by it and a provider
// that trims it would leave our order unidentified. No enum is
// imposed on orderCategory, payType, renewType or rentUnit: the documents
// only give examples (NEW, DAY_MONTH_USAGE, manualrenew, month). unit is
// optional, and so is regionName (in the documented example body, not in
// the table: a display name, passed through in the body); every other
// field is required; unknown fields are refused.
//
// # Answers and errors
//
// The classifier reads, in order (a code compared lower-cased and
// without '_', '.', '-' and spaces: INTERNAL_ERROR is InternalError):
//
//   - For CreateOrder, an answer that carries a Res.OrderId or Status true,
//     whatever else it says: at a 2xx without Auth false it is the create's
//     answer (see below); at any other status (429, 4xx, 5xx), with Auth
//     false, or with a part that cannot be read, Ambiguous: the order may
//     exist and is looked up before anything is sent again. The OrderId is
//     kept in the error's text and in Result.ProviderOrderID, returned
//     with the error.
//   - For CreateOrder, HTTP 5xx: Ambiguous whatever its code, a throttling
//     code included (no idempotency key; the client cannot tell a 503
//     before creation from a 500 after, and a create read as throttled
//     would go out again without a lookup).
//   - HTTP 429, or a Throttling*, RequestLimitExceeded* or TooManyRequests
//     code at any other status: for CreateOrder, Ambiguous with
//     providers.ErrThrottled (no document says a throttle comes before the
//     order is made: looked up, no failure spent; created again on a
//     not-found while every create of the order was answered so, see
//     order.Policy.HoldUnlisted, unless the lookup's window holds an order
//     made meanwhile, under another name, that no order of the ledger
//     owns: see providers.Order.Throttled); for the queries, RateLimited, honouring
//     Retry-After (seconds or a date).
//   - HTTP 5xx on the queries: Unavailable. Timeouts and resets after the
//     request was written are classified by providers.Send (Ambiguous for
//     CreateOrder).
//   - An unreadable body (the API answers JSON): at 401 or a status that
//     refuses the request itself (400, 403, 404, 405, 413, 414, 415, 431:
//     see notTaken), Unauthenticated, a configuration problem (a wrong
//     endpoint or path, or a refusal in front of the API), unless it
//     speaks of a reused nonce or an internal error (of unknown effect);
//     on CreateOrder any other 4xx (409, 422, …) is Ambiguous, on the
//     queries InvalidArgument; a 2xx or 3xx is of unknown effect
//     (Ambiguous for CreateOrder). Redirects are not followed by the
//     default HTTP client.
//   - Auth:false: Unauthenticated.
//   - A 4xx, or a 200 with Status false (or, with no Status, a Code other
//     than Success), by code and message: a reused SignatureNonce is
//     Ambiguous for CreateOrder (our nonces are fresh, so the same request
//     arrived twice and the first delivery may have acted); InternalError,
//     ServiceUnavailable, SystemBusy and the like are Ambiguous for
//     CreateOrder, Unavailable for the queries, whatever their message
//     says; an invalid or expired Timestamp (a code naming it, or without
//     a code or with an InvalidParameter code a message naming it) is
//     Unauthenticated with cause providers.ErrClock (refused before
//     acting; every attempt re-signs, so one that lasts is the worker's
//     clock: the order waits for it);
//     InvalidParameter about "Signature", a code naming the signature or
//     the access key (InvalidAccessKeyId*, SignatureDoesNotMatch, …) or an
//     authentication failure, or HTTP 401, are Unauthenticated; so is, at
//     HTTP 400, 401 or 403 with no code (or a number) or an
//     InvalidParameter code, a body that names the signature or the access
//     key anywhere (signature, accesskey, access key, 签名; a parameter
//     echoed back, Signature=…, or a JSON key does not count), since the
//     documented refusal's body shape is not documented; a reused nonce
//     said anywhere is read before it. A wrong endpoint or path is
//     Unauthenticated too: a code about the action, API, version or
//     method (InvalidAction.NotFound, …), or HTTP 404 or 405 with no code.
//     A 404 or 405 with another code was written by the API after reading
//     the request: Ambiguous on CreateOrder. On the queries an
//     order-not-found code (OrderNotExist, …) is NotFound (OrderDetail
//     only: see Lookup).
//     On CreateOrder any other code but ProductConfigError, at a 200 or
//     at a 4xx that is not one of the statuses above, is Ambiguous: no
//     document says such a refusal comes before the order was created
//     (SYSTEM_ERROR, CreateFailed, arrears, an order-not-found code, …).
//     Otherwise, on CreateOrder, arrears or a balance too low are
//     Ambiguous (they may be found when the order is charged, after it
//     was made), and so is, on CreateOrder, HTTP 403 or a Forbidden* code
//     that names no permission (Forbidden.RiskControl, a quota: a check
//     that may run on the order once it exists); Forbidden, Forbidden.RAM,
//     NoPermission* or a code naming a permission or authorization, HTTP
//     403 with no code, any 403 or Forbidden* on the queries and, on the
//     queries, arrears and a balance too low are Unauthenticated with
//     cause providers.ErrAccount (the account's to fix: the order waits
//     for it); anything else, such as ProductConfigError
//     (documented) or MissingParameter, is InvalidArgument.
//   - CreateOrder succeeds only with Status true and a Res.OrderId at a
//     2xx, the OrderId kept as a string even when the JSON holds a number;
//     any other 2xx that is not a refusal is Ambiguous. The order is then
//     paid, and Result.ProviderOrderID is the OrderId.
//   - A placeholder is no id, wherever an id is read (Res.OrderId, an
//     order's Id or OrderNo): 0, a negative number, or a string that is
//     blank, zeros only ("0", "000") or a negative number. A refusal
//     carrying "OrderId":0 keeps its meaning (ProductConfigError stays
//     InvalidArgument), never "the order may exist" under an id no
//     OrderDetail can confirm.
//
// Provider text reaches an error only masked (access key id and secret,
// phone numbers) and truncated; transport errors never carry the URL.
//
// # Lookup
//
// With Order.ProviderOrderID, Lookup asks OrderDetail; an order it returns
// is paid, only when it carries the Id asked: an Order without an Id (an
// empty record, a placeholder) or with another is Unavailable. A found
// order (by id or by listing) that carries a CancelType of any value, or
// whose OrderStatus names a cancellation or a failure (cancel, fail,
// close, invalid, refund, expire, reject, revoke, void, terminate, abort,
// delete, reverse, stop, or the Chinese words for them, in any case), is
// not paid: Ambiguous, left to a person (neither
// paid nor NotFound, which would create it again). The values of both
// are not documented. Should
// OrderDetail deny an id CreateOrder itself returned, that is Unavailable,
// not NotFound: a lagging billing system is no reason to submit again. A
// placeholder ProviderOrderID is no id: the order is looked up as without
// one.
//
// Without it, Lookup lists QueryOrders from FirstAttempt minus LookupMargin
// to now plus LookupMargin ("now" the later of the client's clock and
// Order.Now, the clock FirstAttempt is on; 15 minutes by default: an assumed clock
// tolerance, which no UniCloud document states; a provider clock off by
// more could put our order outside the window), formatted yyyy-MM-dd
// HH:mm:ss, twice: in UTC+8 and in UTC (the times carry no zone; a server reading them as UTC lists our
// order only for the second), each time reading every page (Page from 1,
// Size PageSize, or 20 for the rest of a listing whose first page was
// refused as a bad parameter) until it has TotalCount entries or an empty
// page, at most MaxPages; more is Ambiguous, and a TotalCount that shrinks
// while paging, or a page after the first that brings no order not
// already read (by Id), is Unavailable: the server ignores Page, or the
// list moved by a whole page. An entry read twice (an Id listed before,
// or no Id on a page after the first) never counts toward TotalCount: it
// stands for an order no page showed, the new one at the front of a
// newest-first list read while orders are created, or, where the sort is
// unstable (ties on CreateTime under LIMIT/OFFSET), an older one that fell
// between the pages and may be ours. A listing that met one is complete
// only when the orders it read, told apart by Id, are as many as the
// latest TotalCount; short of that it is read again from its first page
// (at most twice more), and then is Unavailable, as is one that met a
// repeat without a TotalCount: an order left waiting costs less than one
// created twice. A page is read only from an answer that shows its list
// (an OrderList with an Order key, or a TotalCount of 0 with no OrderList
// or an empty OrderList object); any other answer (an error envelope at HTTP 200, an object without an
// order list, a list under another key, an order-not-found code) is
// Unavailable, never an empty page. Where Page starts is not documented: a list that ends at an empty
// page without a TotalCount, short of it, or at a page that brought no
// new order reads page 0 too, in case the server counts from 0 ("from
// 0" is remembered only once page 1,
// read again, is still empty, and forgotten when page 1 repeats page 0;
// an empty page 1 with a page 0 that cannot be read is Unavailable). No
// other filter is sent: a filter whose vocabulary is not documented could
// hide our order. Then, for each listed order:
//
//  1. It is ruled out when it surely is not ours: its CreateTime is
//     readable and outside the window, as the instant it names when it
//     carries a zone (RFC 3339), else by both its UTC+8 and its UTC
//     reading. OrderCategory and ProductCategory rule nothing out (their
//     values in an answer are not documented).
//  2. An order that Order.Owned reports as another record's under its Id
//     is that record's, whatever its name: it is passed over, without an
//     OrderDetail call. The documents list both Id and OrderNo and do not
//     say which one CreateOrder's OrderId is, so ownership is asked under
//     the OrderNo too (an OrderNo the list lacks is asked for once
//     OrderDetail shows it), but an order held under its OrderNo only is
//     not ruled out: were the two numbered apart, ours could carry an
//     OrderNo equal to another order's Id, and ruled out it would be
//     created twice. Unless its names are all another instance's, it is
//     unidentified. Only orders that could be ours are checked (not those
//     whose names, listed or cached, are all another instance's). Names
//     cached from before Order.ShownFrom do not count in a lookup from
//     then on, whose not-found is believed: the order is detailed again,
//     unless they were read Order.ListingLag or more after the client
//     first read the order's (settled).
//     An order's names are assumed to be as sent once the listing lag has
//     passed since its create; before it, a server may show another (the
//     file system's id while the order is provisioned).
//  3. Otherwise it is identified by the instance names it carries (an
//     InstanceName on the listed order, or else, through OrderDetail, on
//     the order or any of its Items), at most MaxDetails detail calls; an
//     OrderDetail that answers for another Id, or without one, is
//     Unavailable. It is ours
//     when one name equals the params' instanceName exactly, and
//     unidentified when it carries none, or one that may be ours as the
//     provider stored or shows it (equal, as written, in NFKC or by base
//     letters without accents, once space is trimmed and collapsed, case
//     folded and full-width ASCII read as ASCII, or a
//     prefix of ours or ours of it, a cut mark aside, the shorter having
//     at least min(8, length of ours) characters): the documents give
//     the name no length, character set or promise to echo it unchanged.
//     A name empty once normalised and stripped of cut marks is no name:
//     an order left with none is detailed, then unidentified.
//     It is another's only when none of its names can be ours. One with
//     our name is unidentified too when it is
//     uncertain: before the window by the UTC+8 reading of a zone-less
//     CreateTime (not by the UTC one), its CreateTime unreadable, an OrderCategory
//     word other than the params' orderCategory, or a ProductCategory
//     other than Options.ProductCategory.
//
// A listing that lacks an order Order.Listed says it must show (one our
// creates were answered with, in the window) is not whole: Unavailable,
// whatever else it holds. One that shows such an order under names none
// of which can be the name its create sent (ListedOrder.Name, judged as
// in step 3), by its Id and by its OrderNo alike, does not show the names
// sent (another field shown as the name, names changed since): Ambiguous,
// whatever else it holds, since its names rule nothing in or out. For
// that check alone, such an order listed without names is detailed
// (within MaxDetails; its names remembered): the one
// exception to step 2's "without an OrderDetail call"; a name blank or
// only a cut mark is none, as in step 3. A detail not there yet, without
// names yet (asked again 15 s later), or failing, leaves it unjudged: the
// check never fails a lookup. Cached names that would judge it misnamed
// are read again first when more than 15 s old (kept when that fails or
// the detail shows no names).
//
// Exactly one order of ours and none unidentified: found, paid, with its
// Id, and Result.Matched (identified by matching the listing, not by our
// create's id), and Held for a person unless Options.TakeMatched (another's
// order made with our name after our first attempt matches the same way;
// checks by that id hold it too, Order.Matched); Ambiguous when it is shown cancelled or failed, as above. None of ours and none unidentified: NotFound. Anything else is an
// Ambiguous error that says how many of each it saw: an order wrongly
// matched is an order lost, one wrongly missed is an order paid twice.
//
// The limits of these rules: the public QueryOrders and OrderDetail pages
// do not show where, if anywhere, an order records the instance name (the
// documented example's Items are cut off); the sandbox puts it on Items.
// If the live API carries no name, every order of the window that is not
// ruled out is unidentified and Lookup answers Ambiguous rather than guess.
// A server that writes a zone-less CreateTime in UTC makes every order with
// our name uncertain, so every Lookup without an id is Ambiguous there. Two
// unowned orders with the same instance name in one window are Ambiguous,
// and left to a person; so is an unowned order whose name differs from
// ours only by case or space, or is a prefix of ours or ours of it
// ("web" and "web-2"), within the window. A Lookup without FirstAttempt
// cannot bound the search and is Ambiguous. The rules assume the billing system
// lists an order as soon as CreateOrder has created it; if it lags, the
// caller must wait before reconciling.
//
// What the rules cannot see: an order with our instance name made outside
// the worker within LookupMargin before the first attempt, alone in the
// window, is taken for ours. The client is not a providers.Preparer: a
// snapshot here would be every order of the account in the window, read
// before every create, which at volume costs more pages than the lookups
// it protects. Instance names should be unique per order, and none the
// prefix of another in use at the same time.
//
// # Where the sources disagree
//
//   - SignatureVersion: the common-parameter table says 1.0, the NAS
//     example and the Go SDK use 2.0. 2.0 is sent (the sandbox accepts
//     both).
//   - regionName appears in the doc's example body ("天津研发-YFB区")
//     but not in the parameter table: it is accepted as an optional
//     display name (printable, up to 64 characters) and passed through in
//     the body, which is not signed; it is never derived from regionId.
//   - Res is typed List in the table and shown as an object in the
//     example: both are read.
//   - QueryOrders types OrderCategory as Integer in the request and String
//     in the answer, while CreateOrder takes NEW: it is never sent as a
//     filter and compared only when both sides are words.
//   - OrderStatus and CancelType values are not documented: a found order
//     is paid unless it carries a CancelType or an OrderStatus naming a
//     cancellation or a failure (Ambiguous); its OrderStatus and PayTime
//     are reported in Result.Message.
//   - The transaction API's Version is not documented: 2020-07-30 is sent
//     for every call, as the same signing is documented for both.
//   - No throttling or internal-error code is documented for UniCloud; the
//     Alibaba-style codes the API mirrors are recognised.
//   - CreateOrder takes no client order number, so the producer's order_no
//     is not sent; it stays in the worker's ledger.
package unicloud
