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
	top := niceMax(max)
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
	for i := 0; i <= 4; i++ {
		v := top * int64(i) / 4
		c.Ticks = append(c.Ticks, tick{Y: chartH - padB - plotH*float64(i)/4, Label: fmt.Sprint(v)})
	}
	return c
}

// niceMax rounds up to 1, 2 or 5 times a power of ten, and at least 4 so
// that four ticks are whole numbers.
func niceMax(n int64) int64 {
	if n <= 4 {
		return 4
	}
	p := int64(1)
	for p*10 <= n {
		p *= 10
	}
	for _, m := range []int64{1, 2, 5, 10} {
		if m*p >= n {
			if m*p%4 != 0 && m*p < 8 {
				return 8
			}
			return m * p
		}
	}
	return 10 * p
}

// barList is a horizontal bar chart of ranked items.
type barList struct {
	Title  string
	Width  float64
	Height float64
	Rows   []barRow
	Empty  bool
}

type barRow struct {
	Label, Note string
	N           int64
	Y, W        float64
	Class       string
	Link        string
}

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
	l := barList{Title: title, Width: 460, Empty: len(items) == 0}
	var max int64 = 1
	for _, it := range items {
		max = max64(max, it.N)
	}
	for i, it := range items {
		l.Rows = append(l.Rows, barRow{Label: it.Label, Note: it.Note, N: it.N, Y: float64(i) * 26, W: 200 * float64(it.N) / float64(max), Class: it.Class, Link: it.Link})
	}
	l.Height = float64(len(items))*26 + 4
	return l
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}
