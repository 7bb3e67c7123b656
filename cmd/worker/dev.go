package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/orderworker/orderworker/providers"
	aliyunsandbox "github.com/orderworker/orderworker/providers/aliyun/sandbox"
	tencentsandbox "github.com/orderworker/orderworker/providers/tencent/sandbox"
	unicloudsandbox "github.com/orderworker/orderworker/providers/unicloud/sandbox"
	"github.com/orderworker/orderworker/tasks"
)

// Demo credentials for the built-in sandboxes. They are not secrets: they
// only open the sandboxes that -dev runs on loopback.
const (
	devTencentKey, devTencentSecret  = "DevTencentAppKey", "dev-tencent-app-secret"
	devUnicloudID, devUnicloudSecret = "DevUnicloudKeyId", "dev-unicloud-key-secret"
	devAliyunKey, devAliyunSecret    = "DevAliyunAppKey", "dev-aliyun-app-secret"
	devAliyunProject                 = "dev-project"
	// devDataKey seals params in -dev when ORDERWORKER_DATA_KEY is unset;
	// like the credentials above it protects nothing real.
	devDataKey = "ZGV2LW9ubHkgZGF0YSBrZXksIG5vdCBhIHNlY3JldCE="
)

// devEnv is what -dev starts: an embedded Redis when none is reachable, and
// the provider sandboxes on loopback.
type devEnv struct {
	mini    *miniredis.Miniredis
	servers []*http.Server
	stop    chan struct{}
}

// startDev prepares cfg for development: it keeps a reachable Redis at
// cfg.RedisURL or starts an embedded one, and points every provider at its
// sandbox with demo credentials.
func startDev(ctx context.Context, cfg *config, log *slog.Logger) (*devEnv, error) {
	d := &devEnv{stop: make(chan struct{})}
	opt, err := tasks.ParseRedisURL(cfg.RedisURL)
	if err != nil {
		return nil, err
	}
	c := ledgerClient(opt)
	reachable := ping(ctx, c, 500*time.Millisecond) == nil
	c.Close()
	if reachable {
		log.Info("dev: using the Redis that is reachable", "redis", tasks.RedactURL(cfg.RedisURL))
	} else if err := d.startRedis(cfg, log); err != nil {
		return nil, err
	}

	if cfg.DataKey == "" {
		cfg.DataKey = devDataKey
	}
	tsb := tencentsandbox.New(devTencentKey, devTencentSecret)
	tURL, err := d.serve(tsb)
	if err != nil {
		d.Close()
		return nil, err
	}
	cfg.Tencent = tencentConfig{Endpoint: tURL, AppKey: devTencentKey, AppSecret: providers.Secret(devTencentSecret)}

	uURL, err := d.serve(unicloudsandbox.New(devUnicloudID, devUnicloudSecret))
	if err != nil {
		d.Close()
		return nil, err
	}
	cfg.Unicloud = unicloudConfig{Endpoint: uURL, AccessKeyID: devUnicloudID, AccessKeySecret: providers.Secret(devUnicloudSecret)}
	aURL, err := d.serve(aliyunsandbox.New(devAliyunKey, devAliyunSecret, devAliyunProject))
	if err != nil {
		d.Close()
		return nil, err
	}
	cfg.Aliyun = aliyunConfig{Endpoint: aURL, AppKey: devAliyunKey, AppSecret: providers.Secret(devAliyunSecret),
		ProjectID: devAliyunProject, AutoPay: true}
	log.Info("dev: provider sandboxes started", "tencent", tURL, "aliyun", aURL, "unicloud", uURL)
	return d, nil
}

// startRedis runs miniredis on the address of cfg.RedisURL when it is free,
// else on any free loopback port, and points cfg.RedisURL at it.
func (d *devEnv) startRedis(cfg *config, log *slog.Logger) error {
	m := miniredis.NewMiniRedis()
	addr := "127.0.0.1:6379"
	if u, err := url.Parse(cfg.RedisURL); err == nil && u.Host != "" {
		addr = u.Host
	}
	if host, _, err := net.SplitHostPort(addr); err != nil || !isLoopback(host) || m.StartAddr(addr) != nil {
		if err := m.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("start embedded redis: %w", err)
		}
	}
	d.mini = m
	cfg.RedisURL = "redis://" + m.Addr() + "/0"
	log.Warn("dev: no Redis reachable; started an embedded one (data lives in memory)", "redis", cfg.RedisURL)
	// miniredis keeps time only when told to: advance its clock so keys
	// with a TTL (locks, asynq's leases) expire.
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-d.stop:
				return
			case <-t.C:
				m.FastForward(250 * time.Millisecond)
			}
		}
	}()
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serve runs h on a free loopback port and returns its base URL.
func (d *devEnv) serve(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("start sandbox: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	d.servers = append(d.servers, srv)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Default().Error("sandbox stopped", "error", err)
		}
	}()
	return "http://" + ln.Addr().String(), nil
}

// Close stops everything -dev started.
func (d *devEnv) Close() {
	if d == nil {
		return
	}
	close(d.stop)
	for _, s := range d.servers {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.Shutdown(ctx)
		cancel()
	}
	if d.mini != nil {
		d.mini.Close()
	}
}
