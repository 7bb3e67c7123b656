package main

import (
	"log/slog"
	"net/http"

	"github.com/redis/go-redis/v9"

	"github.com/orderworker/orderworker/providers"
)

// buildProviders enables each provider whose required settings are
// configured and disables the others (their orders fail with a clear
// reason). Aliyun's cloudToken, shared by every worker, lives in rdb.
// Each provider's HTTP client is built on transport(its name), which the
// worker makes hold every request to the provider's shared rate limit
// (guard.Guard.Transport); a nil transport means the providers' default.
func buildProviders(cfg *config, rdb redis.UniversalClient, log *slog.Logger, transport func(provider string) http.RoundTripper) (*providers.Set, error) {
	set := providers.NewSet()
	for _, pc := range cfg.Providers {
		deps := providers.Deps{Redis: rdb, Logger: log}
		if transport != nil {
			deps.HTTPTransport = transport(pc.Spec.Name)
		}
		p, reason, err := pc.Spec.Build(pc.Config, deps)
		if err != nil {
			return nil, err
		}
		if p == nil {
			set.DisableSpec(pc.Spec, reason)
			log.Info("provider disabled", "provider", pc.Spec.Name, "reason", reason)
			continue
		}
		set.AddSpec(pc.Spec, p)
		log.Info("provider enabled", "provider", p.Name())
	}
	return set, nil
}
