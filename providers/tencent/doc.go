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
// every attempt, at send time.
//
// # Identification
//
// An order is identified by its OrderNo, the producer's order number, which
// Submit sends. The ledger keys records by it, so no other record can hold
// it, and Order.Owned has nothing to check (an order has no provider order
// id). Lookup lists ServiceGetOrderList for this OrderNo and CustomerId,
// every page (at most 10), and takes a listed order with this OrderNo for
// ours only when the CustomerId, ItemId, ItemNum and ItemVNO it lists
// agree with the params. Exactly one such order is paid; none, in a
// listing surely read in full, is NotFound. An order with this OrderNo but
// other params (another system using the same number), the same OrderNo
// twice, or a listing too long to read is Ambiguous: a person decides. A
// listing that cannot be shown complete (pages that repeat orders, an end
// short of its Total, an answer naming no Orders) is Unavailable.
//
// # Where the sources disagree
//
//   - ItemVNO is missing from the create page the project started from but
//     required by the live API's page; it is accepted as optional and sent
//     whenever given.
//   - Responses come in two shapes: {"Response":{…}} as documented for
//     serviceapi, and {code, msg, data} as the official Node SDK parses.
//     Both are accepted, and so is the Response without its wrapper (a
//     top-level object carrying Error, Orders, Total or Data).
//   - ServiceGetOrderList's Offset, Limit and Total are named, not
//     defined: the first page is asked for without Offset, Limit is
//     dropped once a listing is refused for its parameters, and only a
//     listing that surely holds everything proves an order absent.
//   - No throttling code is documented for serviceapi; RequestLimitExceeded
//     and LimitExceeded (Tencent Cloud's common codes) and HTTP 429 are
//     treated as throttling.
//   - ServiceCreateOrder is not documented as idempotent, and
//     ServiceGetOrderList reports no payment status: an order it lists is
//     taken as created and paid (ServiceCreateOrder answers only OK).
package tencent
