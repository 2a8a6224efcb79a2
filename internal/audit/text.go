package audit

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/maillog"
)

// RowWriter writes flagged rows as they are found.
type RowWriter interface {
	Write(Row) error
	Flush() error
}

type jsonWriter struct{ w *bufio.Writer }

// NewJSONWriter writes one JSON object per row and line (JSON Lines).
func NewJSONWriter(w io.Writer) RowWriter { return &jsonWriter{bufio.NewWriterSize(w, 64*1024)} }

func (j *jsonWriter) Write(r Row) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	j.w.Write(b)
	return j.w.WriteByte('\n')
}

func (j *jsonWriter) Flush() error { return j.w.Flush() }

// CSVHeader names the CSV columns.
var CSVHeader = []string{"time", "queue_id", "from", "to", "verdict", "intended", "suggestion", "score", "reasons",
	"status", "relay", "message_id", "client", "orig_to", "host", "source"}

type csvWriter struct {
	w      *csv.Writer
	header bool
}

// NewCSVWriter writes a header and then one row per flagged row; reasons
// are "kind: sentence" joined by "; ".
func NewCSVWriter(w io.Writer) RowWriter { return &csvWriter{w: csv.NewWriter(w)} }

func (c *csvWriter) Write(r Row) error {
	if !c.header {
		c.header = true
		if err := c.w.Write(CSVHeader); err != nil {
			return err
		}
	}
	t, from := "", ""
	if r.Time != nil {
		t = r.Time.Format(time.RFC3339)
	}
	if r.From != nil {
		from = *r.From
	}
	reasons := make([]string, len(r.Reasons))
	for i, x := range r.Reasons {
		reasons[i] = x.Kind + ": " + x.Message
	}
	return c.w.Write([]string{t, r.QueueID, csvSafe(from), csvSafe(r.To), r.Verdict.String(), r.Intended, csvSafe(r.Suggestion),
		strconv.FormatFloat(r.Score, 'f', 3, 64), csvSafe(strings.Join(reasons, "; ")), r.Status, csvSafe(r.Relay),
		csvSafe(r.MessageID), csvSafe(r.Client), csvSafe(r.OrigTo), csvSafe(r.Host), csvSafe(r.Source)})
}

// csvSafe keeps a spreadsheet from running a cell that an outsider wrote
// (an address in a log) as a formula.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func (c *csvWriter) Flush() error {
	if !c.header { // a header even when nothing was found
		c.header = true
		c.w.Write(CSVHeader)
	}
	c.w.Flush()
	return c.w.Error()
}

// thousands formats n with thousands separators.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func day(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format("2006-01-02")
}

func minute(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format("2006-01-02 15:04")
}

// percent formats part/whole, "-" when whole is 0.
func percent(part, whole int64) string {
	if whole == 0 {
		return "-"
	}
	p := 100 * float64(part) / float64(whole)
	switch {
	case p == 0:
		return "0%"
	case p < 0.01:
		return "<0.01%"
	case p < 10:
		return strconv.FormatFloat(p, 'f', 2, 64) + "%"
	}
	return strconv.FormatFloat(p, 'f', 1, 64) + "%"
}

// pad pads s with spaces to n runes, for terminal columns.
func pad(s string, n int) string {
	if c := utf8.RuneCountInString(s); c < n {
		return s + strings.Repeat(" ", n-c)
	}
	return s
}

func width(min int, cells ...string) int {
	w := min
	for _, c := range cells {
		w = max(w, utf8.RuneCountInString(c))
	}
	return w
}

// plural returns "1 thing" or "n things".
func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return thousands(n) + " " + many
}

// Summary is the report's one-paragraph answer, for people.
func (r *Report) Summary() string {
	var out string
	switch {
	case r.Stats == nil:
		// Configuration only.
	case r.Leaks == 0:
		out = fmt.Sprintf("No delivered mail to lookalike domains among %s delivered recipients.", thousands(r.Delivered))
	default:
		when := fmt.Sprintf("between %s and %s", day(r.FirstLeak), day(r.LastLeak))
		if day(r.FirstLeak) == day(r.LastLeak) {
			when = "on " + day(r.FirstLeak)
		}
		out = fmt.Sprintf("%s of %s delivered recipients (%s) went to %s, from %s, %s.",
			thousands(r.Leaks), thousands(r.Delivered), percent(r.Leaks, r.Delivered),
			plural(int64(r.AllDomains), "lookalike domain", "lookalike domains"),
			plural(int64(r.AllSenders), "sender", "senders"), when)
	}
	if len(r.ConfigFiles) > 0 {
		if out != "" {
			out += " "
		}
		switch n := len(r.Config); n {
		case 0:
			out += "No configuration entry sends mail to a lookalike domain."
		case 1:
			out += "1 configuration entry sends mail to a lookalike domain."
		default:
			out += fmt.Sprintf("%d configuration entries send mail to lookalike domains.", n)
		}
	}
	return out
}

// VerdictCounts lists the leaks per verdict, worst first.
func (r *Report) VerdictCounts() string {
	var parts []string
	for v := detect.Block; v >= r.MinVerdict && v > detect.OK; v-- {
		if n := r.ByVerdict[v]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %s", v, thousands(n)))
		}
	}
	return strings.Join(parts, ", ")
}

// NotDelivered describes the attempts that did not deliver.
func (r *Report) NotDelivered() string {
	var parts []string
	for _, s := range []maillog.Status{maillog.Bounced, maillog.Deferred, maillog.Expired, maillog.Discarded} {
		if n := r.Attempts[s]; n > 0 {
			parts = append(parts, thousands(n)+" "+s.String())
		}
	}
	return strings.Join(parts, ", ")
}

// Period says which time the report covers.
func (r *Report) Period() string {
	if r.First.IsZero() {
		return "no deliveries"
	}
	return fmt.Sprintf("%s to %s", minute(r.First), minute(r.Last))
}

// WriteText writes the report for a terminal.
func WriteText(w io.Writer, r *Report) error {
	bw := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(bw, format, a...) }
	inputs := strings.Join(r.Inputs, ", ")
	if len(r.Inputs) > 3 {
		inputs = fmt.Sprintf("%s, … %s", r.Inputs[0], r.Inputs[len(r.Inputs)-1])
	}
	if len(r.Inputs) > 0 {
		p("stray audit of %s (%s)\n", plural(int64(len(r.Inputs)), "log", "logs"), inputs)
		p("period: %s", r.Period())
		if !r.Since.IsZero() || !r.Until.IsZero() {
			p(" (limited to")
			if !r.Since.IsZero() {
				p(" since %s", minute(r.Since))
			}
			if !r.Until.IsZero() {
				p(" until %s", minute(r.Until))
			}
			p(")")
		}
		p("\n\n")
		p("  %s delivered recipients", thousands(r.Delivered))
		if nd := r.NotDelivered(); nd != "" {
			p("; attempts not delivered: %s", nd)
		}
		p("\n")
		if r.Leaks > 0 {
			p("  %s delivered to %s (%s of deliveries), from %s: %s\n", thousands(r.Leaks),
				plural(int64(r.AllDomains), "lookalike domain", "lookalike domains"), percent(r.Leaks, r.Delivered),
				plural(int64(r.AllSenders), "sender", "senders"), r.VerdictCounts())
		} else {
			p("  nothing delivered to a lookalike domain (verdict %s or worse)\n", r.MinVerdict)
		}
	}
	if len(r.Domains) > 0 {
		p("\nWorst lookalike domains (delivered)\n")
		writeDomainTable(bw, r.Domains, false)
		if r.AllDomains > len(r.Domains) {
			p("  … %d more (--top N shows more)\n", r.AllDomains-len(r.Domains))
		}
		var recips []RecipientRow
		for _, d := range r.Domains {
			recips = append(recips, d.Recipients...)
		}
		sortRecipients(recips)
		if len(recips) > r.Top {
			recips = recips[:r.Top]
		}
		aw := width(9, func() []string {
			var s []string
			for _, x := range recips {
				s = append(s, x.Address)
			}
			return s
		}()...)
		p("\nMost frequent lookalike recipients\n")
		p("  %s  %-*s  %9s  %7s  %-10s  %-10s\n", pad("RECIPIENT", aw), aw, "MEANT", "DELIVERED", "SENDERS", "FIRST", "LAST")
		for _, x := range recips {
			p("  %s  %s  %9s  %7d  %-10s  %-10s\n", pad(x.Address, aw), pad(x.Suggestion, aw), thousands(x.Deliveries), x.Senders, day(x.First), day(x.Last))
		}
	}
	if len(r.Senders) > 0 {
		sw := width(6, func() []string {
			var s []string
			for _, x := range r.Senders {
				s = append(s, x.Sender)
			}
			return s
		}()...)
		p("\nTop affected senders\n")
		p("  %s  %6s  %7s  %-10s  %-10s\n", pad("SENDER", sw), "LEAKED", "DOMAINS", "FIRST", "LAST")
		for _, s := range r.Senders {
			p("  %s  %6s  %7d  %-10s  %-10s\n", pad(s.Sender, sw), thousands(s.Deliveries), s.Domains, day(s.First), day(s.Last))
		}
		if r.AllSenders > len(r.Senders) {
			p("  … %d more\n", r.AllSenders-len(r.Senders))
		}
	}
	if len(r.Months) > 0 && len(r.Inputs) > 0 {
		var most int64
		for _, m := range r.Months {
			most = max(most, m.Leaks)
		}
		p("\nMonthly trend (delivered to lookalikes / all delivered)\n")
		for _, m := range r.Months {
			bar := ""
			if most > 0 {
				bar = strings.Repeat("█", int((m.Leaks*40+most-1)/most))
			}
			p("  %s  %7s / %-11s %-7s %s\n", m.Month, thousands(m.Leaks), thousands(m.Deliveries), percent(m.Leaks, m.Deliveries), bar)
		}
	}
	if len(r.Missed) > 0 {
		p("\nLookalike domains attempted but not delivered (bounced or deferred attempts)\n")
		writeDomainTable(bw, r.Missed, true)
	}
	if len(r.ConfigFiles) > 0 {
		p("\nConfiguration (%s)\n", strings.Join(r.ConfigFiles, ", "))
		if len(r.Config) == 0 {
			p("  no destination looks like a typo\n")
		}
		for _, c := range r.Config {
			key := ""
			if c.From != nil {
				key = *c.From
			}
			p("  %s  %s → %s  %s  did you mean %s?\n", c.Source, key, c.To, c.Verdict, c.Suggestion)
			for _, why := range c.Reasons {
				p("      %s: %s\n", why.Kind, why.Message)
			}
		}
	}
	if r.Untracked > 0 || r.Approximate {
		p("\nnote: more leaks than stray itemises (%d domains, recipients and senders each): %s leaks are in the totals only; distinct counts are at least those shown\n", maxTracked, thousands(r.Untracked))
	}
	for _, e := range r.ConfigErrors {
		p("  error: %s\n", e)
	}
	if st := r.Stats; st != nil && len(r.Inputs) > 0 {
		p("\nRead %s lines (%s events)", thousands(st.Lines), thousands(st.Events))
		p("; %s malformed", thousands(st.Malformed))
		if st.Malformed > 0 && len(st.Samples) > 0 {
			p(" (first: %v)", st.Samples[0])
		}
		p("; %s open at the end", plural(st.Open, "message", "messages"))
		if st.Evicted > 0 {
			p("; %s evicted while open", thousands(st.Evicted))
		}
		p("\n")
		if r.Unparsable > 0 {
			p("%s delivered recipients have no parsable domain and were not checked\n", thousands(r.Unparsable))
		}
		for _, n := range st.NoEvents {
			p("warning: %s: no mail delivery lines recognised (wrong --log-format?)\n", n)
		}
	}
	return bw.Flush()
}

func writeDomainTable(w io.Writer, rows []DomainRow, attempts bool) {
	dw, iw := 6, 10
	for _, d := range rows {
		dw = max(dw, utf8.RuneCountInString(d.Display()))
		iw = max(iw, utf8.RuneCountInString(d.Intended))
	}
	count := "DELIVERED"
	if attempts {
		count = "ATTEMPTS"
	}
	fmt.Fprintf(w, "  %s  %s  %-7s  %9s  %7s  %-10s  %-10s  %s\n", pad("DOMAIN", dw), pad("LOOKS LIKE", iw), "VERDICT", count, "SENDERS", "FIRST", "LAST", "WHY")
	for _, d := range rows {
		why := d.Why()
		if attempts {
			var parts []string
			for _, s := range maillog.Statuses() {
				if n := d.Statuses[s]; n > 0 {
					parts = append(parts, fmt.Sprintf("%s %d", s, n))
				}
			}
			why = strings.Join(parts, ", ")
		}
		fmt.Fprintf(w, "  %s  %s  %-7s  %9s  %7d  %-10s  %-10s  %s\n", pad(d.Display(), dw), pad(d.Intended, iw), d.Verdict,
			thousands(d.Deliveries), d.Senders, day(d.First), day(d.Last), why)
	}
}
