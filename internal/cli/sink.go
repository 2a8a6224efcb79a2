package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/relay"
	"github.com/stray-mail/stray/internal/store"
)

const sinkHelp = `usage: stray sink --listen HOST:PORT --domains FILE [--config FILE]

Runs an SMTP server for the lookalike domains you registered yourself
(army.ml for army.mil, gmial-company.com for gmail-company.com), so that
strangers cannot, and so that mail sent to them by mistake is not lost in
silence: it accepts no mail at all. Every recipient at one of its domains
is refused with "550 5.1.2 <x@army.ml>: you probably meant x@army.mil", so
the sender's own server bounces the message with the right address; any
other recipient gets 550 5.7.1. Only metadata is recorded: time, client,
sender, recipient and the domain meant, as "sink" events in the store
(the dashboard's event log) and in stray_sink_refused_total on /metrics.
Never the content.

FILE has "DOMAIN INTENDED" lines, as stray scan --emit-deny writes them.
Point the MX records of those domains at this listener (port 25). Also
listen.sink and sink.domains in the config for stray serve.

Examples:
  stray sink --listen 0.0.0.0:25 --domains /etc/stray/registered.txt --config /etc/stray/stray.yaml
`

func runSink(ctx context.Context, args []string, std Stdio) int {
	fs := newFlagSet("sink", sinkHelp, std)
	cfgPath := fs.String("config", "", "YAML config `FILE` (store, sink and log sections)")
	addr := fs.String("listen", "", "listen address `HOST:PORT` (default: listen.sink)")
	domains := fs.String("domains", "", "`FILE` of \"DOMAIN INTENDED\" lines (default: sink.domains)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return flagExit(err)
	}
	df := &detectFlags{config: cfgPath}
	d, cfg, err := newDaemon(df, std)
	if err != nil {
		fmt.Fprintf(std.Err, "stray sink: %v\n", err)
		return ExitUsage
	}
	if *domains != "" {
		cfg.Sink.Domains = *domains
	}
	if *addr == "" {
		*addr = cfg.Listen.Sink
	}
	if *addr == "" || cfg.Sink.Domains == "" {
		fmt.Fprintln(std.Err, "stray sink: --listen and --domains are required (or listen.sink and sink.domains)")
		return ExitUsage
	}
	if err := d.startSink(*addr); err != nil {
		fmt.Fprintf(std.Err, "stray sink: %v\n", err)
		return 1
	}
	return d.wait(ctx, time.Duration(cfg.ShutdownTimeout))
}

// startSink starts the defensive-registration sink; its events go to the
// store when the config has one.
func (d *daemon) startSink(addr string) error {
	path := d.cfg.Sink.Domains
	if path == "" {
		return fmt.Errorf("sink: sink.domains is required")
	}
	f, err := os.Open(d.cfg.Path(path))
	if err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	domains, err := detect.ReadDeny(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("sink: %s: %w", path, err)
	}
	st := d.st
	if st == nil && d.cfg.Store != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		st, err = store.Open(ctx, d.cfg.StoreDSN())
		cancel()
		if err != nil {
			return fmt.Errorf("sink: store: %w", err)
		}
		d.st = st
	}
	l, err := listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	s := relay.NewSink(domains, st, d.log, d.reg)
	d.log.Info("sink domains", "count", len(domains))
	d.run("sink", addr, func() error { return s.Serve(l) }, s.Shutdown)
	return nil
}
