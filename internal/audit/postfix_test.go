package audit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/maillog"
	"github.com/stray-mail/stray/internal/postfixtest"
)

// realMessage is one message sent through the real Postfix.
type realMessage struct {
	from string
	to   []string
}

// The mix: typos that are delivered (leaks), typos that bounce, are
// deferred or are discarded (not leaks), and good recipients. The
// transport map and virtual aliases below decide the fate of each domain.
var realMix = []realMessage{
	{"alice@corp.example", []string{"bob@army.ml", "carol@army.mil", "dave@gmail.com"}},
	{"bob@corp.example", []string{"x@gmial.com", "y@gmail.com", "z@partner.example.com"}},
	{"carol@corp.example", []string{`"john doe"@gmial.com`}},
	{"dave@corp.example", []string{"k@gmаil.com"}}, // Cyrillic а: a homoglyph
	{"erin@corp.example", []string{"team@corp.example"}},
	{"frank@corp.example", []string{"t@gmail.con"}},                   // bounces
	{"grace@corp.example", []string{"u@outlok.com", "v@outlook.com"}}, // outlok.com is deferred
	{"heidi@corp.example", []string{"w@yaho.com", "w2@yahoo.com"}},    // yaho.com is discarded
	{"", []string{"mailer@gmail.co"}},                                 // null sender
	{"ivan@corp.example", []string{"s@westlandhihg.school.nz", "t@westlandhigh.school.nz"}},
	{"judy@corp.example", []string{"ops@navy.ml", "m@nosuchuser.example.net"}}, // nosuchuser.example.net bounces
	{"bob@corp.example", []string{"x@gmial.com", "P@GMIAL.COM"}},
}

// Postfix's own routing of the domains above.
const (
	realTransport = "gmail.con error:5.4.4 Host or domain name not found\n" +
		"nosuchuser.example.net error:5.1.1 mailbox unavailable\n" +
		"outlok.com retry:4.4.1 connection timed out\n" +
		"yaho.com discard:\n"
	realVirtual = "team@corp.example a@gmial.com, b@gmail.com\n"
	realKnown   = "westlandhigh.school.nz 50\n"
)

func realChecker(t testing.TB) *detect.Checker {
	t.Helper()
	known, err := detect.ReadKnown(strings.NewReader(realKnown))
	if err != nil {
		t.Fatal(err)
	}
	c, err := detect.New(detect.Knowledge{Protected: []string{"mil", "corp.example"}, Known: known})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func countLines(log, s string) int { return strings.Count(log, s) }

// TestRealPostfixLogReportsEveryDeliveredLeakAndNothingElse sends a known
// mix of recipients through a real Postfix, then audits the log Postfix
// wrote: the leaks reported must be exactly the delivered recipients
// (those the sink received) that the engine flags, each joined with its
// sender, queue id, client and Message-ID; typos that bounced, were
// deferred or were discarded are not leaks.
func TestRealPostfixLogReportsEveryDeliveredLeakAndNothingElse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, s := range map[string]string{"transport": realTransport, "virtual": realVirtual} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pf := postfixtest.Start(t, postfixtest.Options{Extra: map[string]string{
		"transport_maps":                  "texthash:" + filepath.Join(dir, "transport"),
		"virtual_alias_maps":              "texthash:" + filepath.Join(dir, "virtual"),
		"smtpd_reject_unlisted_recipient": "no",
	}})
	for i, m := range realMix {
		msg := fmt.Sprintf("Message-ID: <m%d@corp.example>\nFrom: %s\nSubject: audit %d\n\nhello\n", i, m.from, i)
		rcpt, data, err := postfixtest.Send(pf.SMTP, m.from, m.to, msg)
		if err != nil || data.Code != 250 {
			t.Fatalf("message %d: %v %v %v", i, rcpt, data, err)
		}
	}
	// Delivered: every recipient but the bounced, deferred and discarded
	// ones; plus a bounce notification to each of frank and judy.
	const wantDelivered = 18 + 2
	const wantSentLines = wantDelivered + 1 // the discard agent logs status=sent too
	delivered := pf.Sink.WaitRecipients(wantDelivered, 20*time.Second)
	deadline := time.Now().Add(20 * time.Second)
	var log string
	for time.Now().Before(deadline) {
		log = pf.Log()
		if countLines(log, "status=sent") >= wantSentLines && countLines(log, "status=bounced") >= 2 &&
			countLines(log, "status=deferred") >= 1 && countLines(log, ": removed") >= len(realMix)+1 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(delivered) != wantDelivered {
		t.Fatalf("sink received %d recipients, want %d: %v\n%s", len(delivered), wantDelivered, delivered, log)
	}
	if p := os.Getenv("STRAY_CAPTURE_MAILLOG"); p != "" {
		os.WriteFile(p, []byte(log), 0o644)
	}

	c := realChecker(t)
	// The truth, independent of the log: what the sink received and the
	// engine flags.
	var want []string
	for _, r := range delivered {
		// The sink unquotes local parts; quote them back.
		if at := strings.LastIndexByte(r, '@'); at > 0 && strings.ContainsAny(r[:at], ` "(),:;<>[]\\`) {
			r = `"` + r[:at] + `"` + r[at:]
		}
		if f, err := c.Check(r); err == nil && f.Flagged() {
			want = append(want, strings.ToLower(r))
		}
	}
	for _, leak := range []string{"bob@army.ml", "x@gmial.com", `"john doe"@gmial.com`, "a@gmial.com", "mailer@gmail.co", "s@westlandhihg.school.nz", "ops@navy.ml", "p@gmial.com"} {
		if !slices.Contains(want, leak) {
			t.Fatalf("test premise: %s should be a delivered leak; flagged deliveries %v", leak, want)
		}
	}

	a := New(c, Options{})
	var got []Row
	// Audit a snapshot of pf.Dir/maillog: Postfix keeps retrying.
	stats, err := maillog.Read(context.Background(), []maillog.Input{maillog.ReaderInput("maillog", strings.NewReader(log))}, maillog.Options{}, func(d *maillog.Delivery) error {
		if r, ok := a.Delivery(d); ok {
			got = append(got, r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var gotTo []string
	for _, r := range got {
		gotTo = append(gotTo, strings.ToLower(r.To))
	}
	// Postfix writes the homoglyph's domain as it was given (UTF-8); the
	// sink got the same.
	slices.Sort(gotTo)
	slices.Sort(want)
	if !slices.Equal(gotTo, want) {
		t.Errorf("leaks reported:\n  %q\nwant (delivered and flagged):\n  %q", gotTo, want)
	}
	if stats.Malformed != 0 {
		t.Errorf("malformed lines in a real Postfix log: %v", stats.Samples)
	}
	if n := stats.Count(maillog.Sent); n != wantDelivered {
		t.Errorf("sent attempts %d, want %d (every sink delivery)", n, wantDelivered)
	}
	if stats.Count(maillog.Discarded) != 1 || stats.Count(maillog.Bounced) != 2 || stats.Count(maillog.Deferred) < 1 {
		t.Errorf("attempts %v: want 1 discarded, 2 bounced, ≥1 deferred", stats.Attempts)
	}

	// Every leak is joined with its own message: the Message-ID names the
	// message sent, whose sender and recipients must match.
	for _, r := range got {
		var i int
		if _, err := fmt.Sscanf(r.MessageID, "<m%d@corp.example>", &i); err != nil || i < 0 || i >= len(realMix) {
			t.Errorf("%s: message-id %q is not one sent", r.To, r.MessageID)
			continue
		}
		m := realMix[i]
		sent := slices.ContainsFunc(m.to, func(x string) bool { return strings.EqualFold(x, r.To) })
		if i == 4 { // team@corp.example expands to a@gmial.com, b@gmail.com
			sent = r.To == "a@gmial.com" && r.OrigTo == "team@corp.example"
		}
		if !sent {
			t.Errorf("%s (orig_to %q) reported in message %d, which went to %v", r.To, r.OrigTo, i, m.to)
		}
		if r.From == nil || *r.From != m.from {
			t.Errorf("%s: from %v, want %q", r.To, r.From, m.from)
		}
		if r.Client != "localhost[127.0.0.1]" || r.QueueID == "" || r.Status != "sent" || r.Relay == "" || r.Source == "" {
			t.Errorf("%s: client %q queue %q status %q relay %q source %q", r.To, r.Client, r.QueueID, r.Status, r.Relay, r.Source)
		}
		if r.Time == nil || time.Since(*r.Time) > time.Hour || time.Until(*r.Time) > time.Minute {
			t.Errorf("%s: time %v is not now", r.To, r.Time)
		}
	}

	rep := a.Report(stats)
	missed := map[string]bool{}
	for _, d := range rep.Missed {
		missed[d.Domain] = true
	}
	if !missed["gmail.con"] || !missed["outlok.com"] {
		t.Errorf("bounced gmail.con and deferred outlok.com should be listed as attempted, not delivered: %+v", rep.Missed)
	}
	for _, d := range rep.Domains {
		if d.Domain == "yaho.com" || d.Domain == "gmail.con" || d.Domain == "outlok.com" {
			t.Errorf("%s was not delivered but is reported as a leak", d.Domain)
		}
	}
	if rep.Leaks != int64(len(want)) || rep.Delivered != wantDelivered {
		t.Errorf("report: %d leaks of %d delivered, want %d of %d", rep.Leaks, rep.Delivered, len(want), wantDelivered)
	}
	if p := os.Getenv("STRAY_AUDIT_EXAMPLE"); p != "" {
		rep.Generated, rep.Version, rep.Inputs = time.Now(), "test", []string{"maillog (real Postfix " + "3.7)"}
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteHTML(f, rep); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}
