package detect

import "testing"

// A known correspondent (a --known file, or learned from traffic) must never
// vouch for a lookalike of a protected domain: one "Send as typed" would
// otherwise open army.ml for everyone. Known entries still vouch for
// everything else.
func TestKnownLookalikeOfProtectedDomainIsStillFlagged(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		k    Knowledge
		want []wantFinding
	}{
		{
			name: "known army.ml once under protected mil",
			k:    Knowledge{Protected: []string{"mil"}, Known: map[string]int{"army.ml": 1}},
			want: []wantFinding{
				{"j@army.ml", Block, "j@army.mil", KindProtectedLookalike},
				{"j@hq.army.ml", Block, "j@hq.army.mil", KindProtectedLookalike},
			},
		},
		{
			name: "known army.ml often, and army.mil known too",
			k:    Knowledge{Protected: []string{"mil"}, Known: map[string]int{"army.ml": 5000, "army.mil": 40}},
			want: []wantFinding{
				{"j@army.ml", Block, "j@army.mil", KindProtectedLookalike},
				{"j@army.mil", OK, "", ""},
			},
		},
		{
			name: "known slip of a protected domain",
			k:    Knowledge{Protected: []string{"example.com"}, Known: map[string]int{"exmaple.com": 300}},
			want: []wantFinding{
				{"j@exmaple.com", Block, "j@example.com", KindProtectedLookalike},
			},
		},
		{
			name: "known partners that imitate nothing protected stay trusted",
			k: Knowledge{Protected: []string{"mil"}, Known: map[string]int{
				"army.mil": 10, "partner.com": 3, "gmial.com": 2, "muzycznaradom.ml": 1}},
			want: []wantFinding{
				{"j@partner.com", OK, "", ""},
				{"j@gmial.com", OK, "", ""},
				{"j@muzycznaradom.ml", OK, "", ""},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkAll(t, mustChecker(t, tt.k), tt.want)
		})
	}
}

func TestAllowEntriesCoveringAProtectedLookalikeAreRecognised(t *testing.T) {
	t.Parallel()
	c := mustChecker(t, Knowledge{Protected: []string{"mil", "example.com"}, Known: map[string]int{"army.ml": 3, "army.mil": 9}})
	tests := []struct {
		domain   string
		suffix   bool
		want     bool
		intended string
	}{
		{"army.ml", false, true, "army.mil"},
		{"hq.army.ml", false, true, "hq.army.mil"},
		{"muzycznaradom.ml", false, false, ""},
		{"muzycznaradom.ml", true, false, ""},
		{"exmaple.com", false, true, "example.com"},
		{"ml", true, true, "mil"},
		{"army.ml", true, true, "army.mil"},
		{"com", true, true, "example.com"},
		{"army.mil", false, false, ""},
		{"partner.com", false, false, ""},
		{"gmial.com", false, false, ""},
		{"partner.com", true, false, ""},
	}
	for _, tt := range tests {
		got, ok := c.CoversProtectedLookalike(tt.domain, tt.suffix)
		if ok != tt.want || (tt.intended != "" && got != tt.intended) {
			t.Errorf("CoversProtectedLookalike(%q, suffix %v) = %q, %v; want %q, %v", tt.domain, tt.suffix, got, ok, tt.intended, tt.want)
		}
	}
}
