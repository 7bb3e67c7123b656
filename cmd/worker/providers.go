package main

import (
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
	"github.com/orderworker/orderworker/providers/aliyun"
	"github.com/orderworker/orderworker/providers/tencent"
	"github.com/orderworker/orderworker/providers/unicloud"
)

// buildProviders enables each provider whose credentials are configured and
// disables the others (their orders fail with a clear reason).
func buildProviders(cfg *config, rdb redis.UniversalClient, log *slog.Logger) (*providers.Set, error) {
	set := providers.NewSet()
	if cfg.Tencent.AppKey != "" && cfg.Tencent.AppSecret != "" {
		c, err := tencent.New(tencent.Options{Endpoint: cfg.Tencent.Endpoint, AppKey: cfg.Tencent.AppKey, AppSecret: cfg.Tencent.AppSecret})
		if err != nil {
			return nil, err
		}
		set.Add(c)
	} else {
		set.Disable(tencent.Name, "TENCENT_APP_KEY and TENCENT_APP_SECRET are not set", tencent.Validate)
	}
	if cfg.Aliyun.AppKey != "" && cfg.Aliyun.AppSecret != "" && cfg.Aliyun.ProjectID != "" {
		c, err := aliyun.New(aliyun.Options{
			Endpoint: cfg.Aliyun.Endpoint, AppKey: cfg.Aliyun.AppKey, AppSecret: cfg.Aliyun.AppSecret,
			ProjectID: cfg.Aliyun.ProjectID, AutoPay: cfg.Aliyun.AutoPay,
			// The cloudToken is shared by every worker: a new one
			// invalidates the old one for all of them.
			Tokens: aliyun.NewRedisTokenStore(rdb, nil),
			Logger: log,
		})
		if err != nil {
			return nil, err
		}
		set.Add(c)
	} else {
		set.Disable(aliyun.Name, "ALIYUN_APP_KEY, ALIYUN_APP_SECRET and ALIYUN_PROJECT_ID are not all set", aliyun.Validate, "userName")
	}
	if cfg.Unicloud.AccessKeyID != "" && cfg.Unicloud.AccessKeySecret != "" {
		c, err := unicloud.New(unicloud.Options{Endpoint: cfg.Unicloud.Endpoint, AccessKeyID: cfg.Unicloud.AccessKeyID, AccessKeySecret: cfg.Unicloud.AccessKeySecret})
		if err != nil {
			return nil, err
		}
		set.Add(c)
	} else {
		set.Disable(unicloud.Name, "UNICLOUD_ACCESS_KEY_ID and UNICLOUD_ACCESS_KEY_SECRET are not set", unicloud.Validate)
	}
	for _, p := range set.Enabled() {
		log.Info("provider enabled", "provider", p.Name())
	}
	return set, nil
}
