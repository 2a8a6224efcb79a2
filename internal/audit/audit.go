// Package audit answers, from mail logs and mail configuration, "how much
// of our mail already went to lookalike domains, to which, from whom, since
// when?": it runs every delivered recipient through the detection engine,
// aggregates what it flags (per lookalike domain, per sender, per month)
// and writes the answer as text, JSON Lines, CSV or a self-contained HTML
// report. It also learns the domains an organisation really writes to
// (Learner), for detect's known-correspondents knowledge.
//
// What it decides: which deliveries count (delivered, inside the period,
// flagged at or above the minimum verdict) and how they are summarised.
//
// What it must never do: decide itself whether a domain is a typo (that is
// detect), parse logs (maillog), or fetch anything over the network when a
// report is written or opened.
package audit

import (
	"cmp"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/idna"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/address"
	"github.com/stray-mail/stray/internal/maillog"
)

// Options shape an audit.
type Options struct {
	// Since and Until bound the deliveries counted: Since ≤ time < Until;
	// zero is open.
	Since, Until time.Time
	// MinVerdict is the least verdict reported (default detect.Warn).
	MinVerdict detect.Verdict
	// Top bounds the rows of the ranked tables (default 20).
	Top int
}

// Row is one flagged delivery or configuration entry: a JSON Lines object
// or a CSV row.
type Row struct {
	Time       *time.Time      `json:"time"`
	QueueID    string          `json:"queue_id"`
	Host       string          `json:"host,omitempty"`
	Client     string          `json:"client,omitempty"`
	From       *string         `json:"from"`
	To         string          `json:"to"`
	OrigTo     string          `json:"orig_to,omitempty"`
	Verdict    detect.Verdict  `json:"verdict"`
	Intended   string          `json:"intended"`
	Suggestion string          `json:"suggestion"`
	Score      float64         `json:"score"`
	Reasons    []detect.Reason `json:"reasons"`
	// Status is the delivery's ("sent"), or "configured" for an entry of
	// a configuration file.
	Status    string `json:"status"`
	Relay     string `json:"relay,omitempty"`
	MessageID string `json:"message_id,omitempty"`
	// Source is where the row comes from: FILE:LINE.
	Source string `json:"source"`
}

// StatusConfigured is the Status of a configuration entry's row.
const StatusConfigured = "configured"

type verdictCache struct {
	flagged bool
	bad     bool // the domain cannot be parsed
	f       detect.Finding
}

// maxCache bounds the per-domain cache of findings; it is dropped whole
// when full (domains repeat, so it refills with the frequent ones).
const maxCache = 1 << 18

// Auditor accumulates an audit. It is not safe for concurrent use.
type Auditor struct {
	c     *detect.Checker
	opt   Options
	cache map[string]*verdictCache

	attempts   [maillog.NumStatus]int64
	delivered  int64
	unparsable int64
	leaks      int64
	first      time.Time
	last       time.Time
	firstLeak  time.Time
	lastLeak   time.Time
	months     map[string]*Month
	lastMonth  *Month
	lastY      int
	lastM      time.Month
	domains    map[string]*domainAgg
	senders    map[string]*senderAgg
	missed     map[string]*domainAgg // flagged but not delivered
	config     []Row
	byVerdict  [4]int64

	// Distinct counting and its bounds (see maxTracked).
	pairs       map[uint64]struct{}
	seed        maphash.Seed
	nRecipients int
	untracked   int64 // leaks not attributed to a domain, recipient or sender row
	approximate bool  // distinct counts are lower bounds
}

// Bounds on what an audit remembers, so that memory stays bounded however
// many leaks a log holds (a forwarding typo can leak every message of a
// mailing list): rows for at most maxTracked lookalike domains, recipients
// and senders each (the most frequent are nearly always among the first
// seen), and distinct-sender counts from at most maxPairs (domain or
// recipient, sender) pairs. Beyond them the totals stay exact, the report
// says what was not itemised, and distinct counts are lower bounds.
const (
	maxTracked = 100_000
	maxPairs   = 1 << 21
)

// New starts an audit with the checker's knowledge.
func New(c *detect.Checker, opt Options) *Auditor {
	if opt.MinVerdict == detect.OK {
		opt.MinVerdict = detect.Warn
	}
	if opt.Top <= 0 {
		opt.Top = 20
	}
	return &Auditor{
		c: c, opt: opt,
		cache:   map[string]*verdictCache{},
		months:  map[string]*Month{},
		domains: map[string]*domainAgg{},
		senders: map[string]*senderAgg{},
		missed:  map[string]*domainAgg{},
		pairs:   map[uint64]struct{}{},
		seed:    maphash.MakeSeed(),
	}
}

// firstPair reports whether (kind, a, b) is seen for the first time.
func (a *Auditor) firstPair(kind byte, x, y string) bool {
	var h maphash.Hash
	h.SetSeed(a.seed)
	h.WriteByte(kind)
	h.WriteString(x)
	h.WriteByte(0)
	h.WriteString(y)
	k := h.Sum64()
	if _, ok := a.pairs[k]; ok {
		return false
	}
	if len(a.pairs) >= maxPairs {
		a.approximate = true
		return false
	}
	a.pairs[k] = struct{}{}
	return true
}

type domainAgg struct {
	domain, intended string
	verdict          detect.Verdict
	reasons          []detect.Reason
	count            int64
	senders          int
	recipients       map[string]*recipientAgg
	first, last      time.Time
	statuses         map[maillog.Status]int64
}

type recipientAgg struct {
	address, suggestion string
	count               int64
	senders             int
	first, last         time.Time
}

type senderAgg struct {
	sender      string
	count       int64
	domains     int
	first, last time.Time
}

// domainPart returns the text after the last '@' ("" when there is none).
func domainPart(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return addr[i+1:]
}

// lookup checks a recipient's domain, once per distinct domain: a finding
// depends on the domain alone (detect.Checker.CheckAddress reads only the
// parsed domain), so the cached verdict is the one Check would give.
func (a *Auditor) lookup(to string) *verdictCache {
	dom := domainPart(to)
	if v, ok := a.cache[dom]; ok {
		return v
	}
	v := &verdictCache{}
	f, err := a.c.Check("postmaster@" + dom)
	if err != nil || dom == "" {
		v.bad = true
	} else {
		v.f = f
		v.flagged = f.Verdict >= a.opt.MinVerdict
	}
	if len(a.cache) >= maxCache {
		clear(a.cache)
	}
	a.cache[strings.Clone(dom)] = v
	return v
}

// finding is the full finding for one flagged recipient: the domain's,
// with the address and suggestion made as detect.Checker.CheckAddress
// makes them, without checking the domain again.
func (a *Auditor) finding(to string, v *verdictCache) detect.Finding {
	f := v.f
	if p, err := address.Parse(to); err == nil {
		f.Address = p.String()
		f.Suggestion = ""
		if f.Intended != "" {
			f.Suggestion = p.WithDomain(f.Intended)
		}
		return f
	}
	// The local part does not parse (a log holds what it was given); the
	// domain's finding holds, and the suggestion keeps the local part.
	f.Address = to
	f.Suggestion = ""
	if f.Intended != "" {
		f.Suggestion = to[:len(to)-len(domainPart(to))] + f.Intended
	}
	return f
}

func (a *Auditor) inPeriod(t time.Time) bool {
	return (a.opt.Since.IsZero() || !t.Before(a.opt.Since)) && (a.opt.Until.IsZero() || t.Before(a.opt.Until))
}

func monthKey(t time.Time) string { return t.Format("2006-01") }

// month returns the trend's month of t; consecutive deliveries mostly
// share one, so the last is kept at hand.
func (a *Auditor) month(t time.Time) *Month {
	y, mo, _ := t.Date()
	if a.lastMonth != nil && y == a.lastY && mo == a.lastM {
		return a.lastMonth
	}
	k := monthKey(t)
	m := a.months[k]
	if m == nil {
		m = &Month{Month: k}
		a.months[k] = m
	}
	a.lastMonth, a.lastY, a.lastM = m, y, mo
	return m
}

// Delivery audits one delivery attempt. It returns the row and true when
// the recipient was delivered and is flagged: a leak.
func (a *Auditor) Delivery(d *maillog.Delivery) (Row, bool) {
	if !a.inPeriod(d.Time) {
		return Row{}, false
	}
	a.attempts[d.Status]++
	delivered := d.Delivered()
	missed := d.Status == maillog.Bounced || d.Status == maillog.Deferred || d.Status == maillog.Expired
	if !delivered && !missed {
		return Row{}, false
	}
	var m *Month
	if delivered {
		a.delivered++
		if a.first.IsZero() || d.Time.Before(a.first) {
			a.first = d.Time
		}
		if d.Time.After(a.last) {
			a.last = d.Time
		}
		m = a.month(d.Time)
		m.Deliveries++
	}
	v := a.lookup(d.To)
	if v.bad {
		if delivered {
			a.unparsable++
		}
		return Row{}, false
	}
	if !v.flagged {
		return Row{}, false
	}
	f := a.finding(d.To, v)
	// Kept in the aggregates: a copy, not a slice of the log's block.
	sender := strings.Clone(senderName(d))
	if !delivered {
		a.add(a.missed, d, f, sender)
		return Row{}, false
	}
	a.leaks++
	a.byVerdict[f.Verdict]++
	m.Leaks++
	a.firstLeak, a.lastLeak = minTime(a.firstLeak, d.Time), maxTime(a.lastLeak, d.Time)
	if !a.add(a.domains, d, f, sender) {
		a.untracked++
	}
	s := a.senders[sender]
	if s == nil && len(a.senders) < maxTracked {
		s = &senderAgg{sender: sender, first: d.Time}
		a.senders[sender] = s
	}
	if s != nil {
		s.count++
		if a.firstPair('s', sender, f.Domain) {
			s.domains++
		}
		s.first, s.last = minTime(s.first, d.Time), maxTime(s.last, d.Time)
	}
	return a.row(d, f), true
}

// senderName is how a report names a delivery's sender.
func senderName(d *maillog.Delivery) string {
	switch {
	case !d.SenderKnown:
		return "(unknown)"
	case d.From == "":
		return "<>"
	}
	return d.From
}

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// add counts a flagged attempt in its domain's and recipient's rows. It
// returns false when the domain or the recipient is beyond the bounds.
func (a *Auditor) add(m map[string]*domainAgg, d *maillog.Delivery, f detect.Finding, sender string) bool {
	agg := m[f.Domain]
	if agg == nil {
		if len(m) >= maxTracked {
			return false
		}
		agg = &domainAgg{domain: f.Domain, intended: f.Intended, verdict: f.Verdict, reasons: f.Reasons,
			recipients: map[string]*recipientAgg{}, statuses: map[maillog.Status]int64{}}
		m[f.Domain] = agg
	}
	agg.count++
	agg.statuses[d.Status]++
	if a.firstPair('d', f.Domain, sender) {
		agg.senders++
	}
	agg.first, agg.last = minTime(agg.first, d.Time), maxTime(agg.last, d.Time)
	r := agg.recipients[f.Address]
	if r == nil {
		if a.nRecipients >= maxTracked {
			return false
		}
		a.nRecipients++
		r = &recipientAgg{address: f.Address, suggestion: f.Suggestion}
		agg.recipients[f.Address] = r
	}
	r.count++
	if a.firstPair('r', f.Address, sender) {
		r.senders++
	}
	r.first, r.last = minTime(r.first, d.Time), maxTime(r.last, d.Time)
	return true
}

func (a *Auditor) row(d *maillog.Delivery, f detect.Finding) Row {
	t := d.Time
	r := Row{
		Time: &t, QueueID: d.QueueID, Host: d.Host, Client: d.Client, To: d.To, OrigTo: d.OrigTo,
		Verdict: f.Verdict, Intended: f.Intended, Suggestion: f.Suggestion, Score: f.Score, Reasons: f.Reasons,
		Status: d.Status.String(), Relay: d.Relay, MessageID: d.MessageID,
		Source: fmt.Sprintf("%s:%d", d.File, d.Line),
	}
	if d.SenderKnown {
		from := d.From
		r.From = &from
	}
	if r.Reasons == nil {
		r.Reasons = []detect.Reason{}
	}
	return r
}

// ConfigEntry audits one destination address of a configuration file. It
// returns the row and true when the address is flagged.
func (a *Auditor) ConfigEntry(e ConfigEntry) (Row, bool) {
	addr := e.Address
	if strings.HasPrefix(addr, "@") {
		// A whole-domain rewrite (virtual "@a.example @b.example").
		addr = "postmaster" + addr
	}
	f, err := a.c.Check(addr)
	if err != nil || f.Verdict < a.opt.MinVerdict {
		return Row{}, false
	}
	if strings.HasPrefix(e.Address, "@") {
		f.Suggestion = "@" + f.Intended
	}
	key := e.Key
	r := Row{
		From: &key, To: e.Address, Verdict: f.Verdict, Intended: f.Intended, Suggestion: f.Suggestion,
		Score: f.Score, Reasons: f.Reasons, Status: StatusConfigured, Source: fmt.Sprintf("%s:%d", e.File, e.Line),
	}
	if r.Reasons == nil {
		r.Reasons = []detect.Reason{}
	}
	a.config = append(a.config, r)
	return r, true
}

// Found reports whether anything was flagged.
func (a *Auditor) Found() bool { return a.leaks > 0 || len(a.config) > 0 }

// Month is one month of the trend.
type Month struct {
	Month      string // "2006-01"
	Deliveries int64  // all delivered recipients
	Leaks      int64  // flagged delivered recipients
}

// DomainRow is one lookalike domain.
type DomainRow struct {
	Domain, Intended string
	Verdict          detect.Verdict
	Reasons          []detect.Reason
	Deliveries       int64
	Senders          int
	Recipients       []RecipientRow // most delivered first
	First, Last      time.Time
	// Statuses counts attempts per status (for domains not delivered to).
	Statuses map[maillog.Status]int64
}

// Display is the domain as people read it: its Unicode form, with the
// ASCII form in parentheses when they differ.
func (d DomainRow) Display() string {
	if !strings.Contains(d.Domain, "xn--") {
		return d.Domain
	}
	u, err := idna.ToUnicode(d.Domain)
	if err != nil || u == d.Domain {
		return d.Domain
	}
	return u + " (" + d.Domain + ")"
}

// Why is the domain's first reason, for a one-line table.
func (d DomainRow) Why() string {
	if len(d.Reasons) == 0 {
		return ""
	}
	return d.Reasons[0].Kind
}

// RecipientRow is one flagged recipient address.
type RecipientRow struct {
	Address, Suggestion string
	Deliveries          int64
	Senders             int
	First, Last         time.Time
}

// SenderRow is one sender whose mail leaked.
type SenderRow struct {
	Sender      string
	Deliveries  int64
	Domains     int
	First, Last time.Time
}

// Report is an audit's result, for the text and HTML writers.
type Report struct {
	Generated time.Time
	Version   string
	// Top is the most rows a ranked table shows.
	Top    int
	Inputs []string
	Since  time.Time
	Until  time.Time
	// First and Last bound the delivered recipients counted; FirstLeak
	// and LastLeak the leaks.
	First, Last         time.Time
	FirstLeak, LastLeak time.Time
	MinVerdict          detect.Verdict
	// Attempts per status inside the period.
	Attempts   map[maillog.Status]int64
	Delivered  int64
	Unparsable int64
	Leaks      int64
	ByVerdict  map[detect.Verdict]int64
	// Domains are the lookalike domains delivered to, worst first; Missed
	// those only attempted (bounced, deferred).
	Domains      []DomainRow
	AllDomains   int
	Missed       []DomainRow
	Senders      []SenderRow
	AllSenders   int
	Months       []Month
	Config       []Row
	Stats        *maillog.Stats
	ConfigFiles  []string
	ConfigErrors []string
	// Untracked counts leaks beyond the bounds on itemised domains and
	// recipients; Approximate says that distinct counts (senders, and
	// AllDomains and AllSenders) are lower bounds.
	Untracked   int64
	Approximate bool
}

// Report summarises the audit so far.
func (a *Auditor) Report(stats *maillog.Stats) *Report {
	r := &Report{
		Since: a.opt.Since, Until: a.opt.Until, First: a.first, Last: a.last, MinVerdict: a.opt.MinVerdict,
		FirstLeak: a.firstLeak, LastLeak: a.lastLeak,
		Attempts: map[maillog.Status]int64{}, Delivered: a.delivered, Unparsable: a.unparsable, Leaks: a.leaks,
		ByVerdict: map[detect.Verdict]int64{}, Config: a.config, Stats: stats,
		AllDomains: len(a.domains), AllSenders: len(a.senders), Top: a.opt.Top,
		Untracked: a.untracked, Approximate: a.approximate || len(a.senders) >= maxTracked || len(a.domains) >= maxTracked,
	}
	for s, n := range a.attempts {
		if n > 0 {
			r.Attempts[maillog.Status(s)] = n
		}
	}
	for v, n := range a.byVerdict {
		if n > 0 {
			r.ByVerdict[detect.Verdict(v)] = n
		}
	}
	r.Domains = domainRows(a.domains, a.opt.Top)
	r.Missed = domainRows(a.missed, a.opt.Top)
	for _, s := range a.senders {
		r.Senders = append(r.Senders, SenderRow{Sender: s.sender, Deliveries: s.count, Domains: s.domains, First: s.first, Last: s.last})
	}
	slices.SortFunc(r.Senders, func(x, y SenderRow) int {
		return cmp.Or(cmp.Compare(y.Deliveries, x.Deliveries), cmp.Compare(y.Domains, x.Domains), cmp.Compare(x.Sender, y.Sender))
	})
	if len(r.Senders) > a.opt.Top {
		r.Senders = r.Senders[:a.opt.Top]
	}
	r.Months = a.trend()
	return r
}

// trend lists every month from the first delivery to the last, empty
// months included, so that a chart's gaps are real.
func (a *Auditor) trend() []Month {
	if len(a.months) == 0 {
		return nil
	}
	var out []Month
	t := time.Date(a.first.Year(), a.first.Month(), 1, 0, 0, 0, 0, time.UTC)
	end := time.Date(a.last.Year(), a.last.Month(), 1, 0, 0, 0, 0, time.UTC)
	for !t.After(end) && len(out) < 1200 {
		k := monthKey(t)
		if m := a.months[k]; m != nil {
			out = append(out, *m)
		} else {
			out = append(out, Month{Month: k})
		}
		t = t.AddDate(0, 1, 0)
	}
	// Months seen but outside [first, last] (times in several zones).
	for k, m := range a.months {
		if !slices.ContainsFunc(out, func(x Month) bool { return x.Month == k }) {
			out = append(out, *m)
		}
	}
	slices.SortFunc(out, func(x, y Month) int { return cmp.Compare(x.Month, y.Month) })
	return out
}

func domainRows(m map[string]*domainAgg, top int) []DomainRow {
	out := make([]DomainRow, 0, len(m))
	for _, d := range m {
		row := DomainRow{Domain: d.domain, Intended: d.intended, Verdict: d.verdict, Reasons: d.reasons,
			Deliveries: d.count, Senders: d.senders, First: d.first, Last: d.last, Statuses: d.statuses}
		for _, r := range d.recipients {
			row.Recipients = append(row.Recipients, RecipientRow{Address: r.address, Suggestion: r.suggestion,
				Deliveries: r.count, Senders: r.senders, First: r.first, Last: r.last})
		}
		sortRecipients(row.Recipients)
		if len(row.Recipients) > top {
			row.Recipients = row.Recipients[:top]
		}
		out = append(out, row)
	}
	// Worst first: verdict, then deliveries, then name.
	slices.SortFunc(out, func(x, y DomainRow) int {
		return cmp.Or(cmp.Compare(y.Verdict, x.Verdict), cmp.Compare(y.Deliveries, x.Deliveries), cmp.Compare(x.Domain, y.Domain))
	})
	if len(out) > top {
		out = out[:top]
	}
	return out
}

// sortRecipients orders recipients most delivered first.
func sortRecipients(r []RecipientRow) {
	slices.SortFunc(r, func(x, y RecipientRow) int {
		return cmp.Or(cmp.Compare(y.Deliveries, x.Deliveries), cmp.Compare(x.Address, y.Address))
	})
}
