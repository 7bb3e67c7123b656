// Package unicloud submits orders to UniCloud (紫光云) OpenAPI, NAS
// CreateOrder, with the transaction API's OrderDetail and QueryOrders as the
// existence check. The full notes are written alongside the client.
package unicloud
