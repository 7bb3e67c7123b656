// Package registry lists every provider the binaries know. It is the one
// place a provider is named: cmd/worker and cmd/enqueue iterate All to
// read settings, build clients, validate params and run sandboxes. Adding a
// provider means writing its package (with its Spec and a sandbox) and
// adding it to All.
//
// Only the commands and tests import this package; package tasks works
// with a providers.Set and never with a concrete provider.
package registry

import (
	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/aliyun"
	aliyunsandbox "github.com/orderworker/orderworker/providers/aliyun/sandbox"
	"github.com/orderworker/orderworker/providers/tencent"
	tencentsandbox "github.com/orderworker/orderworker/providers/tencent/sandbox"
	"github.com/orderworker/orderworker/providers/unicloud"
	unicloudsandbox "github.com/orderworker/orderworker/providers/unicloud/sandbox"
)

// All returns every provider's Spec, with its sandbox, in the order the
// docs list them.
func All() []providers.Spec {
	return []providers.Spec{
		tencent.Spec().WithSandbox(tencentsandbox.Dev),
		aliyun.Spec().WithSandbox(aliyunsandbox.Dev),
		unicloud.Spec().WithSandbox(unicloudsandbox.Dev),
	}
}

// Names returns the providers' keys, in All's order.
func Names() []string {
	specs := All()
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	return names
}

// Validators returns a Set in which every provider is known but disabled
// for reason: it parses and validates params and knows their personal
// data, and needs no credentials (the enqueue CLI, tests).
func Validators(reason string) *providers.Set {
	set := providers.NewSet()
	for _, s := range All() {
		set.DisableSpec(s, reason)
	}
	return set
}
