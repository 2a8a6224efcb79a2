package cli

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The audit package's golden inputs: a real Postfix 3.7 log (mail.log)
// and an older synthetic one (mail.log.1.gz).
const (
	goldenDir  = "../audit/testdata/golden/"
	realLog    = goldenDir + "mail.log"
	olderLog   = goldenDir + "mail.log.1.gz"
	cleanLine  = "2024-03-01T10:00:00Z mx postfix/smtp[1]: ABCDE12345: to=<a@gmail.com>, relay=r, delay=1, delays=1/0/0/0, dsn=2.0.0, status=sent (ok)\n"
	leakLine   = "2024-03-02T10:00:00Z mx postfix/smtp[1]: ABCDE12346: to=<b@gmial.com>, relay=r, delay=1, delays=1/0/0/0, dsn=2.0.0, status=sent (ok)\n"
	bouncedTyp = "2024-03-02T10:00:00Z mx postfix/smtp[1]: ABCDE12347: to=<c@gmial.com>, relay=none, delay=1, delays=1/0/0/0, dsn=5.1.1, status=bounced (no)\n"
)

var auditKnowledge = []string{"--protect", "mil", "--protect", "corp.example", "--year", "2024", "--tz", "UTC"}

func auditArgs(extra ...string) []string {
	return append(append([]string{"audit"}, auditKnowledge...), extra...)
}

func writeTemp(t *testing.T, name, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAuditExitStatusIsLikeGrep(t *testing.T) {
	t.Parallel()
	clean := writeTemp(t, "clean.log", cleanLine+bouncedTyp)
	leak := writeTemp(t, "leak.log", cleanLine+leakLine)
	virtual := writeTemp(t, "virtual", "sales@corp.example j@gmai.com\n")
	okVirtual := writeTemp(t, "ok", "sales@corp.example j@gmail.com\n")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(strings.Repeat(leakLine, 500)))
	zw.Close()
	truncated := writeTemp(t, "mail.log.1.gz", gz.String()[:gz.Len()/2])
	for _, tc := range []struct {
		args []string
		want int
	}{
		{auditArgs(clean), ExitOK},
		{auditArgs(leak), ExitFlagged},
		{auditArgs(clean, leak), ExitFlagged},
		{auditArgs("--min-verdict", "block", leak), ExitOK},
		{auditArgs("--config-file", virtual), ExitFlagged},
		{auditArgs("--config-file", okVirtual), ExitOK},
		{auditArgs("--config-file", okVirtual, clean), ExitOK},
		{auditArgs(truncated), ExitUsage}, // what it held is reported, but the input broke
		{auditArgs("/nonexistent/mail.log"), ExitUsage},
		{auditArgs("--config-file", "/nonexistent/virtual"), ExitUsage},
		{auditArgs("--format", "xml", clean), ExitUsage},
		{auditArgs("--since", "yesterday-ish", clean), ExitUsage},
		{auditArgs("--since", "2024-03-02", "--until", "2024-03-01", clean), ExitUsage},
		{auditArgs("--log-format", "sendmail", clean), ExitUsage},
		{auditArgs("--min-verdict", "ok", clean), ExitUsage},
		{auditArgs("--tz", "Mars/Olympus", clean), ExitUsage},
		{auditArgs("-", "-"), ExitUsage},
		{[]string{"audit", "--help"}, ExitOK},
	} {
		if code, _, stderr := run(t, "", tc.args...); code != tc.want {
			t.Errorf("%v: exit %d, want %d; stderr:\n%s", tc.args[len(auditKnowledge)+1:], code, tc.want, stderr)
		}
	}
}

func TestAuditJSONIsOneObjectPerFlaggedDeliveryAndNothingElse(t *testing.T) {
	t.Parallel()
	code, out, stderr := run(t, "", auditArgs("--format", "json", "--known", writeTemp(t, "known", "westlandhigh.school.nz 50\n"), realLog, olderLog)...)
	if code != ExitFlagged {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	objs := jsonLines(t, out)
	if len(objs) != 17 {
		t.Errorf("%d objects, want 17 (the golden report's leaks)", len(objs))
	}
	var last time.Time
	for _, o := range objs {
		for _, k := range []string{"time", "queue_id", "from", "to", "verdict", "intended", "reasons", "status"} {
			if _, ok := o[k]; !ok {
				t.Errorf("no %q in %v", k, o)
			}
		}
		ts, err := time.Parse(time.RFC3339, o["time"].(string))
		if err != nil || ts.Before(last) || o["status"] != "sent" {
			t.Errorf("time %v (after %v), status %v", o["time"], last, o["status"])
		}
		last = ts
	}
	// The older rotated file is read first whatever the order given.
	if !strings.HasSuffix(objs[0]["source"].(string), ".gz:"+strings.Split(objs[0]["source"].(string), ":")[1]) {
		t.Errorf("first row from %v, want the older log", objs[0]["source"])
	}
	if !strings.Contains(stderr, "17 of 203 delivered recipients") {
		t.Errorf("stderr lacks the summary:\n%s", stderr)
	}
}

func TestAuditTextAnswersHowMuchToWhichFromWhomSinceWhen(t *testing.T) {
	t.Parallel()
	code, out, _ := run(t, "", auditArgs(realLog)...)
	if code != ExitFlagged {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"20 delivered recipients; attempts not delivered: 2 bounced, 1 deferred, 1 discarded",
		"Worst lookalike domains", "army.ml", "army.mil", "block", "gmial.com", "gmail.com",
		"Most frequent lookalike recipients", `"john doe"@gmial.com`,
		"Top affected senders", "bob@corp.example", "Monthly trend", "2024-11",
		"attempted but not delivered", "gmail.con", "bounced 1", "outlok.com", "deferred 1",
		"Read 108 lines", "0 malformed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "yaho.com ") {
		t.Errorf("the discarded yaho.com is reported:\n%s", out)
	}
}

func TestAuditReadsStandardInput(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{auditArgs("--format", "csv"), auditArgs("--format", "csv", "-")} {
		code, out, _ := run(t, cleanLine+leakLine, args...)
		recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if code != ExitFlagged || err != nil || len(recs) != 2 || recs[1][3] != "b@gmial.com" || recs[1][0] != "2024-03-02T10:00:00Z" {
			t.Errorf("%v: exit %d, %v %v", args, code, recs, err)
		}
	}
}

func TestAuditSinceAndUntilBoundTheDeliveries(t *testing.T) {
	t.Parallel()
	log := writeTemp(t, "m.log", cleanLine+leakLine)
	for _, tc := range []struct {
		since, until string
		want         int
	}{
		{"2024-03-02", "", ExitFlagged},
		{"2024-03-02T10:00:01Z", "", ExitOK},
		{"", "2024-03-02", ExitOK},
		{"2024-03", "2024-04", ExitFlagged},
		{"1000000d", "", ExitFlagged},
		{"1w", "", ExitOK},
	} {
		args := auditArgs(log)
		if tc.since != "" {
			args = append(args, "--since", tc.since)
		}
		if tc.until != "" {
			args = append(args, "--until", tc.until)
		}
		if code, _, stderr := run(t, "", args...); code != tc.want {
			t.Errorf("since %q until %q: exit %d, want %d: %s", tc.since, tc.until, code, tc.want, stderr)
		}
	}
}

func TestAuditHTMLGoesToTheOutputFileAndSaysSo(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "report.html")
	code, stdout, stderr := run(t, "", auditArgs("--format", "html", "--output", out, realLog)...)
	if code != ExitFlagged || stdout != "" {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<!DOCTYPE html>", "<svg", "Deliveries to lookalike domains per month", "army.ml", "Content-Security-Policy"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("report lacks %q", want)
		}
	}
	if !strings.Contains(stderr, "went to") {
		t.Errorf("stderr lacks the summary: %s", stderr)
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestAuditReportsMalformedLinesWithTheirNumbers(t *testing.T) {
	t.Parallel()
	log := writeTemp(t, "m.log", cleanLine+"garbage\x00line\n"+leakLine)
	code, _, stderr := run(t, "", auditArgs("--format", "json", log)...)
	if code != ExitFlagged || !strings.Contains(stderr, "m.log:2: no timestamp") || !strings.Contains(stderr, "1 malformed lines skipped") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
	// Not one line could be read: "nothing flagged" would mislead a script.
	code, _, stderr = run(t, "", auditArgs(writeTemp(t, "other.log", "hello\nworld\n"))...)
	if code != ExitUsage || !strings.Contains(stderr, "no mail delivery lines recognised") {
		t.Errorf("a log of something else: exit %d, stderr %s", code, stderr)
	}
}

func TestAuditConfigFileFindsForwardingTypos(t *testing.T) {
	t.Parallel()
	code, out, _ := run(t, "", auditArgs("--config-file", goldenDir+"virtual", "--config-file", "hash:"+goldenDir+"aliases")...)
	if code != ExitFlagged {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"virtual:2  sales@corp.example → j.doe@gmai.com  hold  did you mean j.doe@gmail.com?",
		"aliases:4  support → helpdesk@outlok.com", "board.members:2  list-board → jane@gmial.com"} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "delivered recipients") {
		t.Errorf("no log was read, yet the text speaks of deliveries:\n%s", out)
	}
	code, out, stderr := run(t, "", auditArgs("--format", "json", "--config-file", goldenDir+"virtual")...)
	if code != ExitFlagged || len(jsonLines(t, out)) != 3 || !strings.Contains(stderr, "stray audit: 3 configuration entries send mail to lookalike domains.") {
		t.Errorf("json: exit %d, %s\nstderr %s", code, out, stderr)
	}
}

func TestParseTimeAcceptsDatesMonthsInstantsAndAges(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 6, 15, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2024-01-31":           time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC),
		"2024-01":              time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		"2024-01-31T08:00:00Z": time.Date(2024, 1, 31, 8, 0, 0, 0, time.UTC),
		"2024-01-31 08:30":     time.Date(2024, 1, 31, 8, 30, 0, 0, time.UTC),
		"90d":                  now.AddDate(0, 0, -90),
		"2w":                   now.AddDate(0, 0, -14),
		"36h":                  now.Add(-36 * time.Hour),
	} {
		got, err := parseTime(in, now, time.UTC)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "yesterday", "-3d", "2024-13-01", "d"} {
		if _, err := parseTime(bad, now, time.UTC); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestAuditHelpHasSynopsisFormatsAndExamples(t *testing.T) {
	t.Parallel()
	_, out, _ := run(t, "", "audit", "--help")
	for _, want := range []string{"usage: stray audit", "Examples:", "--protect", "--known", "--config-file", "--since", "--format", "html", "Exit status"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}
