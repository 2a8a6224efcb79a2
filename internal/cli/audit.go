package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/audit"
	"github.com/stray-mail/stray/internal/maillog"
)

const auditHelp = `usage: stray audit [--protect DOMAIN]... [--known FILE]... [--deny FILE]... [--config FILE] [--since TIME] [--until TIME]
                   [--format text|json|csv|html] [--output FILE] [--config-file FILE]... [--save] [FILE...]

Answers "how much of our mail already went to lookalike domains, to which,
from whom, since when?". It reads mail logs (Postfix syslog or maillog_file,
Exim main logs, Exchange message tracking logs; plain, .gz, .zst or .bz2;
rotated files are read oldest first whatever their order on the command
line; "-" or no FILE reads standard input), runs every delivered recipient
through the same engine as stray check, and reports the deliveries it
flags. A delivery is a recipient the next hop or mailbox accepted (Postfix
status=sent, Exim =>, Exchange SEND or DELIVER); bounced, deferred,
discarded and verification-probe attempts are not deliveries, and are shown
apart.

--config-file FILE also audits configuration that silently repeats a typo:
Postfix virtual, aliases, canonical and *_bcc_maps sources (a "hash:" or
"lmdb:" prefix is ignored; aliases' :include: files are read) and
mailing-list member lists, one address a line.

Formats:
  text  totals, the worst lookalike domains (deliveries, distinct senders,
        first and last seen, the domain they imitate), the most frequent
        lookalike recipients, the top affected senders, a monthly trend
  json  one object per flagged delivery, in log order, and nothing else:
        {"time","queue_id","from","to","verdict","intended","suggestion",
        "score","reasons","status","relay","message_id","source",...};
        configuration entries come first, with "status":"configured",
        "time":null, "from" the entry's key and "source" FILE:LINE
  csv   the same rows, with a header
  html  a self-contained report (inline SVG charts, no scripts, fetches
        nothing) to mail around or print

Times (--since, --until): 2024-01-31, 2024-01-31T08:00:00Z, 2024-01 (the
month's first day), or an age such as 90d, 12w or 36h. Logs without a year
(classic syslog) get one from each file's modification time: the last line
is taken to be no later than the file's; --year sets the first line's year.
Malformed lines are skipped: standard error says how many and where (the
first twenty with their start), and the report covers the rest.

Exit status: 0 nothing flagged, 1 something flagged, whether or not some
lines were skipped; 2 usage or input error: a file that could not be read
(wholly or part way), or logs whose every line was malformed. An empty log
is not an error.

Examples:
  stray audit --protect example.com /var/log/mail.log*
  stray audit --protect mil --since 2024-01-01 --format html --output leaks.html /var/log/mail.log.*.gz
  stray audit --known known.txt --format json /var/log/maillog | jq -r .to
  stray audit --config-file /etc/postfix/virtual --config-file /etc/aliases
  journalctl -u postfix -o short-iso | stray audit --protect example.com
`

func runAudit(ctx context.Context, args []string, std Stdio) int {
	fs := newFlagSet("audit", auditHelp, std)
	var configFiles stringsFlag
	df := addDetectFlags(fs, "YAML config `FILE` (its detect section)")
	format := fs.String("format", "text", "output format: text, json, csv or html")
	output := fs.String("output", "", "write the report to `FILE` instead of standard output")
	fs.Var(&configFiles, "config-file", "audit a Postfix map, aliases file or member list `FILE` (repeatable)")
	minVerdict := fs.String("min-verdict", "warn", "least verdict reported: warn, hold or block")
	top := fs.Int("top", 20, "rows in ranked tables")
	save := fs.Bool("save", false, "also save the report in the store --config names, for the dashboard")
	lf := addLogFlags(fs)
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return flagExit(err)
	}
	usageErr := usageError(std, "audit")
	switch *format {
	case "text", "json", "csv", "html":
	default:
		return usageErr("--format %q: want text, json, csv or html", *format)
	}
	mv, err := detect.ParseVerdict(*minVerdict)
	if err != nil || mv == detect.OK {
		return usageErr("--min-verdict %q: want warn, hold or block", *minVerdict)
	}
	if *top < 1 {
		return usageErr("--top %d: want at least 1", *top)
	}
	ropt, err := lf.options()
	if err != nil {
		return usageErr("%v", err)
	}
	checker, err := df.checker()
	if err != nil {
		return usageErr("%v", err)
	}
	readStdin := len(files) == 0 && len(configFiles) == 0
	inputs, err := logInputs(files, readStdin, std.In)
	if err != nil {
		return usageErr("%v", err)
	}

	a := audit.New(checker, audit.Options{Since: lf.since, Until: lf.until, MinVerdict: mv, Top: *top})
	out, commit, err := openOutput(*output, std.Out)
	if err != nil {
		return usageErr("--output: %v", err)
	}
	defer commit(false)
	var rows audit.RowWriter
	switch *format {
	case "json":
		rows = audit.NewJSONWriter(out)
	case "csv":
		rows = audit.NewCSVWriter(out)
	}
	var writeErr error
	emit := func(r audit.Row) {
		if rows != nil && writeErr == nil {
			writeErr = rows.Write(r)
		}
	}

	var configErrors []string
	for _, path := range configFiles {
		entries, err := audit.ReadConfigFile(path)
		if err != nil {
			configErrors = append(configErrors, err.Error())
			fmt.Fprintf(std.Err, "stray audit: --config-file %v\n", err)
		}
		for _, e := range entries {
			if r, ok := a.ConfigEntry(e); ok {
				emit(r)
			}
		}
	}

	var stats *maillog.Stats
	if len(inputs) > 0 {
		prog := newProgress(std.Err, "reading")
		ropt.Progress = prog.update
		stats, err = maillog.Read(ctx, inputs, ropt, func(d *maillog.Delivery) error {
			if r, ok := a.Delivery(d); ok {
				emit(r)
			}
			return writeErr
		})
		prog.done()
		if err != nil {
			return usageErr("%v", err)
		}
		reportStats(std.Err, "audit", stats, *format != "text")
	}
	if writeErr != nil {
		return usageErr("writing: %v", writeErr)
	}

	rep := a.Report(stats)
	rep.Generated = time.Now()
	rep.Version = Version
	rep.ConfigFiles = configFiles
	rep.ConfigErrors = configErrors
	for _, in := range inputs {
		rep.Inputs = append(rep.Inputs, in.Name)
	}
	switch *format {
	case "text":
		err = audit.WriteText(out, rep)
	case "html":
		err = audit.WriteHTML(out, rep)
	default:
		err = rows.Flush()
	}
	if err == nil {
		err = commit(true)
	}
	if err != nil {
		return usageErr("writing: %v", err)
	}
	if *format != "text" || *output != "" {
		// Say on standard error what the rows or the file hold.
		fmt.Fprintf(std.Err, "stray audit: %s\n", rep.Summary())
	}
	if *save {
		js, err := json.Marshal(rep)
		var html bytes.Buffer
		if err == nil {
			err = audit.WriteHTML(&html, rep)
		}
		var id int64
		if err == nil {
			id, err = saveReport(ctx, *df.config, "audit", rep.Summary(), js, html.Bytes())
		}
		if err != nil {
			return usageErr("--save: %v", err)
		}
		fmt.Fprintf(std.Err, "stray audit: saved as report %d\n", id)
	}
	if stats != nil && stats.Lines > 0 && stats.Malformed == stats.Lines {
		fmt.Fprintf(std.Err, "stray audit: error: no line of the logs could be read (all %d malformed): another kind of file, or use --log-format\n", stats.Lines)
		return ExitUsage
	}
	if len(configErrors) > 0 || stats != nil && len(stats.InputErrors) > 0 {
		return ExitUsage // like grep: an input error wins over a match
	}
	if a.Found() {
		return ExitFlagged
	}
	return ExitOK
}

// logFlags are the flags audit and learn share to read logs.
type logFlags struct {
	since, until   time.Time
	sinceS, untilS *string
	logFormat, tz  *string
	year           *int
	maxOpen        *int
	openTimeout    *time.Duration
}

func addLogFlags(fs *flag.FlagSet) *logFlags {
	return &logFlags{
		sinceS:      fs.String("since", "", "count deliveries from `TIME` on (2024-01-31, 2024-01, RFC 3339, or an age: 90d, 12w, 36h)"),
		untilS:      fs.String("until", "", "count deliveries before `TIME`"),
		logFormat:   fs.String("log-format", "auto", "log format: auto, postfix, exim or exchange"),
		tz:          fs.String("tz", "", "time `ZONE` of log timestamps that carry none (default: local)"),
		year:        fs.Int("year", 0, "year of each log's first line, for logs without years (default: from the file's modification time)"),
		maxOpen:     fs.Int("max-open", maillog.DefaultMaxOpen, "messages held open waiting for their next log lines; beyond, the least recent are dropped"),
		openTimeout: fs.Duration("open-timeout", maillog.DefaultOpenTimeout, "drop an open message not seen for this long in log time"),
	}
}

func (l *logFlags) options() (maillog.Options, error) {
	var o maillog.Options
	var err error
	now := time.Now()
	if *l.tz != "" {
		if o.Location, err = time.LoadLocation(*l.tz); err != nil {
			return o, fmt.Errorf("--tz %q: %v", *l.tz, err)
		}
	}
	loc := o.Location
	if loc == nil {
		loc = time.Local
	}
	if *l.sinceS != "" {
		if l.since, err = parseTime(*l.sinceS, now, loc); err != nil {
			return o, fmt.Errorf("--since: %v", err)
		}
	}
	if *l.untilS != "" {
		if l.until, err = parseTime(*l.untilS, now, loc); err != nil {
			return o, fmt.Errorf("--until: %v", err)
		}
	}
	if !l.since.IsZero() && !l.until.IsZero() && !l.since.Before(l.until) {
		return o, fmt.Errorf("--since %s is not before --until %s", *l.sinceS, *l.untilS)
	}
	if *l.logFormat != "auto" {
		if o.Format, err = maillog.FormatByName(*l.logFormat); err != nil {
			return o, fmt.Errorf("--log-format: %v", err)
		}
	}
	if *l.year != 0 && (*l.year < 1970 || *l.year > 9999) {
		return o, fmt.Errorf("--year %d: want a year such as %d", *l.year, now.Year())
	}
	if *l.maxOpen < 1000 {
		return o, fmt.Errorf("--max-open %d: want at least 1000", *l.maxOpen)
	}
	if *l.openTimeout < time.Minute {
		return o, fmt.Errorf("--open-timeout %v: want at least 1m", *l.openTimeout)
	}
	o.Year, o.MaxOpen, o.OpenTimeout = *l.year, *l.maxOpen, *l.openTimeout
	return o, nil
}

// parseTime reads a date, a date and time, a month or an age before now.
func parseTime(s string, now time.Time, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if n := len(s); n >= 2 && strings.ContainsRune("dwh", rune(s[n-1])) {
		if v, err := strconv.Atoi(s[:n-1]); err == nil && v >= 0 && v <= 1_000_000 {
			switch s[n-1] {
			case 'd':
				return now.AddDate(0, 0, -v), nil
			case 'w':
				return now.AddDate(0, 0, -7*v), nil
			}
			return now.Add(-time.Duration(v) * time.Hour), nil
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02", "2006-01"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q: want 2024-01-31, 2024-01-31T08:00:00Z, 2024-01 or an age such as 90d", s)
}

// logInputs turns file arguments into inputs, rotated files oldest first.
func logInputs(files []string, stdin bool, in io.Reader) ([]maillog.Input, error) {
	var inputs []maillog.Input
	if stdin {
		return []maillog.Input{maillog.ReaderInput("(stdin)", in)}, nil
	}
	usedStdin := false
	for _, f := range files {
		if f == "-" {
			if usedStdin {
				return nil, errors.New(`"-" (standard input) given twice`)
			}
			usedStdin = true
			inputs = append(inputs, maillog.ReaderInput("(stdin)", in))
			continue
		}
		i, err := maillog.FileInput(f)
		if err != nil {
			return nil, err
		}
		inputs = append(inputs, i)
	}
	maillog.SortRotated(inputs)
	return inputs, nil
}

// openOutput opens --output (atomically replaced on success) or returns
// stdout. commit(true) finishes the file; commit(false) abandons it.
func openOutput(path string, stdout io.Writer) (io.Writer, func(ok bool) error, error) {
	if path == "" {
		return stdout, func(bool) error { return nil }, nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".stray-*")
	if err != nil {
		return nil, nil, err
	}
	w := bufio.NewWriterSize(f, 64*1024)
	done := false
	commit := func(ok bool) error {
		if done {
			return nil
		}
		done = true
		if !ok {
			f.Close()
			os.Remove(f.Name())
			return nil
		}
		err := w.Flush()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			os.Chmod(f.Name(), 0o644)
			err = os.Rename(f.Name(), path)
		}
		if err != nil {
			os.Remove(f.Name())
		}
		return err
	}
	return w, commit, nil
}

// reportStats tells standard error about malformed lines and inputs that
// held no mail lines (always), and the totals (when asked: the report
// itself is not text).
func reportStats(w io.Writer, cmd string, st *maillog.Stats, totals bool) {
	if totals {
		fmt.Fprintf(w, "stray %s: read %d lines from %d inputs: %d delivered, %d bounced, %d deferred attempts; %d malformed lines skipped\n",
			cmd, st.Lines, st.Inputs, st.Count(maillog.Sent), st.Count(maillog.Bounced), st.Count(maillog.Deferred), st.Malformed)
	}
	if st.Malformed > 0 {
		var at []string
		for _, s := range st.Samples[:min(len(st.Samples), 5)] {
			at = append(at, fmt.Sprintf("%s:%d", s.File, s.Line))
		}
		if int64(len(at)) < st.Malformed {
			at = append(at, "…")
		}
		fmt.Fprintf(w, "stray %s: warning: %d malformed lines skipped (at %s); the rest was read\n", cmd, st.Malformed, strings.Join(at, ", "))
		for _, s := range st.Samples {
			fmt.Fprintf(w, "stray %s: skipped malformed line %v\n", cmd, s)
		}
		if n := st.Malformed - int64(len(st.Samples)); n > 0 {
			fmt.Fprintf(w, "stray %s: … and %d more malformed lines\n", cmd, n)
		}
	}
	for _, n := range st.NoEvents {
		fmt.Fprintf(w, "stray %s: warning: %s: no mail delivery lines recognised (another log, or use --log-format)\n", cmd, n)
	}
	for _, err := range st.InputErrors {
		fmt.Fprintf(w, "stray %s: error: %v (what it held before is counted)\n", cmd, err)
	}
}

// progress draws a progress bar on a terminal, for inputs that take more
// than a moment; elsewhere it does nothing.
type progress struct {
	mu      sync.Mutex
	f       *os.File
	label   string
	start   time.Time
	last    time.Time
	drawn   bool
	enabled bool
}

func newProgress(w io.Writer, label string) *progress {
	p := &progress{label: label, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.f, p.enabled = f, true
		}
	}
	return p
}

func (p *progress) update(pr maillog.Progress) {
	if !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.start) < 500*time.Millisecond || now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	rate := float64(pr.Read) / now.Sub(p.start).Seconds()
	name := pr.Input
	if len(name) > 32 {
		name = "…" + name[len(name)-31:]
	}
	if pr.Total > 0 {
		frac := min(float64(pr.Read)/float64(pr.Total), 1)
		const width = 30
		n := int(frac * width)
		eta := time.Duration(float64(pr.Total-pr.Read) / max(rate, 1) * float64(time.Second))
		fmt.Fprintf(p.f, "\r\033[K%s %s [%s%s] %3.0f%% %s/%s %s/s ETA %s", p.label, name,
			strings.Repeat("=", n), strings.Repeat(" ", width-n), frac*100, size(pr.Read), size(pr.Total), size(int64(rate)), eta.Round(time.Second))
	} else {
		fmt.Fprintf(p.f, "\r\033[K%s %s %s %s/s", p.label, name, size(pr.Read), size(int64(rate)))
	}
	p.drawn = true
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.f, "\r\033[K")
		p.drawn = false
	}
	p.enabled = false
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
