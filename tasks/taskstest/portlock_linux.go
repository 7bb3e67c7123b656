package taskstest

import (
	"io"
	"net"
	"strconv"
)

// reservePort holds port against the test processes of the same run (go
// test runs packages side by side), for as long as the returned closer is
// open: a socket in Linux's abstract namespace named after the port, which
// only one process can hold, and which goes with the process. A server a
// test stops and starts again on the same port keeps it reserved between
// the two, so another test's freePort does not hand it out, and its
// clients do not write into another test's server. false: another
// process holds it.
func reservePort(port int) (io.Closer, bool) {
	l, err := net.Listen("unix", "@orderworker-test-port-"+strconv.Itoa(port))
	if err != nil {
		return nil, false
	}
	return l, true
}
