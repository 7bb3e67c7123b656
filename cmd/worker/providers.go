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
			if missing, partial := partialCredentials(pc); partial {
				// Some of its credentials but not all: more likely a
				// misspelt or forgotten variable than a provider meant
				// to be off. Names only: a value may be a secret.
				log.Warn("provider disabled: some of its credentials are set, but not all (a misspelt or missing variable?)",
					"provider", pc.Spec.Name, "missing", missing, "reason", reason)
				continue
			}
			log.Info("provider disabled", "provider", pc.Spec.Name, "reason", reason)
			continue
		}
		set.AddSpec(pc.Spec, p)
		log.Info("provider enabled", "provider", p.Name())
	}
	// A disabled provider's create overrun as configured (an enabled
	// one says its own): the worker ends such a provider's orders too.
	for _, pc := range cfg.Providers {
		if err := set.ConfigureOverrun(pc.Spec, pc.Config.Get); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// partialCredentials reports whether some of the provider's required
// settings (its credentials) are set but not all, and which are missing.
func partialCredentials(pc providerConfig) (missing []string, partial bool) {
	missing = pc.Spec.Missing(pc.Config)
	required := 0
	for _, st := range pc.Spec.Settings {
		if st.Required {
			required++
		}
	}
	return missing, len(missing) > 0 && len(missing) < required
}
