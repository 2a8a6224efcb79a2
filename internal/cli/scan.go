package cli

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/scan"
	"github.com/stray-mail/stray/permute"
)

const scanHelp = `usage: stray scan [--resolver HOST:PORT] [--format text|json|csv] [--all] [--concurrency N] [--state FILE] [--emit-deny FILE] [--smtp-probe] [--save [--config FILE]] DOMAIN...

Finds the lookalikes of your domains that exist and would receive your
mistyped mail. For each DOMAIN (or each line of standard input when there
are none) it generates the lookalikes a person types or mistakes for it
(army.ml, armym.il, armymil.com for army.mil; gmail.cm, gmailc.om, gmаil.com
for gmail.com), resolves them concurrently (NS, then A, AAAA and MX, and the
MX hosts' addresses) and reports the registered ones with their records,
kind, likelihood and whether they accept mail. A name only a wildcard
answers for is reported as "wildcard"; a SERVFAIL or timeout as "unknown",
never as registered. --all reports every lookalike.

--state FILE remembers what was found and prints only what is new, gone or
changed since the last run (new name servers, a new MX, mail now accepted),
and exits 1 when something new appears: run it from cron. --emit-deny FILE
writes the registered lookalikes that accept mail, outside --protect, one
"DOMAIN ORIGINAL # why" a line, as block knowledge for the gate.
--smtp-probe asks each mail-accepting lookalike's mail server whether it
takes a random recipient (EHLO, MAIL FROM:<>, RCPT TO, QUIT; never DATA).

--format json prints one object per lookalike:
{"domain","unicode","original","kind","likelihood","status","a","aaaa","mx",
"ns","null_mx","accepts_mail"[,"smtp"][,"errors"]}; with --state, one diff
object {"scanned_at","new":[...],"gone":[...],"changed":[...]}.

Each DOMAIN must itself resolve first: a resolver that says NXDOMAIN for it
(as one that answers NXDOMAIN for everything does) would make every
lookalike look unregistered, so the scan refuses it.

Exit status: 0 nothing found (or, with --state, nothing new), 1 registered
lookalikes found (or something new), 2 usage error or a DOMAIN that does not
resolve, 3 no DNS answers at all (DNS down).

Examples:
  stray scan army.mil mail.mil
  stray scan --resolver 127.0.0.1:53 --format json gmail.com
  stray scan --state /var/lib/stray/scan.json --emit-deny /etc/stray/deny.txt --protect mil army.mil
`

func runScan(ctx context.Context, args []string, std Stdio) int {
	fs := newFlagSet("scan", scanHelp, std)
	resolver := fs.String("resolver", "", "recursive DNS resolver `HOST:PORT` (default: the first nameserver of /etc/resolv.conf)")
	format := fs.String("format", "text", "output format: text, json or csv")
	all := fs.Bool("all", false, "report every lookalike, not only the registered ones")
	concurrency := fs.Int("concurrency", scan.DefaultConcurrency, "lookalikes resolved at once")
	timeout := fs.Duration("timeout", 2*time.Second, "timeout of one DNS question (each is tried twice)")
	kinds := fs.String("kinds", "", "comma-separated fuzzer kinds to generate (default all): "+strings.Join(permute.Kinds(), ","))
	minP := fs.Float64("min-likelihood", 0, "drop lookalikes less likely than this (0..1)")
	statePath := fs.String("state", "", "state `FILE`: report only what changed since the last scan")
	denyPath := fs.String("emit-deny", "", "write registered, mail-accepting lookalikes to `FILE`")
	var protect stringsFlag
	fs.Var(&protect, "protect", "your own domain or suffix, left out of --emit-deny (repeatable)")
	smtpProbe := fs.Bool("smtp-probe", false, "ask mail servers whether they take a random recipient (never sends a message)")
	smtpPort := fs.Int("smtp-port", 25, "SMTP port for --smtp-probe")
	smtpHelo := fs.String("smtp-helo", "localhost", "EHLO name for --smtp-probe")
	save := fs.Bool("save", false, "also save the results in the store --config names, for the dashboard")
	cfgPath := fs.String("config", "", "YAML config `FILE` whose store --save uses (default: the embedded defaults)")
	domains, err := parseInterleaved(fs, args)
	if err != nil {
		return flagExit(err)
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(std.Err, "stray scan: "+format+"\n", a...)
		return ExitUsage
	}
	switch {
	case *format != "text" && *format != "json" && *format != "csv":
		return usageErr("--format %q: want text, json or csv", *format)
	case *format == "csv" && *statePath != "":
		return usageErr("--state prints a diff, which has no csv form: use --format text or json")
	case *concurrency < 1 || *concurrency > 1024:
		return usageErr("--concurrency %d: want 1..1024", *concurrency)
	case *minP < 0 || *minP > 1:
		return usageErr("--min-likelihood %v: want 0..1", *minP)
	case *smtpPort < 1 || *smtpPort > 65535:
		return usageErr("--smtp-port %d: want 1..65535", *smtpPort)
	}
	opt := permute.Options{MinLikelihood: *minP}
	if *kinds != "" {
		opt.Kinds = strings.Split(*kinds, ",")
	}
	if len(domains) == 0 {
		if err := eachLine(ctx, std.In, func(l string) {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				domains = append(domains, l)
			}
		}); err != nil {
			return usageErr("reading domains: %v", err)
		}
	}
	if len(domains) == 0 {
		return usageErr("no domains to scan (see stray scan --help)")
	}
	var targets []scan.Target
	for _, d := range domains {
		cands, err := permute.Generate(d, opt)
		if err != nil {
			return usageErr("%v", err)
		}
		norm, _ := detect.NormalizeDomain(d)
		targets = append(targets, scan.Target{Domain: norm, Candidates: cands})
	}
	for i, p := range protect {
		n, err := detect.NormalizeDomain(p)
		if err != nil {
			return usageErr("--protect %v", err)
		}
		protect[i] = n
	}
	var prev *scan.State
	if *statePath != "" {
		if prev, err = scan.LoadState(*statePath); err != nil {
			return usageErr("%v", err)
		}
	}
	server := *resolver
	if server == "" {
		if server, err = scan.SystemResolver(); err != nil {
			return usageErr("%v (use --resolver HOST:PORT)", err)
		}
	}
	res, err := scan.NewDNSResolver(server, *timeout, 2)
	if err != nil {
		return usageErr("--%v", err)
	}
	s := &scan.Scanner{Resolver: res, Concurrency: *concurrency}
	if *smtpProbe {
		s.SMTP = &scan.SMTPProber{Port: *smtpPort, Helo: *smtpHelo, Timeout: 10 * time.Second}
	}
	// A resolver that denies the scanned domains themselves would call every
	// lookalike unregistered: refuse rather than report a clean scan.
	for _, t := range targets {
		if err := s.CheckResolves(ctx, t.Domain); err != nil {
			if errors.Is(err, scan.ErrNoSuchDomain) {
				return usageErr("%s does not resolve: %s says NXDOMAIN, so its answers about lookalikes cannot be trusted; check the domain, or use another resolver (--resolver HOST:PORT)", t.Domain, server)
			}
			// No answer at all: DNS is down, a runtime failure.
			fmt.Fprintf(std.Err, "stray scan: %s does not resolve at %s: %v; use another resolver (--resolver HOST:PORT)\n", t.Domain, server, err)
			return ExitRuntime
		}
	}
	if progress := terminalProgress(std.Err); progress != nil {
		s.Progress = progress
		defer fmt.Fprint(std.Err, "\r\033[K")
	}
	results, err := s.Scan(ctx, targets)
	if err != nil {
		return usageErr("%v", err)
	}
	now := time.Now()
	unknown := 0
	for _, r := range results {
		if r.Status == scan.Unknown {
			unknown++
		}
	}
	if len(results) > 0 && unknown == len(results) {
		// DNS down: a runtime failure, not a usage error.
		fmt.Fprintf(std.Err, "stray scan: no answer from %s for any of %d lookalikes (first: %s)\n", server, len(results), strings.Join(results[0].Errors, "; "))
		return ExitRuntime
	}
	if unknown > 0 {
		fmt.Fprintf(std.Err, "stray scan: %d of %d lookalikes unknown (SERVFAIL or timeout); run again or use --all to see them\n", unknown, len(results))
	}
	if *denyPath != "" {
		if err := writeFileAtomic(*denyPath, func(w io.Writer) error { return scan.WriteDeny(w, results, protect, now) }); err != nil {
			return usageErr("--emit-deny: %v", err)
		}
	}
	if *save {
		registered := 0
		for _, r := range results {
			if r.Status == scan.Registered {
				registered++
			}
		}
		names := make([]string, len(targets))
		for i, t := range targets {
			names[i] = t.Domain
		}
		title := fmt.Sprintf("Scan of %s: %d registered of %d lookalikes", strings.Join(names, ", "), registered, len(results))
		js, err := json.Marshal(results)
		var id int64
		if err == nil {
			id, err = saveReport(ctx, *cfgPath, "scan", title, js, nil)
		}
		if err != nil {
			return usageErr("--save: %v", err)
		}
		fmt.Fprintf(std.Err, "stray scan: saved as report %d\n", id)
	}
	out := bufio.NewWriterSize(std.Out, 64*1024)
	defer out.Flush()
	if prev != nil {
		diff := scan.DiffSince(prev, results, now)
		if err := prev.Next(results, now).Save(*statePath); err != nil {
			return usageErr("%v", err)
		}
		if *format == "json" {
			b, _ := json.Marshal(diff)
			out.Write(append(b, '\n'))
		} else {
			writeDiffText(out, diff)
		}
		if diff.Alert() {
			return ExitFlagged
		}
		return ExitOK
	}
	var shown []scan.Result
	found := false
	for _, r := range results {
		found = found || r.Status.Exposed()
		if *all || r.Status.Exposed() {
			shown = append(shown, r)
		}
	}
	switch *format {
	case "json":
		for _, r := range shown {
			b, _ := json.Marshal(r)
			out.Write(append(b, '\n'))
		}
	case "csv":
		writeScanCSV(out, shown)
	default:
		writeScanText(out, targets, results, shown)
	}
	if found {
		return ExitFlagged
	}
	return ExitOK
}

// terminalProgress returns a progress printer when w is a terminal.
func terminalProgress(w io.Writer) func(done, total int) {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	var mu sync.Mutex
	var last time.Time
	return func(done, total int) {
		mu.Lock()
		defer mu.Unlock()
		if done < total && time.Since(last) < 100*time.Millisecond {
			return
		}
		last = time.Now()
		fmt.Fprintf(f, "\r\033[Kscanning lookalikes: %d/%d", done, total)
	}
}

func writeFileAtomic(path string, fill func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".stray-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := fill(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func acceptsWord(b *bool) string {
	switch {
	case b == nil:
		return "mail?"
	case *b:
		return "mail"
	}
	return "no-mail"
}

func writeScanText(w io.Writer, targets []scan.Target, results, shown []scan.Result) {
	type count struct{ total, registered, wildcard, mail, unknown int }
	counts := map[string]*count{}
	for _, t := range targets {
		counts[t.Domain] = &count{}
	}
	for _, r := range results {
		c := counts[r.Original]
		c.total++
		switch r.Status {
		case scan.Registered:
			c.registered++
		case scan.Wildcard:
			c.wildcard++
		case scan.Unknown:
			c.unknown++
		}
		if r.Status.Exposed() && r.AcceptsMail != nil && *r.AcceptsMail {
			c.mail++
		}
	}
	for _, t := range targets {
		c := counts[t.Domain]
		fmt.Fprintf(w, "%s: %d lookalikes checked, %d registered, %d wildcard, %d accept mail, %d unknown\n",
			t.Domain, c.total, c.registered, c.wildcard, c.mail, c.unknown)
		for _, r := range shown {
			if r.Original == t.Domain {
				writeResultLine(w, r)
			}
		}
	}
}

func writeResultLine(w io.Writer, r scan.Result) {
	name := r.Domain
	if r.Unicode != r.Domain {
		name += " (" + r.Unicode + ")"
	}
	fmt.Fprintf(w, "  %-28s %-14s %.2f  %-12s", name, r.Kind, r.Likelihood, r.Status)
	if r.Status.Exposed() {
		fmt.Fprintf(w, " %-7s", acceptsWord(r.AcceptsMail))
	}
	for _, f := range []struct {
		k string
		v []string
	}{{"MX", r.MX}, {"NS", r.NS}, {"A", r.A}, {"AAAA", r.AAAA}} {
		if len(f.v) > 0 {
			fmt.Fprintf(w, "  %s %s", f.k, strings.Join(f.v, ","))
		}
	}
	if r.NullMX {
		fmt.Fprint(w, "  null MX")
	}
	if r.SMTP != nil {
		switch {
		case r.SMTP.Error != "":
			fmt.Fprintf(w, "  smtp: %s", r.SMTP.Error)
		case r.SMTP.Accepted:
			fmt.Fprint(w, "  smtp: catch-all")
		default:
			fmt.Fprintf(w, "  smtp: %s", r.SMTP.Reply)
		}
	}
	if r.Status == scan.Unknown && len(r.Errors) > 0 {
		fmt.Fprintf(w, "  (%s)", strings.Join(r.Errors, "; "))
	}
	fmt.Fprintln(w)
}

func writeScanCSV(w io.Writer, rs []scan.Result) {
	cw := csv.NewWriter(w)
	cw.Write([]string{"domain", "unicode", "original", "kind", "likelihood", "status", "a", "aaaa", "mx", "ns", "null_mx", "accepts_mail", "smtp_accepted"})
	for _, r := range rs {
		accepts := ""
		if r.AcceptsMail != nil {
			accepts = strconv.FormatBool(*r.AcceptsMail)
		}
		smtp := ""
		if r.SMTP != nil && r.SMTP.Error == "" {
			smtp = strconv.FormatBool(r.SMTP.Accepted)
		}
		cw.Write([]string{r.Domain, r.Unicode, r.Original, r.Kind, strconv.FormatFloat(r.Likelihood, 'f', 3, 64), string(r.Status),
			strings.Join(r.A, " "), strings.Join(r.AAAA, " "), strings.Join(r.MX, " "), strings.Join(r.NS, " "),
			strconv.FormatBool(r.NullMX), accepts, smtp})
	}
	cw.Flush()
}

func writeDiffText(w io.Writer, d *scan.Diff) {
	if d.Empty() {
		fmt.Fprintf(w, "no change since the last scan (%s)\n", d.ScannedAt.Format(time.RFC3339))
		return
	}
	for _, r := range d.New {
		fmt.Fprint(w, "new     ")
		writeResultLine(w, r)
	}
	for _, c := range d.Changed {
		fmt.Fprintf(w, "changed   %s (lookalike of %s)\n", c.Domain, c.Original)
		for _, f := range c.Fields {
			fmt.Fprintf(w, "          %s: %s → %s\n", f.Field, strings.Join(f.Before, ","), strings.Join(f.After, ","))
		}
	}
	for _, g := range d.Gone {
		fmt.Fprintf(w, "gone      %s (lookalike of %s, first seen %s)\n", g.Domain, g.Original, g.FirstSeen.Format("2006-01-02"))
	}
}
