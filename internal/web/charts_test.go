package web

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/store"
)

func TestChartTicksAreRoundWholeSteps(t *testing.T) {
	t.Parallel()
	tests := []struct {
		max  int64
		want []string
	}{
		{0, []string{"0", "1"}},
		{1, []string{"0", "1"}},
		{3, []string{"0", "1", "2", "3"}},
		{7, []string{"0", "2", "4", "6", "8"}},
		{10, []string{"0", "2", "4", "6", "8", "10"}},
		{11, []string{"0", "5", "10", "15"}},
		{99, []string{"0", "20", "40", "60", "80", "100"}},
		{1234, []string{"0", "500", "1000", "1500"}},
	}
	first := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		counts := []store.DecisionCount{{Day: first, Verdict: "ok", N: tt.max}}
		c := dailyChart("t", counts, first, first.AddDate(0, 0, 6), []string{"ok"}, func(dc store.DecisionCount) string { return dc.Verdict }, nil)
		var got []string
		for _, tk := range c.Ticks {
			got = append(got, tk.Label)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("max %d: ticks %v, want %v", tt.max, got, tt.want)
		}
		// The tallest bar never rises above the top tick.
		top := c.Ticks[len(c.Ticks)-1].Y
		for _, b := range c.Bars {
			for _, s := range b.Segments {
				if s.Y < top-1e-9 {
					t.Errorf("max %d: a bar reaches y=%v above the top tick at %v", tt.max, s.Y, top)
				}
			}
		}
	}
}

func TestRankingIsOneTableWithABarPerRow(t *testing.T) {
	t.Parallel()
	var items []rankItem
	for i := range 12 {
		items = append(items, rankItem{Label: fmt.Sprintf("d%02d.ml", i), N: int64(i + 1)})
	}
	l := ranked("Top", items, 10)
	if len(l.Rows) != 10 || l.Rows[0].Label != "d11.ml" || l.Rows[0].W != barWidth || l.Rows[9].W >= l.Rows[0].W {
		t.Fatalf("rows %+v", l.Rows)
	}
}
