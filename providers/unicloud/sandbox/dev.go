package sandbox

import (
	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/unicloud"
)

// Dev returns a sandbox with demo credentials, as worker -dev runs it. The
// credentials are not secrets: they open only this sandbox, on loopback.
func Dev() providers.Sandbox {
	const id, secret = "DevUnicloudKeyId", "dev-unicloud-key-secret"
	return providers.Sandbox{
		Handler: New(id, secret),
		Env: func(baseURL string) map[string]string {
			return map[string]string{unicloud.EnvEndpoint: baseURL, unicloud.EnvAccessKeyID: id, unicloud.EnvAccessKeySecret: secret}
		},
	}
}
