package providers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

func testSpec() Spec {
	fields := []Field{{Name: "id", Kind: String, Required: true}, {Name: "phone", Kind: String}}
	return Spec{
		Name:      "fake",
		Fields:    fields,
		Sensitive: []string{"phone"},
		Settings: []Setting{
			{Name: "FAKE_ENDPOINT", Default: "https://fake.example", Check: CheckBaseURL},
			{Name: "FAKE_KEY", Required: true},
			{Name: "FAKE_SECRET", Required: true, Secret: true},
			{Name: "FAKE_FLAG", Default: "false", Check: CheckBool},
			{Name: "FAKE_WAIT", Default: "1m0s", Check: CheckDuration},
		},
		Parse: func(raw json.RawMessage) (Params, error) { return DecodeParams("fake params", raw, fields) },
	}
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestReadConfigDefaultsAndChecks(t *testing.T) {
	t.Parallel()
	s := testSpec()
	cfg, err := s.ReadConfig(env(map[string]string{"FAKE_KEY": "k", "FAKE_SECRET": "s3cr3t", "FAKE_FLAG": "true"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Get("FAKE_ENDPOINT"); got != "https://fake.example" {
		t.Errorf("FAKE_ENDPOINT = %q, want the default", got)
	}
	if !cfg.Bool("FAKE_FLAG") || cfg.Secret("FAKE_SECRET").Reveal() != "s3cr3t" || cfg.Get("FAKE_KEY") != "k" || cfg.Duration("FAKE_WAIT") != time.Minute {
		t.Errorf("config = %v", cfg)
	}

	tests := []struct {
		env       map[string]string
		want      string
		forbidden string
	}{
		{map[string]string{"FAKE_FLAG": "maybe"}, `FAKE_FLAG="maybe": want true or false`, ""},
		{map[string]string{"FAKE_WAIT": "60"}, `FAKE_WAIT="60": want a duration`, ""},
		{map[string]string{"FAKE_WAIT": "-1s"}, `FAKE_WAIT="-1s": want a duration`, ""},
		{map[string]string{"FAKE_ENDPOINT": "ftp://fake.example"}, "FAKE_ENDPOINT", ""},
		{map[string]string{"FAKE_ENDPOINT": "fake.example"}, "FAKE_ENDPOINT", ""},
		{map[string]string{"FAKE_ENDPOINT": "https://fake.example/api"}, "FAKE_ENDPOINT", ""},
		{map[string]string{"FAKE_ENDPOINT": "https://user:hunter2@fake.example"}, "FAKE_ENDPOINT=***", "hunter2"},
		{map[string]string{"FAKE_ENDPOINT": "https://fake.example/?token=hunter2"}, "FAKE_ENDPOINT=***", "hunter2"},
	}
	for _, tt := range tests {
		_, err := s.ReadConfig(env(tt.env))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ReadConfig(%v) = %v, want an error containing %q", tt.env, err, tt.want)
			continue
		}
		if tt.forbidden != "" && strings.Contains(err.Error(), tt.forbidden) {
			t.Errorf("ReadConfig error %q shows %q", err, tt.forbidden)
		}
	}
}

func TestConfigNeverPrintsSecrets(t *testing.T) {
	t.Parallel()
	cfg, err := testSpec().ReadConfig(env(map[string]string{"FAKE_KEY": "visible-key", "FAKE_SECRET": "hidden-secret"}))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "cfg", cfg)
	for _, out := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%s", cfg), logs.String()} {
		if strings.Contains(out, "hidden-secret") {
			t.Errorf("printed config shows the secret: %s", out)
		}
		if !strings.Contains(out, "visible-key") {
			t.Errorf("printed config lacks the key: %s", out)
		}
	}
}

func TestBuildNamesMissingSettings(t *testing.T) {
	t.Parallel()
	s := testSpec()
	s.New = func(Config, Deps) (Provider, error) { return nil, errors.New("must not be called") }
	tests := []struct {
		env  map[string]string
		want string
	}{
		{nil, "FAKE_KEY and FAKE_SECRET are not set"},
		{map[string]string{"FAKE_KEY": "k"}, "FAKE_SECRET is not set"},
	}
	for _, tt := range tests {
		cfg, err := s.ReadConfig(env(tt.env))
		if err != nil {
			t.Fatal(err)
		}
		p, reason, err := s.Build(cfg, Deps{})
		if p != nil || err != nil || reason != tt.want {
			t.Errorf("Build(%v) = %v, %q, %v; want disabled: %q", tt.env, p, reason, err, tt.want)
		}
	}
	cfg, _ := s.ReadConfig(env(map[string]string{"FAKE_KEY": "k", "FAKE_SECRET": "s"}))
	if _, _, err := s.Build(cfg, Deps{}); err == nil || !strings.Contains(err.Error(), "fake: must not be called") {
		t.Errorf("Build with every setting = %v, want New's error naming the provider", err)
	}
}

func TestSetParseDisabledSpec(t *testing.T) {
	t.Parallel()
	set := NewSet()
	set.DisableSpec(testSpec(), "no credentials")
	p, err := set.Parse("fake", json.RawMessage(`{"id":"A1","phone":"13912345678"}`))
	if err != nil || p.Str("id") != "A1" {
		t.Errorf("Parse = %v, %v; want id A1", p, err)
	}
	if _, err := set.Parse("fake", json.RawMessage(`{"phone":"1"}`)); CodeOf(err) != InvalidArgument || !strings.Contains(err.Error(), "params.id") {
		t.Errorf("Parse without id = %v, want InvalidArgument naming params.id", err)
	}
	if err := set.Validate("fake", json.RawMessage(`{"id":7}`)); CodeOf(err) != InvalidArgument {
		t.Errorf("Validate with a number id = %v, want InvalidArgument", err)
	}
	if _, err := set.Parse("nope", json.RawMessage(`{}`)); CodeOf(err) != InvalidArgument {
		t.Errorf("Parse for an unknown provider = %v, want InvalidArgument", err)
	}
	if got := set.Sensitive("fake"); len(got) != 1 || got[0] != "phone" {
		t.Errorf("Sensitive = %v, want [phone]", got)
	}
	if _, err := set.Get("fake"); CodeOf(err) != FailedPrecondition || !strings.Contains(err.Error(), "no credentials") {
		t.Errorf("Get = %v, want FailedPrecondition with the reason", err)
	}
}

// A provider's create overrun is its Spec's, disabled or added with it,
// unless the enabled provider says its own (configured otherwise); none
// for a provider added without its Spec.
func TestSetCreateOverrun(t *testing.T) {
	t.Parallel()
	spec := testSpec()
	spec.CreateOverrun = time.Minute
	s := NewSet()
	s.DisableSpec(spec, "no credentials")
	if got := s.CreateOverrun("fake"); got != time.Minute {
		t.Errorf("disabled: %s, want the Spec's 1m", got)
	}
	s.AddSpec(spec, overrunProvider{Provider: nil, d: 5 * time.Second})
	if got := s.CreateOverrun("fake"); got != 5*time.Second {
		t.Errorf("enabled, configured: %s, want its own 5s", got)
	}
	if got := NewSet().CreateOverrun("fake"); got != 0 {
		t.Errorf("unknown: %s, want none", got)
	}
	plain := NewSet()
	plain.AddSpec(spec, namedProvider{})
	if got := plain.CreateOverrun("fake"); got != time.Minute {
		t.Errorf("enabled, saying none of its own: %s, want the Spec's 1m", got)
	}
	bare := NewSet()
	bare.Add(namedProvider{})
	if got := bare.CreateOverrun("fake"); got != 0 {
		t.Errorf("added without its Spec: %s, want none", got)
	}

	// Configured (the enqueue CLI, a disabled provider): the setting's
	// value; unset, the Spec's; a bad value is refused, naming it.
	spec.CreateOverrunSetting = "FAKE_OVERRUN"
	for _, tt := range []struct {
		value, err string
		want       time.Duration
	}{{"", "", time.Minute}, {"0s", "", 0}, {"90s", "", 90 * time.Second}, {"soon", `FAKE_OVERRUN="soon"`, time.Minute}, {"-5s", `FAKE_OVERRUN="-5s"`, time.Minute}} {
		c := NewSet()
		c.DisableSpec(spec, "no credentials")
		err := c.ConfigureOverrun(spec, func(k string) string {
			if k == "FAKE_OVERRUN" {
				return tt.value
			}
			return ""
		})
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ConfigureOverrun(%q) = %v, want an error naming %s", tt.value, err, tt.err)
			}
			continue
		}
		if err != nil || c.CreateOverrun("fake") != tt.want {
			t.Errorf("ConfigureOverrun(%q): %s, %v; want %s", tt.value, c.CreateOverrun("fake"), err, tt.want)
		}
	}
}

type namedProvider struct{ Provider }

func (namedProvider) Name() string { return "fake" }

type overrunProvider struct {
	Provider
	d time.Duration
}

func (overrunProvider) Name() string                   { return "fake" }
func (p overrunProvider) CreateOverrun() time.Duration { return p.d }

// The params shown masked are the personal-data ones and the Spec's
// Masked ones, disabled or added with the Spec; only the personal-data
// ones are Sensitive (refused without a data key).
func TestSetMasked(t *testing.T) {
	t.Parallel()
	spec := testSpec()
	spec.Masked = []string{"id"}
	d := NewSet()
	d.DisableSpec(spec, "no credentials")
	if got := d.Masked("fake"); !slices.Equal(got, []string{"phone", "id"}) {
		t.Errorf("disabled: Masked = %v, want [phone id]", got)
	}
	if got := d.Sensitive("fake"); !slices.Equal(got, []string{"phone"}) {
		t.Errorf("disabled: Sensitive = %v, want [phone] alone", got)
	}
	if got := d.Masked("fake"); !slices.Equal(d.Sensitive("fake"), []string{"phone"}) || len(got) != 2 {
		t.Errorf("Masked changed Sensitive's list: %v", d.Sensitive("fake"))
	}
	e := NewSet()
	e.AddSpec(spec, namedProvider{})
	if got := e.Masked("fake"); !slices.Equal(got, []string{"id"}) {
		t.Errorf("enabled: Masked = %v, want [id]", got)
	}
	if got := NewSet().Masked("fake"); len(got) != 0 {
		t.Errorf("unknown: Masked = %v, want none", got)
	}
}
