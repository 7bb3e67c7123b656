package main

import (
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
)

// buildProviders enables each provider whose required settings are
// configured and disables the others (their orders fail with a clear
// reason). Aliyun's cloudToken, shared by every worker, lives in rdb.
func buildProviders(cfg *config, rdb redis.UniversalClient, log *slog.Logger) (*providers.Set, error) {
	set := providers.NewSet()
	deps := providers.Deps{Redis: rdb, Logger: log}
	for _, pc := range cfg.Providers {
		p, reason, err := pc.Spec.Build(pc.Config, deps)
		if err != nil {
			return nil, err
		}
		if p == nil {
			set.DisableSpec(pc.Spec, reason)
			log.Info("provider disabled", "provider", pc.Spec.Name, "reason", reason)
			continue
		}
		set.Add(p)
		log.Info("provider enabled", "provider", p.Name())
	}
	return set, nil
}
