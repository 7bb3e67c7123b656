package tasks

import (
	"strings"
	"testing"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/tasks/order"
)

// A refused prepare (Aliyun's snapshot listing) is a problem of its own,
// which only a prepare that succeeds clears: polls and creates of other
// orders may succeed while every prepare is refused, and clearing it on
// them would make the problem, and its alert, flicker. A refusal of the
// credentials elsewhere is cleared by any call that succeeds.
func TestRefusedPrepareIsClearedOnlyByAPrepare(t *testing.T) {
	t.Parallel()
	refused := providers.Errorf(providers.Unauthenticated, "aliyun order/query", "refused")
	has := func(p *Problems, kind string) bool {
		err := p.Err()
		return err != nil && strings.Contains(err.Error(), kind)
	}
	p := NewProblems()
	noteProblem(p, "aliyun", order.Prepare, refused, "order/query refused the snapshot")
	if !has(p, ProblemPrepare) || has(p, ProblemCredentials) {
		t.Fatalf("after a refused prepare: %v; want %s only", p.Err(), ProblemPrepare)
	}
	for _, step := range []order.Step{order.Submit, order.Poll, order.Pay, order.Lookup} {
		noteProblem(p, "aliyun", step, nil, "")
		if !has(p, ProblemPrepare) {
			t.Fatalf("a %v that succeeded cleared %s: %v", step, ProblemPrepare, p.Err())
		}
	}
	noteProblem(p, "aliyun", order.Prepare, nil, "")
	if p.Err() != nil {
		t.Fatalf("after a prepare that succeeded: %v; want none", p.Err())
	}
	noteProblem(p, "aliyun", order.Submit, refused, "bad signature")
	if !has(p, ProblemCredentials) {
		t.Fatalf("after a refused create: %v; want %s", p.Err(), ProblemCredentials)
	}
	noteProblem(p, "aliyun", order.Poll, nil, "")
	if p.Err() != nil {
		t.Fatalf("after a poll that succeeded: %v; want none", p.Err())
	}
}
