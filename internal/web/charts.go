package web

import (
	"fmt"
	"slices"
	"time"

	"github.com/stray-mail/stray/internal/store"
)

// Charts are SVG drawn on the server from numbers: no script, no inline
// style (the CSP forbids both); colours come from classes in
// static/dashboard.css. Every bar has a <title> for its exact number and
// every chart a table next to it for screen readers and copying.

// stackChart is a bar per day, stacked by series.
type stackChart struct {
	Title         string
	Width, Height float64
	Bars          []stackBar
	Legend        []legendItem
	Ticks         []tick
	Empty         bool
}

type stackBar struct {
	X, W     float64
	Label    string // shown under some bars
	Segments []segment
}

type segment struct {
	Y, H  float64
	Class string
	Title string
}

type legendItem struct{ Label, Class string }

type tick struct {
	Y     float64
	Label string
}

const (
	chartW, chartH = 720.0, 220.0
	padL, padB     = 44.0, 24.0
	padT           = 8.0
)

// dailyChart stacks counts per day by key (a verdict or an action), for
// the days from first to last, in the order of keys.
func dailyChart(title string, counts []store.DecisionCount, first, last time.Time, keys []string, keyOf func(store.DecisionCount) string, include func(store.DecisionCount) bool) stackChart {
	c := stackChart{Title: title, Width: chartW, Height: chartH}
	days := int(last.Sub(first).Hours()/24) + 1
	per := make([]map[string]int64, days)
	for i := range per {
		per[i] = map[string]int64{}
	}
	var max int64
	for _, dc := range counts {
		if include != nil && !include(dc) {
			continue
		}
		i := int(dc.Day.Sub(first).Hours() / 24)
		if i < 0 || i >= days {
			continue
		}
		per[i][keyOf(dc)] += dc.N
	}
	for _, m := range per {
		var t int64
		for _, n := range m {
			t += n
		}
		if t > max {
			max = t
		}
	}
	c.Empty = max == 0
	step, top := niceScale(max)
	plotH := chartH - padB - padT
	slot := (chartW - padL) / float64(days)
	for i, m := range per {
		b := stackBar{X: padL + float64(i)*slot + slot*0.15, W: slot * 0.7}
		day := first.AddDate(0, 0, i)
		if days <= 10 || i%(days/7+1) == 0 || i == days-1 {
			b.Label = day.Format("Jan 2")
		}
		y := chartH - padB
		for _, k := range keys {
			n := m[k]
			if n == 0 {
				continue
			}
			h := plotH * float64(n) / float64(top)
			y -= h
			b.Segments = append(b.Segments, segment{Y: y, H: h, Class: "c-" + k, Title: fmt.Sprintf("%s %s: %d", day.Format("2006-01-02"), k, n)})
		}
		c.Bars = append(c.Bars, b)
	}
	for _, k := range keys {
		c.Legend = append(c.Legend, legendItem{Label: k, Class: "c-" + k})
	}
	for v := int64(0); v <= top; v += step {
		c.Ticks = append(c.Ticks, tick{Y: chartH - padB - plotH*float64(v)/float64(top), Label: fmt.Sprint(v)})
	}
	return c
}

// maxTicks bounds the intervals of a chart's axis.
const maxTicks = 5

// niceScale chooses the axis for counts up to n: a step of 1, 2 or 5 times
// a power of ten, and the top, a whole number of steps (at most maxTicks)
// at or above n. Every tick is then a round whole number (0, 2, 4, 6, 8, 10;
// never 0, 2, 5, 7, 10).
func niceScale(n int64) (step, top int64) {
	if n < 1 {
		n = 1
	}
	for p := int64(1); ; p *= 10 {
		for _, m := range []int64{1, 2, 5} {
			step = m * p
			if k := (n + step - 1) / step; k <= maxTicks {
				return step, k * step
			}
		}
	}
}

// barList is a ranking: one table whose rows carry a bar each (the name,
// what it imitates, the bar and the count once, not a chart and a table
// repeating each other).
type barList struct {
	Title string
	Rows  []barRow
	Empty bool
}

type barRow struct {
	Label, Note string
	N           int64
	W           float64 // the bar's length, of barWidth
	Class       string
	Link        string
}

// barWidth is the viewBox width of a ranking's bars.
const barWidth = 200.0

type rankItem struct {
	Label, Note, Class, Link string
	N                        int64
}

// ranked draws the top n items, largest first.
func ranked(title string, items []rankItem, n int) barList {
	slices.SortStableFunc(items, func(a, b rankItem) int {
		if a.N != b.N {
			if a.N > b.N {
				return -1
			}
			return 1
		}
		if a.Label < b.Label {
			return -1
		}
		if a.Label > b.Label {
			return 1
		}
		return 0
	})
	if len(items) > n {
		items = items[:n]
	}
	l := barList{Title: title, Empty: len(items) == 0}
	var max int64 = 1
	for _, it := range items {
		max = max64(max, it.N)
	}
	for _, it := range items {
		l.Rows = append(l.Rows, barRow{Label: it.Label, Note: it.Note, N: it.N, W: barWidth * float64(it.N) / float64(max), Class: it.Class, Link: it.Link})
	}
	return l
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}
