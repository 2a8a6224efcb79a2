package audit

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/maillog"
)

var t0 = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)

func delivery(to, from string, status maillog.Status, at time.Time) *maillog.Delivery {
	return &maillog.Delivery{Time: at, QueueID: "ABCDE12345", Host: "mx", To: to, From: from, SenderKnown: true,
		Status: status, Relay: "mx.example[192.0.2.1]:25", MessageID: "<m@corp.example>", File: "mail.log", Line: 7}
}

func TestAuditReportsOnlyDeliveredFlaggedRecipientsInThePeriod(t *testing.T) {
	t.Parallel()
	a := New(realChecker(t), Options{Since: t0, Until: t0.AddDate(0, 2, 0)})
	cases := []struct {
		d    *maillog.Delivery
		leak bool
	}{
		{delivery("x@gmial.com", "a@corp.example", maillog.Sent, t0), true},
		{delivery("x@gmial.com", "a@corp.example", maillog.Bounced, t0), false},
		{delivery("x@gmial.com", "a@corp.example", maillog.Deferred, t0), false},
		{delivery("y@yaho.com", "a@corp.example", maillog.Discarded, t0), false},
		{delivery("y@yaho.com", "a@corp.example", maillog.Verified, t0), false},
		{delivery("ok@gmail.com", "a@corp.example", maillog.Sent, t0), false},
		{delivery("x@gmial.com", "a@corp.example", maillog.Sent, t0.Add(-time.Second)), false},           // before --since
		{delivery("x@gmial.com", "a@corp.example", maillog.Sent, t0.AddDate(0, 2, 0)), false},            // at --until
		{delivery("j@army.ml", "b@corp.example", maillog.Sent, t0.AddDate(0, 1, 3)), true},               // block
		{delivery("broken@", "b@corp.example", maillog.Sent, t0), false},                                 // no domain
		{delivery("k@corp.example", "b@corp.example", maillog.Sent, t0), false},                          // own domain
		{&maillog.Delivery{Time: t0, To: "m@gmial.com", Status: maillog.Sent, QueueID: "Q1BCDEF"}, true}, // sender unknown
	}
	for i, c := range cases {
		r, ok := a.Delivery(c.d)
		if ok != c.leak {
			t.Errorf("case %d (%s %s %v): leak %v, want %v", i, c.d.To, c.d.Status, c.d.Time, ok, c.leak)
		}
		if ok && (r.Source != "mail.log:7" && c.d.File != "" || r.Status != "sent") {
			t.Errorf("case %d: row %+v", i, r)
		}
	}
	rep := a.Report(nil)
	if rep.Leaks != 3 || rep.Delivered != 6 || rep.Unparsable != 1 || rep.AllDomains != 2 || rep.AllSenders != 3 {
		t.Errorf("report: leaks %d delivered %d unparsable %d domains %d senders %d", rep.Leaks, rep.Delivered, rep.Unparsable, rep.AllDomains, rep.AllSenders)
	}
	if rep.Domains[0].Domain != "army.ml" || rep.Domains[0].Verdict != detect.Block || rep.Domains[1].Domain != "gmial.com" || rep.Domains[1].Deliveries != 2 {
		t.Errorf("domains, worst first: %+v", rep.Domains)
	}
	if len(rep.Missed) != 1 || rep.Missed[0].Domain != "gmial.com" || rep.Missed[0].Deliveries != 2 {
		t.Errorf("attempted but not delivered: %+v", rep.Missed)
	}
	if len(rep.Months) != 2 || rep.Months[0] != (Month{"2024-03", 5, 2}) || rep.Months[1] != (Month{"2024-04", 1, 1}) {
		t.Errorf("months %+v", rep.Months)
	}
	if !a.Found() {
		t.Error("Found() false with leaks")
	}
}

// The audit checks each domain once and builds each recipient's finding
// from the domain's: it must equal what Check says of the recipient.
func TestAuditFindingsEqualTheEnginesForEachRecipient(t *testing.T) {
	t.Parallel()
	c := realChecker(t)
	a := New(c, Options{})
	addrs := []string{"x@gmial.com", "Y@GMIAL.COM", `"john doe"@gmial.com`, "k@gmаil.com", "k@xn--gmil-63d.com", "j@army.ml",
		"s@westlandhihg.school.nz", "m@gmail.co", "a@mail.gmial.com", "z@gmial.com.", "o@outlok.com", "w@gmail.con"}
	for _, addr := range addrs {
		for i := 0; i < 2; i++ { // the second time from the cache
			r, ok := a.Delivery(delivery(addr, "a@corp.example", maillog.Sent, t0))
			f, err := c.Check(addr)
			if err != nil || !f.Flagged() {
				t.Fatalf("%s: test premise: should be flagged (%v)", addr, err)
			}
			if !ok || r.Verdict != f.Verdict || r.Intended != f.Intended || r.Suggestion != f.Suggestion || r.Score != f.Score || !slices.Equal(r.Reasons, f.Reasons) {
				t.Errorf("%s: row %+v\nwant finding %+v", addr, r, f)
			}
		}
	}
}

func TestAuditMinVerdictLeavesOutWeakerFindings(t *testing.T) {
	t.Parallel()
	a := New(realChecker(t), Options{MinVerdict: detect.Block})
	if _, ok := a.Delivery(delivery("x@gmial.com", "a@corp.example", maillog.Sent, t0)); ok {
		t.Error("hold reported with --min-verdict block")
	}
	if _, ok := a.Delivery(delivery("x@army.ml", "a@corp.example", maillog.Sent, t0)); !ok {
		t.Error("block not reported")
	}
}

func TestConfigEntriesAreCheckedLikeRecipients(t *testing.T) {
	t.Parallel()
	a := New(realChecker(t), Options{})
	r, ok := a.ConfigEntry(ConfigEntry{File: "virtual", Line: 3, Key: "@old.example", Address: "@corp.exmaple"})
	if !ok || r.Suggestion != "@corp.example" || r.Status != StatusConfigured || r.Source != "virtual:3" || *r.From != "@old.example" || r.Time != nil {
		t.Errorf("domain rewrite: %+v %v", r, ok)
	}
	if _, ok := a.ConfigEntry(ConfigEntry{File: "virtual", Line: 4, Key: "k", Address: "fine@gmail.com"}); ok {
		t.Error("a good destination was flagged")
	}
	if !a.Found() {
		t.Error("a configuration finding is a finding")
	}
}

func TestJSONRowsCarryTheContractFields(t *testing.T) {
	t.Parallel()
	a := New(realChecker(t), Options{})
	var buf bytes.Buffer
	w := NewJSONWriter(&buf)
	unknown := &maillog.Delivery{Time: t0, To: "m@gmial.com", Status: maillog.Sent, QueueID: "Q1BCDEF"}
	for _, d := range []*maillog.Delivery{delivery("x@gmial.com", "a@corp.example", maillog.Sent, t0), unknown} {
		r, _ := a.Delivery(d)
		w.Write(r)
	}
	w.Flush()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %s", len(lines), buf.String())
	}
	for i, l := range lines {
		var o map[string]any
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"time", "queue_id", "from", "to", "verdict", "intended", "suggestion", "reasons", "status", "source"} {
			if _, ok := o[k]; !ok {
				t.Errorf("line %d lacks %q: %s", i, k, l)
			}
		}
		if o["time"] != "2024-03-01T10:00:00Z" || o["verdict"] != "hold" || o["intended"] != "gmail.com" {
			t.Errorf("line %d: %s", i, l)
		}
	}
	if !strings.Contains(lines[1], `"from":null`) {
		t.Errorf("an unknown sender is null: %s", lines[1])
	}
}

func TestCSVHasAHeaderAndNeutralisesFormulas(t *testing.T) {
	t.Parallel()
	var empty bytes.Buffer
	NewCSVWriter(&empty).Flush()
	if strings.TrimSpace(empty.String()) != strings.Join(CSVHeader, ",") {
		t.Errorf("empty CSV: %q", empty.String())
	}
	a := New(realChecker(t), Options{})
	var buf bytes.Buffer
	w := NewCSVWriter(&buf)
	r, ok := a.Delivery(delivery("=HYPERLINK(x)@gmial.com", "+cmd@corp.example", maillog.Sent, t0))
	if !ok {
		t.Fatal("not flagged")
	}
	w.Write(r)
	w.Flush()
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(recs) != 2 || len(recs[1]) != len(CSVHeader) {
		t.Fatalf("%v %v", recs, err)
	}
	for _, cell := range recs[1] {
		if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) {
			t.Errorf("cell %q starts a formula", cell)
		}
	}
}

func TestHTMLReportEscapesLogTextAndFetchesNothing(t *testing.T) {
	t.Parallel()
	a := New(realChecker(t), Options{})
	hostile := `"<script>alert(1)</script>"@gmial.com`
	d := delivery(hostile, `<img src=x onerror=alert(2)>@corp.example`, maillog.Sent, t0)
	if _, ok := a.Delivery(d); !ok {
		t.Fatal("not flagged")
	}
	e := ConfigEntry{File: `<b>virtual</b>`, Line: 1, Key: `<i>k</i>`, Address: "x@gmial.com"}
	a.ConfigEntry(e)
	rep := a.Report(&maillog.Stats{Lines: 1})
	rep.Inputs, rep.ConfigFiles = []string{`<iframe src="http://evil.example/">`}, []string{e.File}
	var buf bytes.Buffer
	if err := WriteHTML(&buf, rep); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, bad := range []string{"<script>", "<img", "<iframe", "<b>virtual", "<i>k"} {
		if strings.Contains(out, bad) {
			t.Errorf("unescaped %q in the report", bad)
		}
	}
	if !strings.Contains(out, "&lt;script&gt;") {
		t.Error("the hostile recipient is not shown, escaped")
	}
	if !strings.Contains(out, `content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"`) {
		t.Error("no Content-Security-Policy forbidding fetches")
	}
	// Nothing that would fetch: no src or href attributes, no url(), no @import.
	if m := regexp.MustCompile(`(?i)<[a-z][^>]*\s(src|href|xlink:href)\s*=|url\(|@import|<link|<script`).FindString(out); m != "" {
		t.Errorf("the report could fetch something: %q", m)
	}
}

func TestTrendListsEveryMonthBetweenTheFirstAndLastDelivery(t *testing.T) {
	t.Parallel()
	a := New(realChecker(t), Options{})
	a.Delivery(delivery("ok@gmail.com", "a@corp.example", maillog.Sent, time.Date(2023, 11, 30, 0, 0, 0, 0, time.UTC)))
	a.Delivery(delivery("x@gmial.com", "a@corp.example", maillog.Sent, time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)))
	var got []string
	for _, m := range a.Report(nil).Months {
		got = append(got, m.Month)
	}
	if !slices.Equal(got, []string{"2023-11", "2023-12", "2024-01", "2024-02"}) {
		t.Errorf("months %v", got)
	}
}

func TestNiceStepRoundsToOneTwoOrFive(t *testing.T) {
	t.Parallel()
	for in, want := range map[float64]int64{0: 1, 1: 1, 1.2: 2, 3: 5, 7: 10, 12: 20, 4999: 5000, 5001: 10000} {
		if got := niceStep(in); got != want {
			t.Errorf("niceStep(%v) = %d, want %d", in, got, want)
		}
	}
}

// However many leaks a log holds, the audit itemises a bounded number of
// domains, recipients and senders; the totals stay exact.
func TestAuditMemoryIsBoundedHoweverManyLeaks(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("100,000 leaks")
	}
	a := New(realChecker(t), Options{})
	const n = maxTracked + 10
	for i := 0; i < n; i++ {
		d := delivery(fmt.Sprintf("r%d@gmial.com", i), fmt.Sprintf("s%d@corp.example", i), maillog.Sent, t0)
		if _, ok := a.Delivery(d); !ok {
			t.Fatalf("leak %d not reported", i)
		}
	}
	rep := a.Report(nil)
	if rep.Leaks != n || rep.Untracked != 10 || a.nRecipients != maxTracked || rep.AllSenders != maxTracked || !rep.Approximate {
		t.Errorf("leaks %d untracked %d recipients %d senders %d approximate %v", rep.Leaks, rep.Untracked, a.nRecipients, rep.AllSenders, rep.Approximate)
	}
	if rep.Domains[0].Deliveries != n || rep.Domains[0].Senders != n {
		t.Errorf("the domain's row: %d deliveries from %d senders, want %d", rep.Domains[0].Deliveries, rep.Domains[0].Senders, n)
	}
	var text bytes.Buffer
	WriteText(&text, rep)
	if !strings.Contains(text.String(), "note: more leaks than stray itemises") {
		t.Errorf("the text does not say what it left out")
	}
}
