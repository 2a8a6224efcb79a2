package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/stray-mail/stray/internal/audit"
	"github.com/stray-mail/stray/internal/maillog"
)

const learnHelp = `usage: stray learn [--protect DOMAIN]... [--known FILE]... [--deny FILE]... [--config FILE] [--since TIME] [--until TIME]
                   [--min-deliveries N] [--min-senders N] [--min-days N] [--format known|json] [--output FILE] [FILE...]

Builds the list of domains your organisation really writes to from its mail
logs (the same logs and options as stray audit): every domain mail was
delivered to, with the number of deliveries, distinct senders, distinct
UTC days, and first and last delivery. The default output is a
known-correspondents file, one "DOMAIN COUNT" a line with the rest as a
comment, which stray check --known and the detect.known configuration
read:

  gmail.com 5123  # senders=412 days=179 first=2024-01-02 last=2024-06-30

Every domain listed is trusted once the file is loaded, and by default
every domain delivered to is listed, once is enough: review it, or ask for
the evidence stray serve asks before it trusts a domain it learned
(--min-senders 3 --min-days 2, its detect.learn defaults).

Left out, and counted on standard error: deliveries to domains that are
themselves flagged with the knowledge given (--protect, --known, --config,
and the built-in providers: a typo delivered a thousand times is still a
typo; run stray audit to see them), mail from the null sender (bounces and
auto-replies go to whoever wrote to you, forged or not), and attempts that
bounced or were deferred. The result is written to a file (--output) or
standard output.

--format json prints one object per domain:
{"domain","deliveries","senders","days","first","last"}.

Exit status: 0 success, 2 usage or input error (a log that could not be
read: what it held before the error is still counted and written).

Examples:
  stray learn --protect example.com --output /etc/stray/known.txt /var/log/mail.log*
  stray learn --min-senders 3 --min-days 2 --since 180d /var/log/mail.log.1 /var/log/mail.log
  stray check --known /etc/stray/known.txt j@exmaple-partner.com
`

func runLearn(ctx context.Context, args []string, std Stdio) int {
	fs := newFlagSet("learn", learnHelp, std)
	df := addDetectFlags(fs, "YAML config `FILE` (its detect section)")
	format := fs.String("format", "known", "output format: known (a --known file) or json")
	output := fs.String("output", "", "write to `FILE` (replaced atomically) instead of standard output")
	minDeliveries := fs.Int64("min-deliveries", 1, "leave out domains with fewer deliveries")
	minSenders := fs.Int("min-senders", 0, "leave out domains with fewer distinct senders")
	minDays := fs.Int("min-days", 0, "leave out domains with deliveries on fewer distinct UTC days")
	lf := addLogFlags(fs)
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return flagExit(err)
	}
	usageErr := usageError(std, "learn")
	if *format != "known" && *format != "json" {
		return usageErr("--format %q: want known or json", *format)
	}
	if *minDeliveries < 1 || *minSenders < 0 || *minDays < 0 {
		return usageErr("--min-deliveries wants at least 1, --min-senders and --min-days at least 0")
	}
	ropt, err := lf.options()
	if err != nil {
		return usageErr("%v", err)
	}
	checker, err := df.checker()
	if err != nil {
		return usageErr("%v", err)
	}
	inputs, err := logInputs(files, len(files) == 0, std.In)
	if err != nil {
		return usageErr("%v", err)
	}
	l := audit.NewLearner(checker, audit.LearnOptions{Since: lf.since, Until: lf.until, MinDeliveries: *minDeliveries, MinSenders: *minSenders, MinDays: *minDays})
	prog := newProgress(std.Err, "reading")
	ropt.Progress = prog.update
	stats, err := maillog.Read(ctx, inputs, ropt, func(d *maillog.Delivery) error {
		l.Delivery(d)
		return nil
	})
	prog.done()
	if err != nil {
		return usageErr("%v", err)
	}
	reportStats(std.Err, "learn", stats, true)
	cs := l.Result()
	out, commit, err := openOutput(*output, std.Out)
	if err != nil {
		return usageErr("--output: %v", err)
	}
	defer commit(false)
	if *format == "json" {
		err = audit.WriteCorrespondentsJSON(out, cs)
	} else {
		names := make([]string, len(inputs))
		for i, in := range inputs {
			names[i] = in.Name
		}
		header := append([]string{"stray learn: known correspondents from " + strings.Join(names, ", ")}, l.Summary(len(cs))...)
		err = audit.WriteKnown(out, cs, header)
	}
	if err == nil {
		err = commit(true)
	}
	if err != nil {
		return usageErr("writing: %v", err)
	}
	for _, line := range l.Summary(len(cs)) {
		fmt.Fprintf(std.Err, "stray learn: %s\n", line)
	}
	if fl := l.FlaggedDomains(); len(fl) > 0 {
		var parts []string
		for i, c := range fl {
			if i == 10 {
				parts = append(parts, fmt.Sprintf("… %d more", len(fl)-10))
				break
			}
			parts = append(parts, fmt.Sprintf("%s (%d)", c.Domain, c.Deliveries))
		}
		fmt.Fprintf(std.Err, "stray learn: flagged, left out (check them with stray audit): %s\n", strings.Join(parts, ", "))
	}
	if len(stats.InputErrors) > 0 {
		return ExitUsage
	}
	return ExitOK
}
