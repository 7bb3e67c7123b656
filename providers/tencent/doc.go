// Package tencent submits orders to Tencent Cloud IoT Explorer's service API
// (物联使能 API): ServiceCreateOrder, with ServiceGetOrderList as the
// existence check. The provider notes in docs/providers/tencent.md give the
// calls, the signing vectors (KAT-T1 to KAT-T3), the error table and what
// the API leaves undocumented.
//
// Every call is a POST of one flat JSON body to
// {endpoint}/api/exploreropen/serviceapi holding the common parameters
// (Action, RequestId, AppKey, Timestamp, Nonce), the business parameters and
// Signature: Base64(HMAC-SHA1(AppSecret, "k1=v1&k2=v2…")) over every other
// parameter sorted by name, with raw (not URL-encoded) values and empty
// strings left out. A fresh Timestamp, Nonce and RequestId are drawn for
// every attempt, at send time; a process's Nonces are a random stride
// apart from a random start, so none repeats among its own requests (one refused as
// used reads as a replay of the same request: ambiguous). Redirects are never followed (not even by a
// caller's Options.HTTPClient, which is used as a copy that refuses them):
// a create redirected elsewhere would be a second create, its signed body
// and AppKey sent to whatever host the Location names.
//
// # Identification
//
// An order is identified by its OrderNo, the producer's order number, which
// Submit sends. The ledger keys records by it, so no other record can hold
// it, and Order.Owned has nothing to check (an order has no provider order
// id). Lookup lists ServiceGetOrderList filtered by this OrderNo alone
// (not by CustomerId: see Lookup), every page (at most 10), and takes a
// listed order with this OrderNo for ours only when the CustomerId,
// ItemId, ItemNum and ItemVNO it lists agree with the params. Exactly one
// such order is paid; none, in a listing surely read in full, is
// NotFound. An order with this OrderNo but other params (another system
// using the same number), the same OrderNo twice, or a listing too long
// to read is Ambiguous: a person decides. A listing that cannot be shown
// complete (pages that repeat orders, an end short of its Total, an
// answer without an Orders array but a first page that counts it empty
// or, in the Response wrapper, names nothing but RequestId, Orders and
// Total) is Unavailable, and so is every failed listing: a lookup is
// NotFound only from an order list. A listing too
// long to read, one that cannot be shown complete, and one whose later
// page fails are paid instead when the part read holds our order once and
// nothing like it: the order exists.
//
// # Errors
//
// The document defines no HTTP status and no throttling answer, and lists
// five error codes (InternalError, ErrorRequiredParamNotFound,
// InvalidAction, InvalidParameterValue, InvalidParameterValue.InvalidJSON),
// shown inside the Response wrapper; a bad signature is shown as
// InvalidParameterValue "Signature 无效". A create is taken as refused
// (nothing created) only by one of these codes but InternalError, in the
// wrapper (or in the SDK's data), at an HTTP status below 500 (a 5xx may
// come from a server that failed after creating the order, whatever its
// code) and not a 3xx (a redirect proves nothing about what the server
// that sent it did), and not by every such refusal (one naming a Nonce,
// or saying the order exists, is looked up; see the provider notes).
// Every other failed answer to a create is Ambiguous, so the order is
// looked up before any new create: a 3xx, a status other than 2xx without
// such a code (429, 401, 403, 404 included), a code the document does not
// list (Tencent Cloud's common RequestLimitExceeded, LimitExceeded,
// AuthFailure*, UnauthorizedOperation*, InvalidParameter* included), a
// code outside the wrapper, and a body that is not one JSON value. A
// listing keeps its own reading of statuses (a 3xx Unavailable whatever
// its body, 429 RateLimited, 401 and 403 Unauthenticated, other 4xx
// InvalidArgument, others Unavailable) and reads an undocumented code as
// Unavailable, but AuthFailure*, which is Unauthenticated like the bad
// signature: a listing created nothing, and a credentials problem holds
// the order for the configuration.
//
// # Where the sources disagree
//
//   - ItemVNO is missing from the create page the project started from but
//     required by the live API's page; it is accepted as optional and sent
//     whenever given.
//   - Responses come in two shapes: {"Response":{…}} as documented for
//     serviceapi, and {code, msg, data} as the official Node SDK parses.
//     Both are accepted, and so is the Response without its wrapper (a
//     top-level object carrying Error, Orders, Total or Data), whose error
//     code is never taken for a refusal of a create.
//   - ServiceGetOrderList's Offset, Limit and Total are named, not
//     defined: the first page is asked for without Offset, Limit is
//     stepped down (100, 50, 20, 10) as listings are refused for their
//     parameters (later lookups start at the Limit taken) and
//     dropped only once all are (an empty page to a
//     request without Limit then proves nothing but by a Total), and
//     only a listing that surely holds everything proves an order absent.
//   - No throttling code is documented for serviceapi: HTTP 429 and
//     RequestLimitExceeded* (Tencent Cloud's common throttle code) are
//     taken for throttles (LimitExceeded, perhaps a quota, is not); a create
//     answered so is still looked up (Ambiguous), marked
//     providers.ErrThrottled (no failure spent, no news of the service's
//     health), and a listing answered so is RateLimited.
//   - ServiceCreateOrder is not documented as idempotent, and
//     ServiceGetOrderList reports no payment status: an order it lists is
//     taken as created and paid (ServiceCreateOrder answers only OK).
package tencent
