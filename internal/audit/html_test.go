package audit

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestChartLabelsKeepBothEndsOfLongNames(t *testing.T) {
	t.Parallel()
	long := "minationalguard.tionalguard.dodlive.ml"
	c := domainChart([]DomainRow{{Domain: long, Intended: "minationalguard.tionalguard.dodlive.mil", Deliveries: 3}})
	if got := c.Bars[0].Label; !strings.Contains(got, "…") {
		t.Fatalf("a %d-rune label was not shortened: %q", utf8.RuneCountInString(got), got)
	}
	b := c.Bars[0]
	if n := utf8.RuneCountInString(b.Label); n > chartLabel {
		t.Fatalf("label %q has %d runes, more than %d", b.Label, n, chartLabel)
	}
	// Both ends of each name survive: no label can read as another domain.
	name, intended, _ := strings.Cut(b.Label, " → ")
	if !strings.HasPrefix(name, "mina") || !strings.HasSuffix(name, "live.ml") || !strings.Contains(name, "…") {
		t.Errorf("lookalike shown as %q", name)
	}
	if !strings.HasPrefix(intended, "mina") || !strings.HasSuffix(intended, ".mil") {
		t.Errorf("intended shown as %q", intended)
	}
	if !strings.Contains(b.Title, long) {
		t.Errorf("the full name is not in the title: %q", b.Title)
	}
	for _, d := range []DomainRow{{Domain: "army.ml", Intended: "army.mil"}, {Domain: "westlandhihg.school.nz", Intended: "westlandhigh.school.nz"}} {
		want := d.Domain + " → " + d.Intended
		if got := domainChart([]DomainRow{d}).Bars[0].Label; got != want {
			t.Errorf("label %q, want it whole: %q", got, want)
		}
	}
}

func TestTablesBreakNamesOnlyBetweenLabelsAndKeepDatesWhole(t *testing.T) {
	t.Parallel()
	if got := string(breakable("j<x>@pscc.army.ml (xn--gmil-63d.com)")); got != `<span class="l">j&lt;x&gt;@</span><wbr><span class="l">pscc.</span><wbr><span class="l">army.</span><wbr><span class="l">ml</span> <span class="l">(xn--gmil-63d.</span><wbr><span class="l">com)</span>` {
		t.Errorf("breakable: %q", got)
	}
	got := string(keepDates("since 2024-01-05 10:00 & until 2024-02-01."))
	want := `since <span class="d">2024-01-05 10:00</span> &amp; until <span class="d">2024-02-01</span>.`
	if got != want {
		t.Errorf("keepDates: %q, want %q", got, want)
	}
	if strings.Contains(reportTemplate, "break-all") {
		t.Error("the report still lets the browser break names anywhere")
	}
}
