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
