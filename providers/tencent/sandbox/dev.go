package sandbox

import (
	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/tencent"
)

// Dev returns a sandbox with demo credentials, as worker -dev runs it. The
// credentials are not secrets: they open only this sandbox, on loopback.
func Dev() providers.Sandbox {
	const key, secret = "DevTencentAppKey", "dev-tencent-app-secret"
	return providers.Sandbox{
		Handler: New(key, secret),
		Env: func(baseURL string) map[string]string {
			return map[string]string{tencent.EnvEndpoint: baseURL, tencent.EnvAppKey: key, tencent.EnvAppSecret: secret}
		},
	}
}
