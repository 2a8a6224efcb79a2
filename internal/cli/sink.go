package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/stray-mail/stray/internal/config"
	"github.com/stray-mail/stray/internal/daemon"
	"github.com/stray-mail/stray/internal/listenaddr"
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
	// Everything the flags say is checked, with the config, before the
	// store is opened (a typo must not leave a new store behind).
	check := func(cfg *config.Config) error {
		if *domains == "" {
			*domains = cfg.Sink.Domains
		} else if abs, err := filepath.Abs(*domains); err == nil {
			*domains = abs // a flag's path is the working directory's, not the config's
		}
		if *addr == "" {
			*addr = cfg.Listen.Sink
		}
		switch {
		case *addr == "":
			return errors.New("--listen is required (or listen.sink)")
		case *domains == "":
			return errors.New("--domains is required (or sink.domains)")
		}
		if _, err := listenaddr.TCP(*addr); err != nil {
			return fmt.Errorf("--listen %v", err)
		}
		if _, err := daemon.SinkDomains(cfg, *domains); err != nil {
			return fmt.Errorf("--domains: %v", err)
		}
		return nil
	}
	d, err := daemon.New(ctx, daemon.Options{ConfigPath: *cfgPath, Check: check, LogOutput: std.Err})
	if err != nil {
		fmt.Fprintf(std.Err, "stray sink: %v\n", err)
		return runtimeExit(err)
	}
	if err := d.StartSinkWith(*addr, *domains); err != nil {
		fmt.Fprintf(std.Err, "stray sink: %v\n", err)
		d.Close()
		return runtimeExit(err)
	}
	if err := d.Run(ctx); err != nil {
		return ExitRuntime
	}
	return ExitOK
}
