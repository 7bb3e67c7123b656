package sandbox

import (
	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/aliyun"
)

// Dev returns a sandbox with demo credentials, as worker -dev runs it, with
// ALIYUN_AUTO_PAY on so that its orders end paid. The credentials are not
// secrets: they open only this sandbox, on loopback.
func Dev() providers.Sandbox {
	const key, secret, project = "DevAliyunAppKey", "dev-aliyun-app-secret", "dev-project"
	return providers.Sandbox{
		Handler: New(key, secret, project),
		Env: func(baseURL string) map[string]string {
			return map[string]string{aliyun.EnvEndpoint: baseURL, aliyun.EnvAppKey: key, aliyun.EnvAppSecret: secret,
				aliyun.EnvProjectID: project, aliyun.EnvAutoPay: "true"}
		},
	}
}
