package aliyun

import (
	"strings"
	"sync"
)

// maxNotedIDs bounds the order ids a client remembers the device of. Past
// it the memory starts again (what it showed, unfiltered, is kept).
const maxNotedIDs = 1 << 16

// deviceOf remembers, for order ids this client has seen, the device they
// were listed or created for: order/query's iotId filter comes from a
// third-party client, and the documented order shape names no device, so
// a server that ignores the filter lists every device's orders without
// saying whose they are. An id listed for one device, then for another,
// shows that (or ids that repeat across devices, which nothing documents
// either): from then on no order that does not name its device is taken
// for one device's by matching (see find).
type deviceOf struct {
	mu  sync.Mutex
	ids map[string]string // order id → device (as deviceKey writes it)
}

// deviceKey is a device's id as compared: without case or surrounding
// space (how a listing writes it is not documented).
func deviceKey(iotID string) string { return strings.ToLower(strings.TrimSpace(iotID)) }

// note remembers that order id is device's, and reports the device it was
// noted for before when that is another.
func (d *deviceOf) note(id, device string) (other string) {
	if id == "" || device == "" {
		return ""
	}
	device = deviceKey(device)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ids == nil || len(d.ids) >= maxNotedIDs {
		d.ids = make(map[string]string)
	}
	if was, ok := d.ids[id]; ok && was != device {
		return was
	}
	d.ids[id] = device
	return ""
}

// elsewhere reports whether id was noted for a device other than device.
func (d *deviceOf) elsewhere(id, device string) bool {
	if id == "" {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	was, ok := d.ids[id]
	return ok && was != deviceKey(device)
}

// noteListing remembers the devices of the orders listed for device iotID
// (an order that names no device taken for iotID's, while the server has
// not shown that its listings hold other devices' orders), and returns
// how many of them that name no device were noted for another device
// before: the server lists orders of other devices without naming them
// (it then counts as unfiltered from now on).
func (c *Client) noteListing(iotID string, orders []OrderInfo) int {
	cross := 0
	for _, x := range orders {
		named := strings.TrimSpace(x.IotID) != ""
		switch {
		case named:
			c.devices.note(x.OrderID, x.IotID)
		case c.devices.elsewhere(x.OrderID, iotID):
			cross++
		case !c.unfiltered.Load():
			c.devices.note(x.OrderID, iotID)
		}
	}
	if cross > 0 && !c.unfiltered.Swap(true) {
		c.log.Warn("aliyun order/query: orders listed for one device were listed for another, without naming their device: the server does not filter its listing by iotId (or order ids repeat across devices); from now on an order found by matching that does not name its device is left for a person")
	}
	return cross
}
