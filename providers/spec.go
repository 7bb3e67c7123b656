package providers

import (
	"cmp"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Spec is everything the binaries know about one provider: its key, its
// params, its personal data, the settings it reads from the environment,
// how to build it from them and how to run its sandbox. Each provider
// package exports its Spec; package providers/registry lists them, so the
// commands never name a provider.
type Spec struct {
	// Name is the provider's key in payloads, metrics and config.
	Name string
	// Fields are the params the provider accepts.
	Fields []Field
	// Sensitive names the params that carry personal data (names, phone
	// numbers): never stored or shown in clear.
	Sensitive []string
	// Masked names params that may identify a person but that the
	// provider requires, so that refusing them without a data key would
	// refuse every order (Tencent's CustomerId, the vendor's user id):
	// shown masked wherever params are shown (Set.Masked), stored sealed
	// when ORDERWORKER_DATA_KEY is set and in clear without it.
	Masked []string
	// NoOrderIDs says the provider gives an order no id of its own (the
	// order number is how it is known): an operator resolving an order
	// paid has no provider order id to name.
	NoOrderIDs bool
	// CheckOrderID, when set, checks an order id an operator names for
	// one of the provider's orders (resolving it paid), beyond what
	// Set.CheckOrderID checks of every id: its error says what the
	// provider's ids look like.
	CheckOrderID func(id string) error
	// CreateOverrun is how long after a create request ended the provider
	// may still make the order, as far as its documents or SDKs tell: a
	// server that goes on with a create its client gave up on. The
	// listing lag (the time a lookup's not-found is not believed) counts
	// from the create's end plus this. Zero where nothing tells of one.
	// CreateOverrunSetting, when set, names the Setting (a duration) that
	// configures it: Set.ConfigureOverrun reads it for a provider that is
	// not built (disabled, or the enqueue CLI's), and an enabled provider
	// that is a CreateOverrunner says its own.
	CreateOverrun        time.Duration
	CreateOverrunSetting string
	// IDScope, when set, says the provider's order ids are unique only
	// within a scope of an order's params (see IDScoper): it returns that
	// scope. Known without credentials (Set.IDScope), for the enqueue
	// CLI's operator actions.
	IDScope func(Params) string
	// IDScopeField names the param IDScope reads (Aliyun: iotId), for
	// what an order is told when its scope cannot be stored.
	IDScopeField string
	// Example are valid params, for docs and tests.
	Example json.RawMessage
	// Settings are the environment variables the provider reads, in the
	// order they are documented.
	Settings []Setting
	// Parse validates params and decodes them, without I/O or
	// credentials. Its error is an InvalidArgument *Error naming the first
	// bad field.
	Parse ParseFunc
	// New builds the provider from its settings. It is called only when
	// every Required setting is set.
	New func(cfg Config, deps Deps) (Provider, error)
	// Sandbox, when set, returns the provider's built-in sandbox as
	// worker -dev runs it. A provider's sandbox package imports the
	// provider package (it verifies signatures with the provider's own
	// signer), so the provider package cannot name it: the registry sets
	// this field with WithSandbox.
	Sandbox func() Sandbox
}

// ParseFunc validates and decodes one provider's params.
type ParseFunc func(params json.RawMessage) (Params, error)

// Parser is implemented by providers that decode params for callers, so an
// order's params are decoded once and handed back in Order.Parsed.
type Parser interface {
	Parse(params json.RawMessage) (Params, error)
}

// Setting is one environment variable a provider reads.
type Setting struct {
	// Name is the variable, for example "TENCENT_APP_KEY".
	Name string
	// Default is the value when the variable is unset or empty.
	Default string
	// Help is a short description for worker -h and the docs.
	Help string
	// Required settings enable the provider: without every one of them
	// it is disabled, and its orders fail with the reason.
	Required bool
	// Secret settings are credentials: Config holds them as a Secret and
	// never prints them.
	Secret bool
	// Check, when set, validates a non-empty value; its error says what is
	// wanted ("want true or false").
	Check func(value string) error
}

// CheckBool is a Setting.Check for true/false settings: the words true
// and false only, so that a setting that turns on payments is never
// switched by a 1, a t or a typo of another kind.
func CheckBool(v string) error {
	if _, ok := ParseBool(v); !ok {
		return fmt.Errorf("want true or false")
	}
	return nil
}

// CheckDuration is a Setting.Check for durations: a Go duration ("90s",
// "2m"), zero or more.
func CheckDuration(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return fmt.Errorf("want a duration such as 90s or 2m, zero or more")
	}
	return nil
}

// ParseBool reads true or false (only those words); ok is false for
// anything else.
func ParseBool(v string) (b, ok bool) {
	switch v {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// Deps are what a provider may share with the rest of the process.
type Deps struct {
	// Redis is the worker's Redis, for state every worker shares (the
	// Aliyun cloudToken).
	Redis redis.UniversalClient
	// Logger receives the provider's diagnostics. Nil discards them.
	Logger *slog.Logger
	// HTTPTransport carries every HTTP request the provider makes: its
	// New builds the client's http.Client on it. The worker gives each
	// provider one that holds each request to the provider's shared rate
	// limit (tasks/guard). Nil means NewTransport().
	HTTPTransport http.RoundTripper
}

// Transport returns HTTPTransport, or a NewTransport() when it is nil.
func (d Deps) Transport() http.RoundTripper {
	if d.HTTPTransport != nil {
		return d.HTTPTransport
	}
	return NewTransport()
}

// Sandbox is a provider's built-in fake API with demo credentials. The
// credentials are not secrets: they open only the sandbox, on loopback.
type Sandbox struct {
	// Handler serves the fake API. It accepts only the credentials Env
	// gives.
	Handler http.Handler
	// Env returns the settings, by variable name, that point the provider
	// at the sandbox served at baseURL with the demo credentials.
	Env func(baseURL string) map[string]string
}

// WithSandbox returns a copy of s whose Sandbox is sandbox.
func (s Spec) WithSandbox(sandbox func() Sandbox) Spec {
	s.Sandbox = sandbox
	return s
}

// Config is one provider's settings, read by Spec.ReadConfig: each value by
// variable name, defaults applied. It prints secret values as ***.
type Config struct {
	values map[string]string
	secret map[string]bool
}

// ReadConfig reads the spec's settings through getenv (an empty value means
// unset), applying defaults and each setting's Check. Its error names the
// variable and the value (never a secret's value).
func (s Spec) ReadConfig(getenv func(string) string) (Config, error) {
	c := Config{values: map[string]string{}, secret: map[string]bool{}}
	for _, st := range s.Settings {
		v := getenv(st.Name)
		if v == "" {
			v = st.Default
		}
		if v != "" && st.Check != nil {
			if err := st.Check(v); err != nil {
				shown := strconv.Quote(v)
				if st.Secret || strings.ContainsAny(v, "@?#") { // a URL's userinfo, query or fragment may hold a credential
					shown = "***"
				}
				return Config{}, fmt.Errorf("%s=%s: %w", st.Name, shown, err)
			}
		}
		c.values[st.Name] = v
		c.secret[st.Name] = st.Secret
	}
	return c, nil
}

// Missing lists the Required settings that cfg lacks, in the spec's order.
func (s Spec) Missing(cfg Config) []string {
	var out []string
	for _, st := range s.Settings {
		if st.Required && cfg.Get(st.Name) == "" {
			out = append(out, st.Name)
		}
	}
	return out
}

// Build returns the provider configured by cfg, or, when a Required setting
// is missing, nil and the reason it is disabled ("TENCENT_APP_KEY is not
// set").
func (s Spec) Build(cfg Config, deps Deps) (p Provider, disabledReason string, err error) {
	if missing := s.Missing(cfg); len(missing) > 0 {
		verb := " is not set"
		if len(missing) > 1 {
			verb = " are not set"
		}
		return nil, joinAnd(missing) + verb, nil
	}
	p, err = s.New(cfg, deps)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", s.Name, err)
	}
	if len(s.Sensitive) > 0 {
		// The Set asks the provider which params to mask: it must
		// name at least the spec's.
		sp, ok := p.(Sensitive)
		if !ok || !containsAll(sp.SensitiveParams(), s.Sensitive) {
			return nil, "", fmt.Errorf("%s: the provider does not report its personal-data params %v", s.Name, s.Sensitive)
		}
	}
	return p, "", nil
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// joinAnd renders "a", "a and b", "a, b and c".
func joinAnd(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// Get returns the named setting's value ("" when unknown or unset).
func (c Config) Get(name string) string { return c.values[name] }

// Secret returns the named setting's value as a Secret.
func (c Config) Secret(name string) Secret { return Secret(c.values[name]) }

// Bool returns the named setting as a boolean; a value that is not one
// (a setting without CheckBool) is false.
func (c Config) Bool(name string) bool {
	b, _ := ParseBool(c.values[name])
	return b
}

// Duration returns the named setting as a duration; a value that is not
// one (a setting without CheckDuration) is zero.
func (c Config) Duration(name string) time.Duration {
	d, _ := time.ParseDuration(c.values[name])
	return d
}

// String renders the settings sorted by name, secrets as ***.
func (c Config) String() string {
	names := make([]string, 0, len(c.values))
	for n := range c.values {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte(' ')
		}
		v := strconv.Quote(c.values[n])
		if c.secret[n] && c.values[n] != "" {
			v = "***"
		}
		b.WriteString(n + "=" + v)
	}
	return b.String()
}

// GoString keeps %#v from printing secret values.
func (c Config) GoString() string { return "providers.Config{" + c.String() + "}" }

// LogValue implements slog.LogValuer, secrets masked.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// DisableSpec records spec's provider as known but not usable, and why: its
// orders' params are still parsed with spec.Parse, and spec.Sensitive names
// their personal data.
func (s *Set) DisableSpec(spec Spec, reason string) {
	var validate ValidateFunc
	if spec.Parse != nil {
		validate = func(params json.RawMessage) error {
			_, err := spec.Parse(params)
			return err
		}
	}
	s.Disable(spec.Name, reason, validate, spec.Sensitive...)
	d := s.disabled[spec.Name]
	d.parse = spec.Parse
	d.noOrderIDs = spec.NoOrderIDs
	s.disabled[spec.Name] = d
	s.checkID[spec.Name] = spec.CheckOrderID
	s.overrun[spec.Name] = spec.CreateOverrun
	s.masked[spec.Name] = spec.Masked
	s.idScope[spec.Name] = spec.IDScope
	s.scopeOf[spec.Name] = spec.IDScopeField
}

// AddSpec enables p, spec's provider, keeping the facts of spec the
// provider itself does not carry (CheckOrderID).
func (s *Set) AddSpec(spec Spec, p Provider) {
	s.Add(p)
	s.checkID[spec.Name] = spec.CheckOrderID
	s.overrun[spec.Name] = spec.CreateOverrun
	s.masked[spec.Name] = spec.Masked
	s.idScope[spec.Name] = spec.IDScope
	s.scopeOf[spec.Name] = spec.IDScopeField
}

// IDScopeField names the param the named provider's IDScope reads
// (Spec.IDScopeField), "params" when its spec does not say.
func (s *Set) IDScopeField(name string) string {
	return cmp.Or(s.scopeOf[name], "params")
}

// IDScope is the scope the named provider's order ids are unique within,
// for an order with parsed params p (IDScoper, or Spec.IDScope for one not
// built here), and whether its ids are kept by scope at all.
func (s *Set) IDScope(name string, p Params) (scope string, scoped bool) {
	if sc, ok := s.enabled[name].(IDScoper); ok {
		if p == nil {
			return "", true
		}
		return sc.IDScope(p), true
	}
	if f := s.idScope[name]; f != nil {
		if p == nil {
			return "", true
		}
		return f(p), true
	}
	return "", false
}

// ConfigureOverrun sets spec's provider's create overrun from its
// CreateOverrunSetting as get reads it (a Config's Get, or the
// environment), where get gives a value; otherwise the Spec's
// CreateOverrun stands. Its error names the setting.
func (s *Set) ConfigureOverrun(spec Spec, get func(string) string) error {
	if spec.CreateOverrunSetting == "" {
		return nil
	}
	v := get(spec.CreateOverrunSetting)
	if v == "" {
		return nil
	}
	if err := CheckDuration(v); err != nil {
		return fmt.Errorf("%s=%q: %v", spec.CreateOverrunSetting, v, err)
	}
	d, _ := time.ParseDuration(v)
	s.overrun[spec.Name] = d
	return nil
}

// CreateOverrunner is implemented by providers whose create overrun
// (Spec.CreateOverrun) is configured.
type CreateOverrunner interface {
	CreateOverrun() time.Duration
}

// CreateOverrun is how long after a create request ended the named
// provider may still make the order: the enabled provider's own
// (CreateOverrunner), else its Spec.CreateOverrun (zero for a provider
// added without its Spec).
func (s *Set) CreateOverrun(name string) time.Duration {
	if p, ok := s.enabled[name].(CreateOverrunner); ok {
		return p.CreateOverrun()
	}
	return s.overrun[name]
}

// placeholderOrderID is an id that names no order: nothing, zeros only, a
// negative number, or a word for nothing.
var placeholderOrderID = regexp.MustCompile(`(?i)^(?:[-+]?0*|-[0-9]+|null|nil|none|undefined|n/?a)$`)

// CheckOrderID checks an order id an operator names for one of the named
// provider's orders (resolving it paid): an id of a provider that gives
// its orders ids, at most 128 bytes, without spaces or control
// characters, not a placeholder (0, -1, null), and what the provider's
// Spec.CheckOrderID asks. Its error says what is wrong.
func (s *Set) CheckOrderID(name, id string) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("provider order id: "+format, a...)
	}
	switch {
	case !s.HasOrderIDs(name):
		return bad("%s gives an order no id of its own: resolve the order paid without one", name)
	case id == "":
		return bad("empty")
	case len(id) > 128:
		return bad("longer than 128 bytes")
	case strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r > '~' || r == '"' || r == '\'' || r == '`' }):
		return bad("%q: an id is printable ASCII, without spaces or quotes (copy it as the provider's console or answer shows it)", Truncate(id, 64))
	case placeholderOrderID.MatchString(id):
		return bad("%q names no order", id)
	}
	if f := s.checkID[name]; f != nil {
		if err := f(id); err != nil {
			return bad("%v", err)
		}
	}
	return nil
}

// Parse validates and decodes params for the named provider, enabled or
// disabled, so the caller can hand them to the provider in Order.Parsed.
// Its error is an InvalidArgument *Error. A provider that only validates
// (not a Parser, or disabled without a ParseFunc) gives nil Params.
func (s *Set) Parse(name string, params json.RawMessage) (Params, error) {
	if p, ok := s.enabled[name]; ok {
		if pp, ok := p.(Parser); ok {
			return pp.Parse(params)
		}
		return nil, p.Validate(params)
	}
	if d, ok := s.disabled[name]; ok {
		switch {
		case d.parse != nil:
			return d.parse(params)
		case d.validate != nil:
			return nil, d.validate(params)
		}
		return nil, nil
	}
	return nil, s.unknown(name)
}

// CheckBaseURL is a Setting.Check for endpoints: an http or https base URL,
// scheme://host[:port], to which the client appends each API's path.
func CheckBaseURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "" {
		return fmt.Errorf("want a base URL like https://host[:port]")
	}
	return nil
}
