// Package deploy is orderworker's deploy surface for operators: the
// Prometheus configuration and alert rules (prometheus/), the Grafana
// dashboard and provisioning (grafana/), the image's healthcheck probe
// (healthcheck/) and the runbook (README.md), used by the repository's
// docker-compose.yml and Dockerfile.
//
// The package has no Go API. Its tests keep those files consistent with each
// other and with the metrics and configuration the worker exposes: they parse
// docker-compose.yml and check every local path it refers to, the admin port
// shared by the healthcheck and the scrape configuration, and the worker's
// environment variables; they run promtool's config and rule checks and the
// alert unit tests (alerts_test.yml), and fail when promtool is missing
// instead of skipping; and they check that every PromQL query in the alert
// rules and the dashboard uses only metric names, labels and label values the
// worker exports.
package deploy
