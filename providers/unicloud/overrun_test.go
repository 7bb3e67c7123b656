package unicloud

import (
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
)

// UNICLOUD_CREATE_OVERRUN: 60 s by default (the SDK's wait), the value
// set, and none at 0s.
func TestCreateOverrunSetting(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		value string
		want  time.Duration
	}{{"", 60 * time.Second}, {"90s", 90 * time.Second}, {"0s", 0}, {"0", 0}} {
		env := map[string]string{EnvAccessKeyID: "k", EnvAccessKeySecret: "s", EnvCreateOverrun: tt.value}
		cfg, err := Spec().ReadConfig(func(k string) string { return env[k] })
		if err != nil {
			t.Fatalf("%q: %v", tt.value, err)
		}
		p, reason, err := Spec().Build(cfg, providers.Deps{})
		if err != nil || p == nil {
			t.Fatalf("%q: build: %v %s", tt.value, err, reason)
		}
		if got := p.(providers.CreateOverrunner).CreateOverrun(); got != tt.want {
			t.Errorf("%s=%q: overrun %s, want %s", EnvCreateOverrun, tt.value, got, tt.want)
		}
	}
}
