package order

import (
	"testing"
	"time"

	"github.com/orderworker/orderworker/tasks/ledger"
)

// An order whose Begin did not mark a create because the not-found that
// let it go was seen sooner after the last create than this worker's lag
// (AbsentRecheck: the order that create made may not be listed yet) may
// exist. Should this worker reject its recorded params (a worker of
// another version, in the very rolling change that sets lags apart), the
// order is left for a person, as one looked up first after a loss
// (LookFirstSince) is, not errored as never created, as it was before (a
// review).
func TestParamsRejectedAwaitingARecheckIsNotErrored(t *testing.T) {
	t.Parallel()
	p := policy()
	p.ListingLag = 10 * time.Minute
	at := t0.Add(3 * time.Minute)
	// As the record reads after a believed not-found (SetRetry, may_exist
	// 0) 2m after the last create, run by a worker with a 10m lag.
	r := &ledger.Record{Provider: "p", OrderNo: "o", State: ledger.StateSubmitting, Attempts: 1, Failures: 1, CreatedAt: t0,
		MayHaveExisted: true, LastCreateAt: t0.Add(time.Second), ReadAt: at,
		AbsentRecheck: true, AbsentBelieved: true, AbsentLag: 2 * time.Minute}
	d := ParamsRejected(r, p, at, "bad")
	if d.Settle.To() == ledger.StateErrored {
		t.Errorf("to %q (%q); want it left for a person: the order may exist (AbsentRecheck)", d.Settle.To(), d.Settle.Reason())
	}
}
