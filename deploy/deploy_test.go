package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/orderworker/orderworker/internal/settings"
)

// Paths, relative to this package's directory (where go test runs).
const (
	repoRoot          = ".."
	composePath       = "../docker-compose.yml"
	dockerfilePath    = "../Dockerfile"
	dockerignorePath  = "../.dockerignore"
	prometheusConfig  = "prometheus/prometheus.yml"
	alertsPath        = "prometheus/alerts.yml"
	alertsTestPath    = "prometheus/alerts_test.yml"
	dashboardPath     = "grafana/dashboards/orderworker.json"
	datasourcesPath   = "grafana/provisioning/datasources/prometheus.yml"
	dashProvidersPath = "grafana/provisioning/dashboards/orderworker.yml"
	runbookPath       = "README.md"
)

// adminPort is the worker's admin HTTP port (ORDERWORKER_ADMIN_ADDR default :9090).
const adminPort = 9090

// workerEnv is every environment variable the worker reads: the names in
// the README's configuration table (cmd/worker's tests check that table
// against the code).
var workerEnv = readmeEnv()

func readmeEnv() []string {
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		panic(err)
	}
	row := regexp.MustCompile("(?m)^\\| ((?:`[A-Z0-9_]+`(?:, )?)+) \\|")
	name := regexp.MustCompile("`([A-Z0-9_]+)`")
	var out []string
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		for _, n := range name.FindAllStringSubmatch(m[1], -1) {
			out = append(out, n[1])
		}
	}
	return out
}

// secretEnv are the credentials: compose must only pass them through from
// the operator's environment (${VAR:-}), never hold a value.
var secretEnv = []string{
	"TENCENT_APP_KEY", "TENCENT_APP_SECRET",
	"ALIYUN_APP_KEY", "ALIYUN_APP_SECRET",
	"UNICLOUD_ACCESS_KEY_ID", "UNICLOUD_ACCESS_KEY_SECRET",
	"ORDERWORKER_MONITORING_TOKEN", "ORDERWORKER_DATA_KEY",
	"ORDERWORKER_WEBHOOK_SECRET", "ORDERWORKER_API_TOKENS",
}

// ---------------------------------------------------------------------------
// The metrics contract.

// metric describes one exported metric family: its type, its labels and,
// where a label takes a closed set of values, those values.
type metric struct {
	histogram bool
	labels    map[string][]string // label -> allowed values (nil: any value)
}

var (
	providers   = []string{"tencent", "aliyun", "unicloud"}
	outcomes    = []string{"paid", "pending", "errored"}
	results     = []string{"ok", "not_found", "rate_limited", "unavailable", "ambiguous", "invalid_argument", "unauthenticated", "permission_denied", "failed_precondition", "unknown"}
	orderStates = []string{"queued", "submitting", "unknown", "pending", "paid", "errored"}
	nonTerminal = []string{"queued", "submitting", "unknown", "pending"}
	asynqStates = []string{"active", "pending", "scheduled", "retry", "archived", "completed", "aggregating"}
	dedupeKinds = []string{"duplicate", "conflict", "terminal"}
	// pendingKinds are what a pending order waits for (ledger.PendingKinds).
	pendingKinds = []string{"plain", "matched", "pay_sent"}
	configKinds  = []string{"provider_disabled", "credentials_rejected", "data_key"}
	// operatorActions are the actions of orderworker_operator_actions_total.
	operatorActions = []string{"resolve_paid", "resolve_absent", "resolve_errored", "redrive"}
)

// metrics is every metric name a query may use. Target labels (job,
// instance) are allowed on all of them.
var metrics = map[string]metric{
	"orderworker_orders_total":                      {labels: map[string][]string{"provider": providers, "outcome": outcomes}},
	"orderworker_provider_request_duration_seconds": {histogram: true, labels: map[string][]string{"provider": providers, "call": {"prepare", "submit", "lookup", "poll", "pay"}, "result": results}},
	"orderworker_order_attempts":                    {histogram: true, labels: map[string][]string{"provider": providers}},
	"orderworker_retries_total":                     {labels: map[string][]string{"provider": providers, "reason": nil}},
	"orderworker_dedupe_hits_total":                 {labels: map[string][]string{"provider": providers, "kind": dedupeKinds}},
	"orderworker_enqueue_dedupe_total":              {labels: map[string][]string{"provider": providers, "kind": {"duplicate", "conflict"}}},
	"orderworker_orders":                            {labels: map[string][]string{"provider": providers, "state": orderStates}},
	"orderworker_order_oldest_age_seconds":          {labels: map[string][]string{"provider": providers, "state": nonTerminal}},
	"orderworker_order_deadline_seconds":            {labels: map[string][]string{"provider": providers}},
	"orderworker_pending_orders":                    {labels: map[string][]string{"provider": providers, "kind": pendingKinds}},
	"orderworker_pending_orders_oldest_age_seconds": {labels: map[string][]string{"provider": providers, "kind": pendingKinds}},
	"orderworker_enqueue_to_outcome_seconds":        {histogram: true, labels: map[string][]string{"provider": providers, "outcome": outcomes}},
	"orderworker_breaker_state":                     {labels: map[string][]string{"provider": providers}},
	"orderworker_rate_limit_waits_total":            {labels: map[string][]string{"provider": providers}},
	"orderworker_throttle_cuts_total":               {labels: map[string][]string{"provider": providers}},
	"orderworker_throttle_rate":                     {labels: map[string][]string{"provider": providers}},
	"orderworker_reconciler_found_total":            {labels: map[string][]string{"kind": nil}},
	"orderworker_reconciler_unchecked_total":        {},
	"orderworker_redis_up":                          {},
	"orderworker_redis_config_risk":                 {labels: map[string][]string{"redis": nil, "risk": {"eviction", "persistence", "replication"}}},
	"orderworker_config_problem":                    {labels: map[string][]string{"provider": providers, "kind": configKinds}},
	"orderworker_config_waits_total":                {labels: map[string][]string{"provider": providers, "kind": configKinds}},
	"orderworker_operator_actions_total":            {labels: map[string][]string{"action": operatorActions, "result": {"ok", "refused", "error"}}},
	"orderworker_tasks_stopped_total":               {labels: map[string][]string{"queue": nil}},
	"orderworker_late_provider_calls_total":         {labels: map[string][]string{"provider": providers, "call": {"submit", "pay"}}},
	"orderworker_orders_listed_late_total":          {labels: map[string][]string{"provider": providers}},
	"orderworker_orders_created_again_total":        {labels: map[string][]string{"provider": providers}},
	"orderworker_ledger_data_losses_total":          {labels: map[string][]string{"kind": {"wiped", "rolled_back"}}},
	"orderworker_redis_clock_steps_total":           {},
	"asynq_tasks_enqueued":                          {labels: map[string][]string{"queue": nil, "state": asynqStates}},
	"asynq_queue_size":                              {labels: map[string][]string{"queue": nil}},
	"asynq_queue_latency_seconds":                   {labels: map[string][]string{"queue": nil}},
	"asynq_queue_memory_usage_approx_bytes":         {labels: map[string][]string{"queue": nil}},
	"asynq_tasks_processed_total":                   {labels: map[string][]string{"queue": nil}},
	"asynq_tasks_failed_total":                      {labels: map[string][]string{"queue": nil}},
	"asynq_queue_paused":                            {labels: map[string][]string{"queue": nil}},

	// Webhooks (tasks/webhook): endpoint is an index in ORDERWORKER_WEBHOOK_URLS.
	"orderworker_webhook_deliveries_total":               {labels: map[string][]string{"endpoint": nil, "result": {"ok", "http_error", "network_error"}}},
	"orderworker_webhook_backlog_events":                 {labels: map[string][]string{"endpoint": nil}},
	"orderworker_webhook_oldest_undelivered_age_seconds": {labels: map[string][]string{"endpoint": nil}},
	"orderworker_webhook_failed_events":                  {labels: map[string][]string{"endpoint": nil}},
	"orderworker_webhook_events_lost_total":              {labels: map[string][]string{"endpoint": nil}},

	// Series Prometheus itself adds to every scrape.
	"up":                      {},
	"scrape_duration_seconds": {},
	"scrape_samples_scraped":  {},
}

// targetLabels are attached by Prometheus to every scraped series.
var targetLabels = map[string][]string{"job": {"orderworker", "prometheus"}, "instance": nil}

// lookupMetric resolves a series name, including a histogram's _bucket,
// _count and _sum series, to its metric family. bucket reports whether the
// series carries the le label.
func lookupMetric(name string) (m metric, bucket, ok bool) {
	if m, ok := metrics[name]; ok {
		return m, false, true
	}
	for _, suffix := range []string{"_bucket", "_count", "_sum"} {
		base, found := strings.CutSuffix(name, suffix)
		if !found {
			continue
		}
		if m, ok := metrics[base]; ok && m.histogram {
			return m, suffix == "_bucket", true
		}
	}
	return metric{}, false, false
}

// ---------------------------------------------------------------------------
// A small PromQL reader: enough to find every series selector in a query
// with its label matchers, and the labels named in by/without/on/ignoring.
// Validity of the whole query is promtool's job (see TestDashboardQueriesParse).

type tokenKind int

const (
	tokIdent tokenKind = iota
	tokString
	tokNumber
	tokPunct
)

type token struct {
	kind tokenKind
	text string // for strings: the unquoted value
}

func lexPromQL(expr string) ([]token, error) {
	var toks []token
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#': // comment to end of line
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '$': // Grafana variable: $name, ${name}, $__rate_interval
			i++
			if i < len(expr) && expr[i] == '{' {
				end := strings.IndexByte(expr[i:], '}')
				if end < 0 {
					return nil, fmt.Errorf("unterminated ${ at offset %d", i)
				}
				i += end + 1
			} else {
				for i < len(expr) && isIdentByte(expr[i], false) {
					i++
				}
			}
			toks = append(toks, token{kind: tokNumber, text: "$var"})
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			var b strings.Builder
			for ; j < len(expr) && expr[j] != c; j++ {
				if expr[j] == '\\' && c != '`' && j+1 < len(expr) {
					j++
				}
				b.WriteByte(expr[j])
			}
			if j >= len(expr) {
				return nil, fmt.Errorf("unterminated string at offset %d", i)
			}
			toks = append(toks, token{kind: tokString, text: b.String()})
			i = j + 1
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(expr) && expr[i+1] >= '0' && expr[i+1] <= '9':
			j := i
			for j < len(expr) && (isIdentByte(expr[j], false) || expr[j] == '.') {
				j++
			}
			toks = append(toks, token{kind: tokNumber, text: expr[i:j]})
			i = j
		case isIdentByte(c, true):
			j := i
			for j < len(expr) && isIdentByte(expr[j], false) {
				j++
			}
			toks = append(toks, token{kind: tokIdent, text: expr[i:j]})
			i = j
		default:
			op := string(c)
			for _, two := range []string{"!=", "=~", "!~", "==", ">=", "<="} {
				if strings.HasPrefix(expr[i:], two) {
					op = two
					break
				}
			}
			toks = append(toks, token{kind: tokPunct, text: op})
			i += len(op)
		}
	}
	return toks, nil
}

func isIdentByte(c byte, first bool) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
}

var (
	aggregators = map[string]bool{"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true}
	keywords    = map[string]bool{"and": true, "or": true, "unless": true, "offset": true, "bool": true, "atan2": true, "inf": true, "nan": true, "start": true, "end": true}
	groupings   = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
)

type matcher struct{ label, op, value string }

type selector struct {
	metric   string
	matchers []matcher
}

// parsedQuery is what checkQuery needs from a query.
type parsedQuery struct {
	selectors []selector
	grouping  []string // label names in by/without/on/ignoring/group_* lists
}

func parsePromQL(expr string) (parsedQuery, error) {
	toks, err := lexPromQL(expr)
	if err != nil {
		return parsedQuery{}, err
	}
	var q parsedQuery
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		next := func(k int) token {
			if i+k < len(toks) {
				return toks[i+k]
			}
			return token{}
		}
		switch {
		case t.kind == tokPunct && t.text == "[":
			// Range, subquery or Grafana interval: skip.
			for i < len(toks) && !(toks[i].kind == tokPunct && toks[i].text == "]") {
				i++
			}
		case t.kind == tokPunct && t.text == "{":
			return q, errors.New("selector without a metric name")
		case t.kind != tokIdent:
		case groupings[t.text]:
			if n := next(1); n.kind == tokPunct && n.text == "(" {
				i += 2
				for ; i < len(toks) && !(toks[i].kind == tokPunct && toks[i].text == ")"); i++ {
					if toks[i].kind == tokIdent {
						q.grouping = append(q.grouping, toks[i].text)
					}
				}
			}
		case aggregators[t.text] || keywords[t.text]:
		case next(1).kind == tokPunct && next(1).text == "(":
			// A function call.
		default:
			sel := selector{metric: t.text}
			if n := next(1); n.kind == tokPunct && n.text == "{" {
				i += 2
				for ; i < len(toks) && !(toks[i].kind == tokPunct && toks[i].text == "}"); i++ {
					if toks[i].kind == tokPunct && toks[i].text == "," {
						continue
					}
					if i+2 >= len(toks) || toks[i].kind != tokIdent || toks[i+1].kind != tokPunct || toks[i+2].kind != tokString && toks[i+2].text != "$var" {
						return q, fmt.Errorf("bad label matcher in selector %s", sel.metric)
					}
					sel.matchers = append(sel.matchers, matcher{label: toks[i].text, op: toks[i+1].text, value: toks[i+2].text})
					i += 2
				}
				if i >= len(toks) {
					return q, fmt.Errorf("unterminated selector %s", sel.metric)
				}
			}
			q.selectors = append(q.selectors, sel)
		}
	}
	return q, nil
}

var literalAlternation = regexp.MustCompile(`^[a-z0-9_]+(\|[a-z0-9_]+)*$`)

// checkQuery returns every problem found in expr: an unknown metric, a label
// the metric does not have, or a label value outside the label's closed set.
func checkQuery(expr string) []string {
	q, err := parsePromQL(expr)
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	if len(q.selectors) == 0 {
		problems = append(problems, "no metric selector")
	}
	known := map[string]bool{"le": true}
	for l := range targetLabels {
		known[l] = true
	}
	for _, sel := range q.selectors {
		m, bucket, ok := lookupMetric(sel.metric)
		if !ok {
			problems = append(problems, fmt.Sprintf("unknown metric %q", sel.metric))
			continue
		}
		for l := range m.labels {
			known[l] = true
		}
		for _, mt := range sel.matchers {
			values, ok := m.labels[mt.label]
			if tv, isTarget := targetLabels[mt.label]; isTarget {
				values, ok = tv, true
			}
			if mt.label == "le" && bucket {
				values, ok = nil, true
			}
			if !ok {
				problems = append(problems, fmt.Sprintf("metric %s has no label %q", sel.metric, mt.label))
				continue
			}
			if values == nil || mt.value == "$var" {
				continue
			}
			alts := []string{mt.value}
			if mt.op == "=~" || mt.op == "!~" {
				if !literalAlternation.MatchString(mt.value) {
					continue // a real regex: not checked
				}
				alts = strings.Split(mt.value, "|")
			}
			for _, v := range alts {
				if !slices.Contains(values, v) {
					problems = append(problems, fmt.Sprintf("%s{%s%s%q}: %q is not one of %v", sel.metric, mt.label, mt.op, mt.value, v, values))
				}
			}
		}
	}
	for _, l := range q.grouping {
		if !known[l] {
			problems = append(problems, fmt.Sprintf("grouping by label %q that no selected metric has", l))
		}
	}
	return problems
}

func TestCheckQuery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr string
		want []string // substrings of the problems, in order; nil: none
	}{
		{`up`, nil},
		{`absent(up{job="orderworker"} == 1)`, nil},
		{`sum by (provider, le) (rate(orderworker_provider_request_duration_seconds_bucket{job="orderworker", call="submit"}[$__rate_interval]))`, nil},
		{`histogram_quantile(0.99, sum by (le) (rate(orderworker_order_attempts_bucket[5m])))`, nil},
		{`max by (queue) (asynq_tasks_enqueued{state="archived"} - min_over_time(asynq_tasks_enqueued{state="archived"}[15m] offset 1h)) > 0`, nil},
		{`sum(rate(orderworker_provider_request_duration_seconds_count{result!~"ok|not_found"}[5m])) / sum(rate(orderworker_provider_request_duration_seconds_count[5m:1m]))`, nil},
		{`a and on (queue) b`, []string{`unknown metric "a"`, `unknown metric "b"`, `grouping by label "queue"`}},
		{`orderworker_orders_total{provider="tencent", outcome="done"}`, []string{`"done" is not one of`}},
		{`orderworker_orders{stat="paid"}`, []string{`has no label "stat"`}},
		{`orderworker_order_oldest_age_seconds{state="paid"}`, []string{`"paid" is not one of`}},
		{`orderworker_provider_request_duration_seconds_count{result=~"ok|timeout"}`, []string{`"timeout" is not one of`}},
		{`orderworker_provider_request_duration_seconds_count{result=~"un.*"}`, nil},
		{`orderworker_orders_total{provider=~"$provider"}`, nil},
		{`orderworker_orders_bucket`, []string{`unknown metric "orderworker_orders_bucket"`}},
		{`asynq_queue_size{le="1"}`, []string{`has no label "le"`}},
		{`{__name__="up"}`, []string{"without a metric name"}},
		{`rate(orderworker_orders_total{provider="tencent"[5m])`, []string{"bad label matcher"}},
		{`sum(rate(x_total[5m]))`, []string{`unknown metric "x_total"`}},
		{`1 + 1`, []string{"no metric selector"}},
	}
	for _, tt := range tests {
		got := checkQuery(tt.expr)
		if len(got) != len(tt.want) {
			t.Errorf("checkQuery(%s) = %q, want %d problems like %q", tt.expr, got, len(tt.want), tt.want)
			continue
		}
		for i := range got {
			if !strings.Contains(got[i], tt.want[i]) {
				t.Errorf("checkQuery(%s) problem %d = %q, want it to contain %q", tt.expr, i, got[i], tt.want[i])
			}
		}
	}
}

// ---------------------------------------------------------------------------
// docker-compose.yml

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
	Configs  map[string]composeFileRef `yaml:"configs"`
	Secrets  map[string]composeFileRef `yaml:"secrets"`
}

type composeFileRef struct {
	File string `yaml:"file"`
}

type composeService struct {
	Image         string         `yaml:"image"`
	Build         *composeBuild  `yaml:"build"`
	ContainerName string         `yaml:"container_name"`
	Command       stringList     `yaml:"command"`
	Entrypoint    stringList     `yaml:"entrypoint"`
	Environment   envMap         `yaml:"environment"`
	EnvFile       stringList     `yaml:"env_file"`
	Ports         []any          `yaml:"ports"`
	Expose        []any          `yaml:"expose"`
	Volumes       []composeMount `yaml:"volumes"`
	Healthcheck   *struct {
		Test stringList `yaml:"test"`
	} `yaml:"healthcheck"`
	Profiles        []string `yaml:"profiles"`
	StopGracePeriod string   `yaml:"stop_grace_period"`
}

// composeBuild is the build key: a context path, or a mapping.
type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

func (b *composeBuild) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		b.Context = n.Value
		return nil
	}
	type plain composeBuild
	return n.Decode((*plain)(b))
}

// stringList is a string or a list of strings.
type stringList []string

func (s *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = strings.Fields(n.Value)
		return nil
	}
	return n.Decode((*[]string)(s))
}

// envMap is the environment key: a mapping, or a list of NAME=value.
type envMap map[string]string

func (e *envMap) UnmarshalYAML(n *yaml.Node) error {
	*e = envMap{}
	if n.Kind == yaml.SequenceNode {
		var list []string
		if err := n.Decode(&list); err != nil {
			return err
		}
		for _, kv := range list {
			k, v, _ := strings.Cut(kv, "=")
			(*e)[k] = v
		}
		return nil
	}
	var m map[string]*string
	if err := n.Decode(&m); err != nil {
		return err
	}
	for k, v := range m {
		if v == nil {
			(*e)[k] = ""
		} else {
			(*e)[k] = *v
		}
	}
	return nil
}

// composeMount is a volumes entry: "source:target[:mode]" or the long form.
type composeMount struct {
	Type   string `yaml:"type"`
	Source string `yaml:"source"`
	Target string `yaml:"target"`
}

func (m *composeMount) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		type plain composeMount
		return n.Decode((*plain)(m))
	}
	parts := strings.Split(n.Value, ":")
	switch len(parts) {
	case 1: // anonymous volume
		m.Type, m.Target = "volume", parts[0]
		return nil
	case 2, 3:
		m.Source, m.Target = parts[0], parts[1]
	default:
		return fmt.Errorf("volume %q: want source:target[:mode]", n.Value)
	}
	if strings.HasPrefix(m.Source, ".") || strings.HasPrefix(m.Source, "/") || strings.HasPrefix(m.Source, "~") {
		m.Type = "bind"
	} else {
		m.Type = "volume"
	}
	return nil
}

// interpolate resolves compose's ${VAR:-default}, ${VAR-default} and ${VAR}
// as if no variable were set, so checks judge the file, not the shell.
var interpolation = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}`)

func interpolate(s string) string {
	return interpolation.ReplaceAllString(s, "$2")
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	readYAML(t, composePath, &c)
	if len(c.Services) == 0 {
		t.Fatalf("%s: no services", composePath)
	}
	return c
}

func service(t *testing.T, c composeFile, name string) composeService {
	t.Helper()
	s, ok := c.Services[name]
	if !ok {
		t.Fatalf("%s: no service %q", composePath, name)
	}
	return s
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func mustExist(t *testing.T, what, path string, dir bool) {
	t.Helper()
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		t.Errorf("%s: %v", what, err)
	case dir && !fi.IsDir():
		t.Errorf("%s: %s is not a directory", what, path)
	case !dir && fi.IsDir():
		t.Errorf("%s: %s is a directory, want a file", what, path)
	}
}

func TestComposeLocalPathsExist(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	for name, s := range c.Services {
		if s.Build != nil {
			ctx := filepath.Join(repoRoot, interpolate(s.Build.Context))
			mustExist(t, name+" build context", ctx, true)
			df := s.Build.Dockerfile
			if df == "" {
				df = "Dockerfile"
			}
			mustExist(t, name+" Dockerfile", filepath.Join(ctx, interpolate(df)), false)
		}
		if s.Image == "" && s.Build == nil {
			t.Errorf("service %s has neither image nor build", name)
		}
		for _, f := range s.EnvFile {
			mustExist(t, name+" env_file", filepath.Join(repoRoot, interpolate(f)), false)
		}
		for _, v := range s.Volumes {
			switch v.Type {
			case "bind":
				mustExist(t, fmt.Sprintf("%s bind mount of %s", name, v.Target), filepath.Join(repoRoot, interpolate(v.Source)), isDirTarget(v.Target))
			case "volume":
				if _, ok := c.Volumes[v.Source]; v.Source != "" && !ok {
					t.Errorf("service %s mounts volume %q, not declared under top-level volumes", name, v.Source)
				}
			}
		}
	}
	for name, ref := range c.Configs {
		if ref.File != "" {
			mustExist(t, "config "+name, filepath.Join(repoRoot, interpolate(ref.File)), false)
		}
	}
	for name, ref := range c.Secrets {
		if ref.File != "" {
			mustExist(t, "secret "+name, filepath.Join(repoRoot, interpolate(ref.File)), false)
		}
	}
}

// isDirTarget guesses from a mount target whether it mounts a directory:
// a target with a file extension mounts a file.
func isDirTarget(target string) bool {
	return filepath.Ext(target) == ""
}

func TestComposeRedis(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	redis := service(t, c, "redis")
	if !strings.HasPrefix(redis.Image, "redis:7") {
		t.Errorf("redis image = %q, want redis:7...", redis.Image)
	}
	args := " " + strings.Join(redis.Command, " ") + " "
	// A single Redis: an fsync per write, or a host crash takes back what
	// it acknowledged.
	// And records and tasks kept compact (deploy/README.md, "Production
	// Redis").
	for _, want := range []string{" --appendonly yes ", " --appendfsync always ", " --maxmemory-policy noeviction ", " --hash-max-listpack-value 1024 "} {
		if !strings.Contains(args, want) {
			t.Errorf("redis command %q lacks %q", redis.Command, strings.TrimSpace(want))
		}
	}
	if !slices.ContainsFunc(redis.Volumes, func(m composeMount) bool { return m.Target == "/data" && m.Source != "" }) {
		t.Errorf("redis: no volume on /data, the AOF would not outlive the container")
	}
}

func TestComposeWorker(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	w := service(t, c, "worker")
	if w.Build == nil {
		t.Error("worker: want a build section (the Dockerfile)")
	}
	if w.ContainerName != "" {
		t.Errorf("worker: container_name %q stops it from scaling", w.ContainerName)
	}
	if len(w.Ports) != 0 {
		t.Errorf("worker: published ports %v stop it from scaling (Prometheus reaches it inside the network)", w.Ports)
	}

	// Every variable it sets is one the worker reads; credentials are passed
	// through, never written into the file.
	for k, v := range w.Environment {
		if !slices.Contains(workerEnv, k) {
			t.Errorf("worker: environment sets %s, which the worker does not read", k)
		}
		if slices.Contains(secretEnv, k) && v != "${"+k+":-}" {
			t.Errorf("worker: %s = %q, want the pass-through ${%s:-}", k, v, k)
		}
	}
	for _, k := range []string{"REDIS_URL", "ORDERWORKER_ADMIN_ADDR"} {
		if _, ok := w.Environment[k]; !ok {
			t.Errorf("worker: environment does not set %s", k)
		}
	}
	// The README says the worker runs with the table's defaults unless
	// the shell or .env sets a variable: every setting the worker reads
	// (but -dev's own) is passed through, with the table's default.
	for _, v := range settings.Worker() {
		if v.Name == "ORDERWORKER_API_TOKENS" { // -dev only
			continue
		}
		got, ok := w.Environment[v.Name]
		if !ok {
			t.Errorf("worker: environment does not pass %s through: setting it in the shell or .env would do nothing", v.Name)
			continue
		}
		wired := v.Name == "REDIS_URL" || v.Name == "ORDERWORKER_ADMIN_ADDR" // the stack's own topology
		if !wired && !slices.Contains(secretEnv, v.Name) && !strings.HasPrefix(got, "${"+v.Name+":-") {
			t.Errorf("worker: %s = %q, want ${%s:-default} (the shell or .env may set it)", v.Name, got, v.Name)
		}
	}
	if u, err := url.Parse(interpolate(w.Environment["REDIS_URL"])); err != nil || u.Hostname() != "redis" {
		t.Errorf("worker: REDIS_URL %q does not point at the redis service", w.Environment["REDIS_URL"])
	}
	for name, s := range c.Services {
		if name == "worker" || s.Image != w.Image {
			continue
		}
		for k := range s.Environment { // e.g. the enqueue CLI from the same image
			if !slices.Contains(workerEnv, k) {
				t.Errorf("%s: environment sets %s, which orderworker does not read", name, k)
			}
		}
	}
}

// TestComposeEnqueueHoldsTheSecretsToMask checks that the enqueue service,
// whose resolve and redrive store an operator's note cleaned of the secrets
// the process holds, holds every secret the stack's other services do,
// passed through as they are (a black-box run: a key pasted into a note
// through the runbook's command was stored and sent out in clear).
func TestComposeEnqueueHoldsTheSecretsToMask(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	env := func(s composeService) func(string) string {
		return func(k string) string {
			if s.Environment[k] == "${"+k+":-}" {
				return "value-of-" + k
			}
			return ""
		}
	}
	got := settings.SecretValues(env(service(t, c, "enqueue")))
	for name, s := range c.Services {
		for _, v := range settings.SecretValues(env(s)) {
			if !slices.Contains(got, v) {
				t.Errorf("enqueue: does not pass %s through, which %s holds: a note with it pasted in would be stored in clear", strings.TrimPrefix(v, "value-of-"), name)
			}
		}
	}
	if len(got) < 3 {
		t.Errorf("enqueue holds %d secrets; want every provider's and orderworker's own", len(got))
	}
}

// TestAPIHealthcheckAgrees checks that the api service's healthcheck runs
// the image's probe on the port ORDERWORKER_API_ADDR names, at /healthz.
func TestAPIHealthcheckAgrees(t *testing.T) {
	t.Parallel()
	a := service(t, loadCompose(t), "api")
	if a.Healthcheck == nil || len(a.Healthcheck.Test) != 3 || a.Healthcheck.Test[0] != "CMD" || a.Healthcheck.Test[1] != "/healthcheck" {
		t.Fatalf("api healthcheck %+v: want [CMD /healthcheck URL] (the image has no shell or curl)", a.Healthcheck)
	}
	u, err := url.Parse(a.Healthcheck.Test[2])
	if err != nil || u.Scheme != "http" || u.Path != "/healthz" {
		t.Fatalf("api healthcheck probes %q, want http://…/healthz", a.Healthcheck.Test[2])
	}
	_, p, err := net.SplitHostPort(interpolate(a.Environment["ORDERWORKER_API_ADDR"]))
	if err != nil {
		t.Fatalf("api ORDERWORKER_API_ADDR: %v", err)
	}
	if portOf(t, p) != portOf(t, u.Port()) {
		t.Errorf("api healthcheck port %s, ORDERWORKER_API_ADDR port %s: want the same", u.Port(), p)
	}
}

// TestAdminPortAgrees checks that the healthcheck, ORDERWORKER_ADMIN_ADDR,
// the Dockerfile's EXPOSE and Prometheus' scrape configuration all use the
// same admin port, and that Prometheus discovers the compose service.
func TestAdminPortAgrees(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	w := service(t, c, "worker")

	if w.Healthcheck == nil || len(w.Healthcheck.Test) < 2 {
		t.Fatal("worker: no healthcheck")
	}
	test := w.Healthcheck.Test
	if test[0] != "CMD" {
		t.Errorf("worker healthcheck %q: want the exec form [\"CMD\", ...]: the image has no shell", test)
	}
	if test[1] != "/healthcheck" {
		t.Errorf("worker healthcheck runs %q, want /healthcheck (the image has no curl)", test[1])
	}
	var hcURL *url.URL
	for _, arg := range test[1:] {
		if u, err := url.Parse(arg); err == nil && u.Scheme == "http" {
			hcURL = u
		}
	}
	if hcURL == nil {
		t.Fatalf("worker healthcheck %q has no http:// URL", test)
	}
	if hcURL.Path != "/healthz" {
		t.Errorf("worker healthcheck probes %s, want /healthz", hcURL.Path)
	}
	ports := map[string]int{"healthcheck URL": portOf(t, hcURL.Port())}

	_, p, err := net.SplitHostPort(interpolate(w.Environment["ORDERWORKER_ADMIN_ADDR"]))
	if err != nil {
		t.Errorf("worker ORDERWORKER_ADMIN_ADDR: %v", err)
	} else {
		ports["ORDERWORKER_ADMIN_ADDR"] = portOf(t, p)
	}

	var prom struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName      string `yaml:"job_name"`
			MetricsPath  string `yaml:"metrics_path"`
			DNSSDConfigs []struct {
				Names []string `yaml:"names"`
				Type  string   `yaml:"type"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, prometheusConfig, &prom)
	found := false
	for _, sc := range prom.ScrapeConfigs {
		if sc.JobName != "orderworker" {
			continue
		}
		found = true
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("prometheus job orderworker scrapes %s, want /metrics", sc.MetricsPath)
		}
		if len(sc.DNSSDConfigs) != 1 {
			t.Fatalf("prometheus job orderworker: want one dns_sd_configs entry, got %d", len(sc.DNSSDConfigs))
		}
		sd := sc.DNSSDConfigs[0]
		if !slices.Equal(sd.Names, []string{"worker"}) || sd.Type != "A" {
			t.Errorf("prometheus dns_sd_configs = names %v type %s, want names [worker] type A", sd.Names, sd.Type)
		}
		for _, n := range sd.Names {
			if _, ok := c.Services[n]; !ok {
				t.Errorf("prometheus discovers %q, not a compose service", n)
			}
		}
		ports["prometheus dns_sd_configs port"] = sd.Port
	}
	if !found {
		t.Fatalf("%s: no scrape job named orderworker", prometheusConfig)
	}

	df, err := os.ReadFile(dockerfilePath)
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^EXPOSE\s+(\d+)`).FindSubmatch(df); m == nil {
		t.Errorf("%s: no EXPOSE", dockerfilePath)
	} else {
		ports["Dockerfile EXPOSE"] = portOf(t, string(m[1]))
	}
	for _, e := range w.Expose {
		ports["compose expose"] = portOf(t, fmt.Sprint(e))
	}

	for what, p := range ports {
		if p != adminPort {
			t.Errorf("%s uses port %d, want the admin port %d", what, p, adminPort)
		}
	}
}

func portOf(t *testing.T, s string) int {
	t.Helper()
	p, err := strconv.Atoi(s)
	if err != nil {
		t.Errorf("port %q: %v", s, err)
	}
	return p
}

func TestPrometheusRuleFilesExist(t *testing.T) {
	t.Parallel()
	var prom struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	readYAML(t, prometheusConfig, &prom)
	if len(prom.RuleFiles) == 0 {
		t.Fatalf("%s loads no rule_files", prometheusConfig)
	}
	for _, rf := range prom.RuleFiles {
		// Prometheus resolves rule_files relative to the config file.
		matches, err := filepath.Glob(filepath.Join(filepath.Dir(prometheusConfig), rf))
		if err != nil || len(matches) == 0 {
			t.Errorf("%s: rule_files entry %q matches no file (%v)", prometheusConfig, rf, err)
		}
	}
}

func TestComposeGrafanaAndPrometheus(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)

	prom := service(t, c, "prometheus")
	cfgMounted := false
	for _, v := range prom.Volumes {
		if v.Type == "bind" && filepath.Clean(v.Source) == "deploy/prometheus" && v.Target == "/etc/prometheus" {
			cfgMounted = true
		}
	}
	if !cfgMounted {
		t.Error("prometheus: deploy/prometheus is not mounted on /etc/prometheus")
	}
	if !slices.Contains(prom.Command, "--config.file=/etc/prometheus/prometheus.yml") {
		t.Errorf("prometheus command %q does not load /etc/prometheus/prometheus.yml", prom.Command)
	}

	graf := service(t, c, "grafana")
	mounts := map[string]string{} // target -> source
	for _, v := range graf.Volumes {
		if v.Type == "bind" {
			mounts[v.Target] = filepath.Clean(v.Source)
		}
	}
	if got := mounts["/etc/grafana/provisioning"]; got != "deploy/grafana/provisioning" {
		t.Errorf("grafana: /etc/grafana/provisioning mounts %q, want deploy/grafana/provisioning", got)
	}

	var providers struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, dashProvidersPath, &providers)
	if len(providers.Providers) == 0 {
		t.Fatalf("%s: no dashboard providers", dashProvidersPath)
	}
	for _, p := range providers.Providers {
		src, ok := mounts[p.Options.Path]
		if !ok {
			t.Errorf("dashboard provider path %s is not a grafana bind mount", p.Options.Path)
			continue
		}
		if want := filepath.Dir(dashboardPath); filepath.Join(repoRoot, src) != filepath.Join(repoRoot, "deploy", want) {
			t.Errorf("dashboard provider path %s mounts %s, want deploy/%s", p.Options.Path, src, want)
		}
	}

	var ds struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	readYAML(t, datasourcesPath, &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" {
		t.Fatalf("%s: want one prometheus datasource", datasourcesPath)
	}
	u, err := url.Parse(ds.Datasources[0].URL)
	if err != nil || u.Hostname() != "prometheus" || u.Port() != "9090" {
		t.Errorf("datasource url %q, want http://prometheus:9090", ds.Datasources[0].URL)
	}
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(dockerfilePath)
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	for _, want := range []string{
		"FROM golang:1.26 AS build",
		"COPY go.mod go.sum ./",
		"go mod download",
		"CGO_ENABLED=0",
		"-trimpath",
		"./cmd/worker",
		"./cmd/enqueue",
		"./deploy/healthcheck",
		"FROM gcr.io/distroless/static",
		":nonroot",
		"COPY --from=build /out/healthcheck /healthcheck",
		`ENTRYPOINT ["/worker"]`,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("%s lacks %q", dockerfilePath, want)
		}
	}
	if strings.Index(df, "go mod download") > strings.Index(df, "COPY . .") {
		t.Errorf("%s: go mod download must run before COPY . . so its layer is cached", dockerfilePath)
	}

	ignore, err := os.ReadFile(dockerignorePath)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(ignore), "\n") {
		line = strings.TrimSpace(line)
		for _, needed := range []string{"*", "go.mod", "go.sum", "cmd", "deploy", "deploy/healthcheck"} {
			if line == needed || line == needed+"/" {
				t.Errorf("%s excludes %q, which the image build needs", dockerignorePath, line)
			}
		}
	}
}

// ---------------------------------------------------------------------------
// promtool

// promtool runs promtool with args in this directory and fails the test with
// its output if it exits non-zero. A missing promtool fails the test: these
// checks are the only thing standing between a broken rule and production.
func promtool(t *testing.T, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found on PATH (%v): install it (Debian: apt-get install prometheus) to check the Prometheus config and alert rules", err)
	}
	cmd := exec.CommandContext(t.Context(), path, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPromtoolCheckConfig(t *testing.T) {
	t.Parallel()
	promtool(t, "check", "config", prometheusConfig)
}

func TestPromtoolCheckRules(t *testing.T) {
	t.Parallel()
	promtool(t, "check", "rules", alertsPath)
}

func TestPromtoolTestRules(t *testing.T) {
	t.Parallel()
	out := promtool(t, "test", "rules", alertsTestPath)
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules: no SUCCESS in output:\n%s", out)
	}
}

// ---------------------------------------------------------------------------
// Alert rules

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadAlerts(t *testing.T) []rule {
	t.Helper()
	var rf ruleFile
	readYAML(t, alertsPath, &rf)
	var rules []rule
	for _, g := range rf.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatalf("%s: no rules", alertsPath)
	}
	return rules
}

func TestAlertRules(t *testing.T) {
	t.Parallel()
	runbook, err := os.ReadFile(runbookPath)
	if err != nil {
		t.Fatal(err)
	}
	headings := map[string]bool{}
	for _, line := range strings.Split(string(runbook), "\n") {
		if h, ok := strings.CutPrefix(line, "### "); ok {
			headings[githubAnchor(h)] = true
		}
	}
	seen := map[string]bool{}
	for _, r := range loadAlerts(t) {
		if r.Alert == "" {
			t.Errorf("recording rule %s in %s: this file holds alerts only", r.Record, alertsPath)
			continue
		}
		if seen[r.Alert] {
			t.Errorf("alert %s defined twice", r.Alert)
		}
		seen[r.Alert] = true
		if s := r.Labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("alert %s: severity %q, want warning or critical", r.Alert, s)
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("alert %s: no %s annotation", r.Alert, a)
			}
		}
		anchor := strings.ToLower(r.Alert)
		if want := "deploy/README.md#" + anchor; r.Annotations["runbook_url"] != want {
			t.Errorf("alert %s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
		}
		if !headings[anchor] {
			t.Errorf("alert %s: %s has no section \"### %s\"", r.Alert, runbookPath, r.Alert)
		}
		for _, p := range checkQuery(r.Expr) {
			t.Errorf("alert %s: %s", r.Alert, p)
		}
		if !strings.Contains(r.Expr, `job="orderworker"`) {
			t.Errorf("alert %s: expression does not select job=\"orderworker\"", r.Alert)
		}
	}
}

// githubAnchor is the anchor GitHub gives a Markdown heading.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// TestEveryAlertIsUnitTested checks that alerts_test.yml loads alerts.yml and
// has, for every alert, a case where it fires and one where it must not.
func TestEveryAlertIsUnitTested(t *testing.T) {
	t.Parallel()
	var ut struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			Name          string `yaml:"name"`
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, alertsTestPath, &ut)
	if !slices.Contains(ut.RuleFiles, filepath.Base(alertsPath)) {
		t.Errorf("%s: rule_files %v does not load %s", alertsTestPath, ut.RuleFiles, filepath.Base(alertsPath))
	}
	fires, silent := map[string]int{}, map[string]int{}
	for _, tc := range ut.Tests {
		for _, at := range tc.AlertRuleTest {
			if len(at.ExpAlerts) > 0 {
				fires[at.Alertname]++
			} else {
				silent[at.Alertname]++
			}
		}
	}
	alerts := map[string]bool{}
	for _, r := range loadAlerts(t) {
		alerts[r.Alert] = true
		if fires[r.Alert] == 0 {
			t.Errorf("alert %s: no unit test where it fires", r.Alert)
		}
		if silent[r.Alert] == 0 {
			t.Errorf("alert %s: no unit test where it stays silent", r.Alert)
		}
	}
	for name := range fires {
		if !alerts[name] {
			t.Errorf("%s tests alert %s, which %s does not define", alertsTestPath, name, alertsPath)
		}
	}
	for name := range silent {
		if !alerts[name] {
			t.Errorf("%s tests alert %s, which %s does not define", alertsTestPath, name, alertsPath)
		}
	}
}

// ---------------------------------------------------------------------------
// Grafana dashboard

type dashPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"` // collapsed rows
}

type dashboard struct {
	UID        string      `json:"uid"`
	Title      string      `json:"title"`
	Panels     []dashPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

// dashboardQuery is one PromQL query of the dashboard.
type dashboardQuery struct {
	where string
	expr  string
}

func loadDashboard(t *testing.T) (dashboard, []dashboardQuery) {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	var queries []dashboardQuery
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				queries = append(queries, dashboardQuery{fmt.Sprintf("panel %q target %s", p.Title, tg.RefID), tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return d, queries
}

func TestDashboard(t *testing.T) {
	t.Parallel()
	d, queries := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("%s: want a uid and a title", dashboardPath)
	}

	var ds struct {
		Datasources []struct {
			UID string `yaml:"uid"`
		} `yaml:"datasources"`
	}
	readYAML(t, datasourcesPath, &ds)
	if len(ds.Datasources) == 0 {
		t.Fatalf("%s: no datasource", datasourcesPath)
	}
	uid := ds.Datasources[0].UID

	ids := map[int]bool{}
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
			}
			ids[p.ID] = true
			if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
				t.Errorf("panel %q: no gridPos", p.Title)
			}
			if p.Type != "row" {
				if p.Datasource == nil || p.Datasource.UID != uid {
					t.Errorf("panel %q: datasource is not the provisioned uid %q", p.Title, uid)
				}
				if len(p.Targets) == 0 {
					t.Errorf("panel %q: no queries", p.Title)
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)

	for _, v := range d.Templating.List {
		if v.Type == "query" {
			t.Errorf("template variable %s: query variables are not checked here; add their metric check first", v.Name)
		}
	}

	// The panels an operator needs, found by the metrics they use.
	for _, want := range []string{
		"orderworker_orders_total",                             // throughput by outcome and provider
		"orderworker_provider_request_duration_seconds_bucket", // provider latency p50/p99
		"asynq_queue_latency_seconds",                          // queue latency
		"orderworker_retries_total",                            // retries
		"orderworker_orders{",                                  // orders by state
		"orderworker_breaker_state",                            // breaker state
	} {
		if !slices.ContainsFunc(queries, func(q dashboardQuery) bool { return strings.Contains(q.expr, want) }) {
			t.Errorf("%s: no panel queries %s", dashboardPath, strings.TrimSuffix(want, "{"))
		}
	}
	for _, want := range []string{"histogram_quantile(0.5,", "histogram_quantile(0.99,"} {
		if !slices.ContainsFunc(queries, func(q dashboardQuery) bool { return strings.Contains(q.expr, want) }) {
			t.Errorf("%s: no %s quantile", dashboardPath, want)
		}
	}

	for _, q := range queries {
		if strings.TrimSpace(q.expr) == "" {
			t.Errorf("%s: empty query", q.where)
		}
		for _, p := range checkQuery(q.expr) {
			t.Errorf("%s: %s", q.where, p)
		}
	}
}

// grafanaIntervals are Grafana's built-in range variables, replaced by a
// duration so the query can be parsed by promtool.
var grafanaIntervals = strings.NewReplacer(
	"$__rate_interval", "5m",
	"${__rate_interval}", "5m",
	"$__interval", "1m",
	"${__interval}", "1m",
	"$__range", "1h",
	"${__range}", "1h",
)

// TestDashboardQueriesParse has promtool parse every dashboard query, by
// writing them into a throw-away file of recording rules.
func TestDashboardQueriesParse(t *testing.T) {
	t.Parallel()
	_, queries := loadDashboard(t)
	type recRule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []recRule
	for i, q := range queries {
		expr := grafanaIntervals.Replace(q.expr)
		if strings.Contains(expr, "$") {
			t.Errorf("%s: Grafana variable left in %q", q.where, q.expr)
			continue
		}
		rules = append(rules, recRule{Record: fmt.Sprintf("dashboard:query_%d", i), Expr: expr})
	}
	file := map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}}
	b, err := yaml.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard_rules.yml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, "check", "rules", path)
}

func TestREADMEConfigTableParsed(t *testing.T) {
	for _, want := range []string{"REDIS_URL", "TENCENT_APP_SECRET", "ORDERWORKER_DATA_KEY", "ORDERWORKER_RATE_LIMITS"} {
		if !slices.Contains(workerEnv, want) {
			t.Errorf("the README's configuration table yields %v, which lacks %s", workerEnv, want)
		}
	}
}
