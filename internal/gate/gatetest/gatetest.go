// Package gatetest builds gates for front-end tests.
package gatetest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/policy"
)

// New builds a gate on knowledge and policy, with a fresh metrics registry
// and the given options.
// It logs nowhere unless STRAY_TEST_LOG is set (then to standard error, at
// debug level).
func New(t testing.TB, k detect.Knowledge, pc policy.Config, opts ...gate.Option) *gate.Gate {
	t.Helper()
	c, err := detect.New(k)
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Compile(pc, "policy")
	if err != nil {
		t.Fatal(err)
	}
	var w io.Writer = io.Discard
	if os.Getenv("STRAY_TEST_LOG") != "" {
		w = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return gate.New(&gate.Engine{Checker: c, Policy: p}, log, prometheus.NewRegistry(), opts...)
}

// Server is a front end's server.
type Server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// Serve runs s on a free loopback port until the test ends and returns the
// address.
func Serve(t testing.TB, s Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return l.Addr().String()
}
