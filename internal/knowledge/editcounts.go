package knowledge

import (
	_ "embed"
	"strconv"
	"strings"
	"sync"
)

//go:embed data/norvig-count_1edit.txt
var editCountsText string

// EditCounts are Peter Norvig's published single-edit spelling-error counts
// ("Natural Language Corpus Data", Beautiful Data, 2009; from the Birkbeck
// spelling error corpus): how often people wrote x where they meant w, for
// edit patterns of one or two letters. Insertions and deletions are written
// with the neighbouring letter: "ge|g" is an e added after g, "t|te" an e
// dropped after t.
type EditCounts struct {
	counts map[string]int
	max    int
}

// Count is how often typed was seen written for intended ("e", "a": e for a).
func (e *EditCounts) Count(typed, intended string) int {
	return e.counts[typed+"|"+intended]
}

// Max is the largest count (917, e written for i).
func (e *EditCounts) Max() int { return e.max }

// Norvig returns the parsed edit counts; they are parsed once.
var Norvig = sync.OnceValue(func() *EditCounts {
	e := &EditCounts{counts: map[string]int{}}
	for _, line := range strings.Split(editCountsText, "\n") {
		pat, n, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if !ok {
			continue
		}
		c, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		pat = strings.ToLower(pat)
		e.counts[pat] += c
		e.max = max(e.max, e.counts[pat])
	}
	return e
})
