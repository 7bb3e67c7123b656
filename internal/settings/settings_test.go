package settings

import (
	"reflect"
	"testing"
)

func TestUnknownNamesWhatNoCommandReads(t *testing.T) {
	environ := []string{
		"PATH=/usr/bin",
		"ORDERWORKER_MONITORING_TOKN=x", // a typo: the known name suggested
		"ORDERWORKER_QEUUE=orders",      // two letters swapped
		"ORDERWORKER_QUEUE=orders",      // the worker's
		"ORDERWORKER_API_ADDR=:8080",    // enqueue serve's
		"TENCENT_APP_KEY=k",             // a provider's
		"ORDERWORKER_TEST_REDIS_URL=redis://x",
		"ORDERWORKER_FROBNICATE=1", // nothing like it
		"ORDERWORKER_DEBUG=1",      // four edits from ORDERWORKER_QUEUE: too far
		"ORDERWORKER_concurrency=5",
		"ORDERWORKER_NOVALUE",
		"ORDERWORKER_REDIS_URL=redis://x", // the prefix on a name that has none
		"ORDERWORKER_REDIS_ULR=redis://x", // and a typo besides
		// Another prefix of ours: reported only when close to a name
		// we read, other software reading many of its own.
		"REDIS_ULR=redis://x",
		"REDIS_URI=redis://x",
		"REDIS_PASSWORD=p",
		"REDIS_HOST=h",
		"REDIS_USER=u",
		"ALIYUN_AUTOPAY=true",
		"ALIYUN_ACCESS_KEY_ID=k",
		"TENCENT_APP_SECRT=s",
		"UNICLOUD_CREATE_OVERUN=1m",
		"UNICLOUD_REGION=r",
		"UNICLOUD_ACCESS_KEY=k", // cut short
		"REDISURL=redis://x",    // no prefix of ours
	}
	got := Unknown(environ)
	want := []Misspelled{
		{Name: "ALIYUN_AUTOPAY", Like: "ALIYUN_AUTO_PAY"},
		{Name: "ORDERWORKER_DEBUG"},
		{Name: "ORDERWORKER_FROBNICATE"},
		{Name: "ORDERWORKER_MONITORING_TOKN", Like: "ORDERWORKER_MONITORING_TOKEN"},
		{Name: "ORDERWORKER_NOVALUE"},
		{Name: "ORDERWORKER_QEUUE", Like: "ORDERWORKER_QUEUE"},
		{Name: "ORDERWORKER_REDIS_ULR", Like: "REDIS_URL"},
		{Name: "ORDERWORKER_REDIS_URL", Like: "REDIS_URL"},
		{Name: "ORDERWORKER_concurrency", Like: "ORDERWORKER_CONCURRENCY"}, // names are case-sensitive
		{Name: "REDIS_ULR", Like: "REDIS_URL"},
		{Name: "REDIS_URI", Like: "REDIS_URL"},
		{Name: "TENCENT_APP_SECRT", Like: "TENCENT_APP_SECRET"},
		{Name: "UNICLOUD_ACCESS_KEY", Like: "UNICLOUD_ACCESS_KEY_ID"},
		{Name: "UNICLOUD_CREATE_OVERUN", Like: "UNICLOUD_CREATE_OVERRUN"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Unknown = %+v\nwant      %+v", got, want)
	}
	if s := got[3].String(); s != "ORDERWORKER_MONITORING_TOKN is set, but no orderworker command reads it: did you mean ORDERWORKER_MONITORING_TOKEN?" {
		t.Errorf("String = %q", s)
	}
	if s := got[2].String(); s != "ORDERWORKER_FROBNICATE is set, but no orderworker command reads it" {
		t.Errorf("String = %q", s)
	}
	if a := got[2].Args(); !reflect.DeepEqual(a, []any{"name", "ORDERWORKER_FROBNICATE"}) {
		t.Errorf("Args = %v", a)
	}
	if len(Unknown([]string{"ORDERWORKER_DATA_KEY=k", "REDIS_URL=redis://x"})) != 0 {
		t.Error("known variables reported")
	}
}

func TestDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{
		{"", "", 0}, {"abc", "", 3}, {"", "ab", 2}, {"kitten", "sitting", 3},
		{"ORDERWORKER_QUEUE", "ORDERWORKER_QUEU", 1}, {"ORDERWORKER_RETRY_MAX", "ORDERWORKER_RETRY_MAX", 0},
		{"QEUUE", "QUEUE", 1}, {"ab", "ba", 1}, {"abc", "ca", 3},
	} {
		if got := Distance(c.a, c.b); got != c.d {
			t.Errorf("Distance(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
	}
}

// SecretValues holds every secret setting's values (rotations split),
// orderworker's own and the providers' credentials, and no other setting.
func TestSecretValues(t *testing.T) {
	env := map[string]string{
		"ORDERWORKER_WEBHOOK_SECRET": "whsec_newnewnewnew whsec_oldoldoldold",
		"ORDERWORKER_DATA_KEY":       "ZGF0YWtleWRhdGFrZXk=",
		"TENCENT_APP_SECRET":         "tencent-secret-value",
		"ORDERWORKER_QUEUE":          "orders-not-a-secret",
		"ORDERWORKER_API_TOKENS":     "tok-abcdefghijklmnop, short,tok2-zzzzzzzzzzzz",
	}
	got := SecretValues(func(k string) string { return env[k] })
	// The API's tokens are comma-separated: each is masked on its own (a
	// review: with two tokens, only the whole string was).
	want := []string{"ZGF0YWtleWRhdGFrZXk=", "whsec_newnewnewnew", "whsec_oldoldoldold", "tok-abcdefghijklmnop", "tok2-zzzzzzzzzzzz", "tencent-secret-value"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SecretValues = %q, want %q", got, want)
	}
}
