// Command healthcheck probes an HTTP endpoint and exits 0 when it answers
// with a 2xx status, 1 otherwise.
//
// On any other status it prints the start of the answer's body too (the
// worker's /readyz names the problem there). The worker image is
// distroless: it has no shell, curl or wget, so docker-compose's
// healthcheck runs this binary instead:
//
//	healthcheck http://127.0.0.1:9090/healthz
//
// With no argument it probes the worker's default admin address. The probe
// gives up after -timeout (default 3s) and never follows a proxy. -h prints
// the usage and exits 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// defaultURL is the worker's /healthz on its default admin address (:9090).
const defaultURL = "http://127.0.0.1:9090/healthz"

func main() {
	os.Exit(exitCode(run(context.Background(), os.Args[1:], os.Stderr), os.Stderr))
}

// exitCode is the exit status for run's err: 0 when healthy, and for -h
// (the usage is printed); 1 otherwise, the reason printed on stderr.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	}
	fmt.Fprintln(stderr, "healthcheck:", err)
	return 1
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: healthcheck [-timeout 3s] [URL]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	url := defaultURL
	switch fs.NArg() {
	case 0:
	case 1:
		url = fs.Arg(0)
	default:
		fs.Usage()
		return errors.New("at most one URL")
	}
	return probe(ctx, url, *timeout)
}

// probe sends one GET to url and returns nil when the answer is 2xx.
func probe(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// The worker's /readyz names the problem in its answer: said
		// here, the probe is what an operator runs in its container
		// (which has no curl) to read it.
		if b := strings.TrimSpace(strings.ToValidUTF8(string(body), "?")); b != "" {
			return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
		}
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// maxBody is as much of an answer as the probe reads, and says.
const maxBody = 4 << 10
