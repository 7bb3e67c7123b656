// Package tencent submits orders to Tencent Cloud IoT Explorer's service API
// (物联使能 API): ServiceCreateOrder, with ServiceGetOrderList as the
// existence check.
//
// Every call is a POST of one flat JSON body to
// {endpoint}/api/exploreropen/serviceapi holding the common parameters
// (Action, RequestId, AppKey, Timestamp, Nonce), the business parameters and
// Signature: Base64(HMAC-SHA1(AppSecret, "k1=v1&k2=v2…")) over every other
// parameter sorted by name, with raw (not URL-encoded) values and empty
// strings left out. A fresh Timestamp, Nonce and RequestId are drawn for
// every attempt, at send time.
//
// Where the sources disagree:
//
//   - ItemVNO is optional in our spec but required by the live API's page;
//     it is accepted as optional and sent whenever given.
//   - Responses come in two shapes: {"Response":{…}} as documented for
//     serviceapi, and {code, msg, data} as the official Node SDK parses.
//     Both are accepted.
//   - No throttling code is documented for serviceapi; RequestLimitExceeded
//     and LimitExceeded (Tencent Cloud's common codes) and HTTP 429 are
//     treated as throttling.
//   - ServiceCreateOrder is not documented as idempotent, and
//     ServiceGetOrderList reports no payment status: an order it lists is
//     taken as created and paid (ServiceCreateOrder answers only OK).
package tencent
