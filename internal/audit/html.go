package audit

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/stray-mail/stray/detect"
)

//go:embed report.html.tmpl
var reportTemplate string

var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"thousands": thousands,
	"day":       day,
	"minute":    minute,
	"percent":   percent,
	"verdictClass": func(v detect.Verdict) string {
		return "v-" + v.String()
	},
	"deref": func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	},
	"i64":       func(n int) int64 { return int64(n) },
	"breakable": breakable,
	"keepDates": keepDates,
}).Parse(reportTemplate))

// breakable lets a browser wrap a domain or address only after a dot, an
// '@' or a space, never inside a label ("pscc.army.mi/l" reads as another
// domain, and "xn--/gmil-63d" would break at a hyphen): each label is a
// span that does not wrap, with a break opportunity after it.
func breakable(s string) template.HTML {
	var b, seg strings.Builder
	flush := func() {
		if seg.Len() > 0 {
			b.WriteString(`<span class="l">` + template.HTMLEscapeString(seg.String()) + `</span>`)
			seg.Reset()
		}
	}
	for _, r := range s {
		switch r {
		case '.', '@':
			seg.WriteRune(r)
			flush()
			b.WriteString("<wbr>")
		case ' ':
			flush()
			b.WriteString(" ")
		default:
			seg.WriteRune(r)
		}
	}
	flush()
	return template.HTML(b.String())
}

// datePattern is a date, with an optional time, as day and minute print it.
var datePattern = regexp.MustCompile(`\d{4}-\d{2}-\d{2}(?: \d{2}:\d{2})?`)

// keepDates escapes text and keeps each date in it on one line.
func keepDates(s string) template.HTML {
	var b strings.Builder
	last := 0
	for _, m := range datePattern.FindAllStringIndex(s, -1) {
		b.WriteString(template.HTMLEscapeString(s[last:m[0]]))
		b.WriteString(`<span class="d">` + template.HTMLEscapeString(s[m[0]:m[1]]) + `</span>`)
		last = m[1]
	}
	b.WriteString(template.HTMLEscapeString(s[last:]))
	return template.HTML(b.String())
}

// chartLabel is the most runes a domain chart's label shows: its column is
// 400 units wide at 12px (about 7 units a rune).
const chartLabel = 56

// middle shortens s to at most n runes by cutting its middle, so that both
// ends, which tell domains apart (the first label and the suffix), stay.
func middle(s string, n int) string {
	r := []rune(s)
	if len(r) <= n || n < 3 {
		return s
	}
	head := (n - 1) / 2
	tail := n - 1 - head
	return string(r[:head]) + "…" + string(r[len(r)-tail:])
}

// Bar is one bar of a chart, in SVG user units.
type Bar struct {
	X, Y, W, H float64
	Label      string // under or beside the bar
	Value      string // the number shown
	Title      string // the tooltip
	Class      string
	LabelX     float64
	LabelY     float64
	ValueX     float64
	ValueY     float64
	ShowLabel  bool
}

// Tick is one horizontal grid line of a chart.
type Tick struct {
	Y     float64
	Label string
}

// Chart is an SVG chart drawn on the server: no script, no fetch.
type Chart struct {
	Width, Height float64
	Bars          []Bar
	Ticks         []Tick
	AxisX0        float64
	AxisX1        float64
	AxisY         float64
	Title         string
}

func r1(x float64) float64 { return math.Round(x*10) / 10 }

// round keeps the SVG short and its numbers stable.
func (c *Chart) round() {
	if c == nil {
		return
	}
	c.AxisX0, c.AxisX1, c.AxisY = r1(c.AxisX0), r1(c.AxisX1), r1(c.AxisY)
	for i := range c.Ticks {
		c.Ticks[i].Y = r1(c.Ticks[i].Y)
	}
	for i := range c.Bars {
		b := &c.Bars[i]
		b.X, b.Y, b.W, b.H = r1(b.X), r1(b.Y), r1(b.W), r1(b.H)
		b.LabelX, b.LabelY, b.ValueX, b.ValueY = r1(b.LabelX), r1(b.LabelY), r1(b.ValueX), r1(b.ValueY)
	}
}

// niceStep rounds n up to 1, 2 or 5 times a power of ten.
func niceStep(n float64) int64 {
	if n <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(n)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= n {
			return int64(m * p)
		}
	}
	return int64(10 * p)
}

// monthChart draws leaked deliveries per month as vertical bars.
func monthChart(months []Month) *Chart {
	if len(months) == 0 {
		return nil
	}
	const w, h, left, right, top, bottom = 920.0, 280.0, 56.0, 12.0, 16.0, 52.0
	var most int64
	for _, m := range months {
		most = max(most, m.Leaks)
	}
	// Grid lines at round numbers, at most five above zero.
	step := niceStep(float64(max(most, 1)) / 5)
	ceil := step * ((max(most, 1) + step - 1) / step)
	c := &Chart{Width: w, Height: h, AxisX0: left, AxisX1: w - right, AxisY: h - bottom,
		Title: "Deliveries to lookalike domains per month"}
	plotH := h - top - bottom
	for v := int64(0); v <= ceil; v += step {
		c.Ticks = append(c.Ticks, Tick{Y: h - bottom - plotH*float64(v)/float64(ceil), Label: thousands(v)})
	}
	slot := math.Min((w-left-right)/float64(len(months)), 90)
	every := int(math.Ceil(float64(len(months)) / 16))
	for i, m := range months {
		bh := plotH * float64(m.Leaks) / float64(ceil)
		x := left + slot*float64(i) + slot*0.15
		b := Bar{X: x, Y: h - bottom - bh, W: slot * 0.7, H: bh, Label: m.Month, Value: thousands(m.Leaks),
			Title: fmt.Sprintf("%s: %s of %s delivered recipients (%s)", m.Month, thousands(m.Leaks), thousands(m.Deliveries), percent(m.Leaks, m.Deliveries)),
			Class: "bar", LabelX: x + slot*0.35, LabelY: h - bottom + 18, ValueX: x + slot*0.35, ValueY: h - bottom - bh - 4,
			ShowLabel: i%every == 0}
		c.Bars = append(c.Bars, b)
	}
	return c
}

// domainChart draws leaked deliveries per lookalike domain as horizontal
// bars, coloured by verdict.
func domainChart(rows []DomainRow) *Chart {
	if len(rows) == 0 {
		return nil
	}
	if len(rows) > 15 {
		rows = rows[:15]
	}
	const w, label, right, rowH, top = 920.0, 400.0, 70.0, 26.0, 8.0
	var most int64
	for _, d := range rows {
		most = max(most, d.Deliveries)
	}
	c := &Chart{Width: w, Height: top*2 + rowH*float64(len(rows)), Title: "Deliveries per lookalike domain"}
	plotW := w - label - right
	for i, d := range rows {
		bw := plotW * float64(d.Deliveries) / float64(max(most, 1))
		y := top + rowH*float64(i)
		// Too long for the column: shorten the domain it imitates first,
		// then the lookalike (whose slip is what the reader looks for),
		// each in the middle; the full names are in the bar's <title>.
		look, intended := d.Display(), d.Intended
		if over := utf8.RuneCountInString(look) + 3 + utf8.RuneCountInString(intended) - chartLabel; over > 0 {
			intended = middle(intended, max(utf8.RuneCountInString(intended)-over, 16))
			look = middle(look, chartLabel-3-utf8.RuneCountInString(intended))
		}
		name := look + " → " + intended
		c.Bars = append(c.Bars, Bar{X: label, Y: y + 4, W: math.Max(bw, 1), H: rowH - 8, Label: name, Value: thousands(d.Deliveries),
			Title: fmt.Sprintf("%s looks like %s (%s): %s deliveries from %d senders, %s to %s", d.Display(), d.Intended, d.Verdict,
				thousands(d.Deliveries), d.Senders, day(d.First), day(d.Last)),
			Class: "v-" + d.Verdict.String(), LabelX: label - 8, LabelY: y + rowH/2 + 4, ValueX: label + bw + 6, ValueY: y + rowH/2 + 4, ShowLabel: true})
	}
	return c
}

type htmlData struct {
	*Report
	MonthChart  *Chart
	DomainChart *Chart
	Recipients  []RecipientRow
	Title       string
	Zone        string
}

// WriteHTML writes the report as one self-contained HTML page (inline CSS
// and SVG; a Content-Security-Policy forbids every fetch), fit to mail
// around and to print.
func WriteHTML(w io.Writer, r *Report) error {
	d := htmlData{Report: r, MonthChart: monthChart(r.Months), DomainChart: domainChart(r.Domains),
		Title: "Mail to lookalike domains"}
	for _, dom := range r.Domains {
		d.Recipients = append(d.Recipients, dom.Recipients...)
	}
	sortRecipients(d.Recipients)
	if len(d.Recipients) > r.Top {
		d.Recipients = d.Recipients[:r.Top]
	}
	if !r.First.IsZero() {
		d.Zone = r.First.Format("MST -07:00")
	} else {
		d.Zone = time.Local.String()
	}
	for _, c := range []*Chart{d.MonthChart, d.DomainChart} {
		c.round()
	}
	var b strings.Builder
	if err := htmlTemplate.Execute(&b, d); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}
