// Package cli implements stray's subcommands: flag parsing, input and output
// formats and exit codes. It translates between people (or scripts) and the
// engine; it never decides whether an address is a typo.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/daemon"
)

// Exit codes, like grep's, and one for what failed at run time.
const (
	ExitOK      = 0 // nothing flagged
	ExitFlagged = 1 // something flagged
	ExitUsage   = 2 // usage or input error
	ExitRuntime = 3 // runtime failure: store unreachable, listener failed
)

// Stdio is a command's standard streams.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
}

type command struct {
	name     string
	synopsis string
	run      func(ctx context.Context, args []string, io Stdio) int
}

func commands() []command {
	return []command{
		{"check", "check recipient addresses for mistyped domains", runCheck},
		{"serve", "run the configured listeners (milter, policy, http) in one daemon", runServe},
		{"milter", "run the milter front end for Postfix or Sendmail", runMilter},
		{"policy", "run the Postfix policy delegation server", runPolicy},
		{"relay", "run the SMTP relay front end (a smart host for any MTA)", runRelay},
		{"sink", "refuse all mail to your own defensive registrations, naming the address meant", runSink},
		{"config", "validate a configuration file (config check FILE)", runConfig},
		{"quarantine", "list, show, release or discard held messages", runQuarantine},
		{"scan", "find the registered lookalikes of your domains, and watch them", runScan},
		{"audit", "report mail already delivered to lookalike domains, from mail logs", runAudit},
		{"learn", "list the domains you really write to, from mail logs (a --known file)", runLearn},
		{"user", "add, list or delete dashboard users, set passwords", runUser},
		{"token", "add, list or revoke tokens for the HTTP check API", runToken},
		{"store", "back up the store while stray runs (store backup FILE)", runStore},
		{"version", "print the version, commit, Go version and build date", runVersion},
	}
}

// Run runs the subcommand named by args[0] and returns the exit code.
func Run(ctx context.Context, args []string, std Stdio) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			return Run(ctx, []string{args[1], "--help"}, std)
		}
		usage(std.Out)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], std)
		}
	}
	fmt.Fprintf(std.Err, "stray: unknown command %q\n\n", args[0])
	usage(std.Err)
	return ExitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, "usage: stray COMMAND [FLAGS] [ARGS]\n\n"+
		"stray stops e-mail to mistyped recipient domains: army.ml for army.mil,\n"+
		"gmial.com for gmail.com, gmаil.com with a Cyrillic а.\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.synopsis)
	}
	fmt.Fprint(w, "\nRun `stray COMMAND --help` for a command's flags and examples.\n")
}

// strings is a repeatable string flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// detectFlags are the knowledge flags of every command that checks
// addresses: --protect, --known, --deny and --config.
type detectFlags struct {
	protect, known, deny stringsFlag
	config               *string
}

func addDetectFlags(fs *flag.FlagSet, configUsage string) *detectFlags {
	d := &detectFlags{}
	fs.Var(&d.protect, "protect", "your own domain or suffix (repeatable): mil, army.mil, example.com")
	fs.Var(&d.known, "known", "file of known correspondent domains, `FILE` lines \"DOMAIN [COUNT]\" (repeatable)")
	fs.Var(&d.deny, "deny", "file of registered lookalikes to block, `FILE` from stray scan --emit-deny (repeatable)")
	d.config = fs.String("config", "", configUsage)
	return d
}

// checker builds the detection engine the flags describe.
func (d *detectFlags) checker() (*detect.Checker, error) {
	return daemon.Checker(*d.config, daemon.Knowledge{Protect: d.protect, Known: d.known, Deny: d.deny})
}

// parseInterleaved parses flags that may appear before, between or after
// positional arguments, as people type them.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// newFlagSet makes a flag set whose --help prints help to std.Out.
func newFlagSet(name, help string, std Stdio) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(std.Err)
	fs.Usage = func() {
		fmt.Fprint(std.Out, help, "\nFlags:\n")
		fs.SetOutput(std.Out)
		fs.PrintDefaults()
		fs.SetOutput(std.Err)
	}
	return fs
}

// usageError returns a function that prints "stray CMD: message" to
// standard error and returns ExitUsage.
func usageError(std Stdio, cmd string) func(format string, a ...any) int {
	return func(format string, a ...any) int {
		fmt.Fprintf(std.Err, "stray "+cmd+": "+format+"\n", a...)
		return ExitUsage
	}
}

// flagExit maps a flag parse error to an exit code.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	return ExitUsage
}
