package registry_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/registry"
)

// Every Spec is complete: a name, params with a valid example, settings
// that enable it, a constructor and a sandbox; no two providers share a
// name or a setting.
func TestSpecsAreComplete(t *testing.T) {
	t.Parallel()
	specs := registry.All()
	if len(specs) == 0 {
		t.Fatal("registry.All() is empty")
	}
	names := map[string]bool{}
	settings := map[string]string{}
	for _, s := range specs {
		if s.Name == "" || names[s.Name] {
			t.Errorf("provider name %q is empty or listed twice", s.Name)
		}
		names[s.Name] = true
		if len(s.Fields) == 0 || s.Parse == nil || s.New == nil || s.Sandbox == nil {
			t.Errorf("%s: Spec lacks fields, Parse, New or Sandbox", s.Name)
		}
		if _, err := s.Parse(s.Example); err != nil {
			t.Errorf("%s: Example does not parse: %v", s.Name, err)
		}
		for _, f := range s.Sensitive {
			if !slices.ContainsFunc(s.Fields, func(x providers.Field) bool { return x.Name == f }) {
				t.Errorf("%s: sensitive param %s is not one of its fields", s.Name, f)
			}
		}
		required := 0
		for _, st := range s.Settings {
			if other, ok := settings[st.Name]; ok {
				t.Errorf("%s: setting %s is also %s's", s.Name, st.Name, other)
			}
			settings[st.Name] = s.Name
			if st.Help == "" {
				t.Errorf("%s: setting %s has no help text", s.Name, st.Name)
			}
			if st.Required {
				required++
			}
		}
		if required == 0 {
			t.Errorf("%s: no required setting, so it can never be disabled", s.Name)
		}
	}
	var want []string
	for _, s := range specs {
		want = append(want, s.Name)
	}
	if got := registry.Names(); !slices.Equal(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
}

// Without its credentials each provider is disabled with a reason naming
// the settings to set.
func TestSpecsDisableWithoutCredentials(t *testing.T) {
	t.Parallel()
	for _, s := range registry.All() {
		cfg, err := s.ReadConfig(func(string) string { return "" })
		if err != nil {
			t.Fatalf("%s: defaults do not pass their own checks: %v", s.Name, err)
		}
		p, reason, err := s.Build(cfg, providers.Deps{})
		if p != nil || err != nil || reason == "" {
			t.Errorf("%s: Build without credentials = %v, %q, %v; want disabled with a reason", s.Name, p, reason, err)
		}
		for _, m := range s.Missing(cfg) {
			if !strings.Contains(reason, m) {
				t.Errorf("%s: reason %q does not name %s", s.Name, reason, m)
			}
		}
	}
}

// Each provider, built from its Spec and pointed at its sandbox with the
// sandbox's demo settings, submits and looks up the example order. The
// order carries its params already parsed and garbage in Params: the
// provider must use Parsed and not decode Params again.
func TestSandboxesServeTheirProviders(t *testing.T) {
	t.Parallel()
	for _, s := range registry.All() {
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			sb := s.Sandbox()
			srv := httptest.NewServer(sb.Handler)
			t.Cleanup(srv.Close)
			demo := sb.Env(srv.URL)
			cfg, err := s.ReadConfig(func(k string) string { return demo[k] })
			if err != nil {
				t.Fatal(err)
			}
			p, reason, err := s.Build(cfg, providers.Deps{})
			if err != nil || reason != "" {
				t.Fatalf("Build with the sandbox's settings = %q, %v", reason, err)
			}
			if p.Name() != s.Name {
				t.Errorf("Name() = %q, want %q", p.Name(), s.Name)
			}
			parsed, err := p.(providers.Parser).Parse(s.Example)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			o := providers.Order{OrderNo: "Registry" + s.Name, Params: json.RawMessage(`{"not":"these params"}`),
				Parsed: parsed, FirstAttempt: time.Now()}
			res, err := p.Submit(ctx, o)
			if err != nil {
				t.Fatalf("Submit with Parsed set = %v", err)
			}
			if res.Status != providers.StatusPaid && res.Status != providers.StatusPending {
				t.Errorf("Submit status = %q", res.Status)
			}
			o.ProviderOrderID = res.ProviderOrderID
			if _, err := p.Lookup(ctx, o); err != nil {
				t.Errorf("Lookup with Parsed set = %v", err)
			}
			// Without Parsed the provider decodes Params, and rejects these.
			o.Parsed = nil
			if _, err := p.Submit(ctx, o); providers.CodeOf(err) != providers.InvalidArgument {
				t.Errorf("Submit without Parsed, bad Params = %v, want InvalidArgument", err)
			}
		})
	}
}

// Validators knows every provider, validates and parses without
// credentials, and names personal-data params.
func TestValidators(t *testing.T) {
	t.Parallel()
	set := registry.Validators("validation only")
	if got := set.Names(); len(got) != len(registry.All()) {
		t.Errorf("Validators().Names() = %v", got)
	}
	for _, s := range registry.All() {
		p, err := set.Parse(s.Name, s.Example)
		if err != nil || len(p) == 0 {
			t.Errorf("%s: Parse(Example) = %v, %v", s.Name, p, err)
		}
		err = set.Validate(s.Name, json.RawMessage(`{"unknownField":1}`))
		if providers.CodeOf(err) != providers.InvalidArgument || !strings.Contains(err.Error(), "unknownField") {
			t.Errorf("%s: Validate(unknown field) = %v, want InvalidArgument naming it", s.Name, err)
		}
		if got := set.Sensitive(s.Name); !slices.Equal(got, s.Sensitive) {
			t.Errorf("%s: Sensitive = %v, want %v", s.Name, got, s.Sensitive)
		}
	}
	if got := set.Sensitive("aliyun"); !slices.Contains(got, "userName") {
		t.Errorf("aliyun's personal data = %v, want userName", got)
	}
}
