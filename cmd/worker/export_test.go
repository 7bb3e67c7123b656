package main

import (
	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/tencent"
)

func validatorsForTest() *providers.Set {
	set := providers.NewSet()
	set.Disable(tencent.Name, "test", tencent.Validate)
	return set
}
