package detect

import "testing"

// TestIssue11TyposPeopleReallyMakeAreCaughtWithTheRightSuggestion holds
// exactly the rows of issue 11: each was ok or wrong before the error model.
func TestIssue11TyposPeopleReallyMakeAreCaughtWithTheRightSuggestion(t *testing.T) {
	t.Parallel()
	plain := mustChecker(t, Knowledge{})
	example := mustChecker(t, Knowledge{Protected: []string{"example.com"}})
	for _, tc := range []struct {
		class   string
		c       *Checker
		addr    string
		verdict Verdict
		want    string // suggestion
	}{
		{"unlikely single slip", plain, "j@gemeil.com", Hold, "j@gmail.com"},
		{"unlikely single slip", plain, "j@yahpp.com", Hold, "j@yahoo.com"},
		{"two slips", plain, "j@yhaooo.com", Hold, "j@yahoo.com"},
		{"two slips", plain, "j@icould.com", Hold, "j@icloud.com"},
		{"other generic TLD", plain, "j@hotmial.net", Hold, "j@hotmail.com"},
		{"other generic TLD", plain, "j@gmal.org", Hold, "j@gmail.com"},
		{"other generic TLD", plain, "j@yahooo.net", Hold, "j@yahoo.com"},
		{"other generic TLD", plain, "j@outloook.org", Hold, "j@outlook.com"},
		{"doubled suffix", plain, "j@gmial.com.com", Hold, "j@gmail.com"},
		{"doubled suffix", plain, "j@gmailcom.com", Hold, "j@gmail.com"},
		{"accent", plain, "j@gmàil.com", Block, "j@gmail.com"},
		{"accent", example, "j@exámple.com", Block, "j@example.com"},
		{"nonexistent TLD", plain, "j@outlook.c", Hold, "j@outlook.com"},
		{"two-part suffix without its dot", plain, "j@gmail.couk", Hold, "j@gmail.com"},
		{"no dot", plain, "j@gmailcom", Hold, "j@gmail.com"},
		{"real short domain", plain, "j@gm.com", OK, ""},
	} {
		t.Run(tc.class+"/"+tc.addr, func(t *testing.T) {
			t.Parallel()
			f, err := tc.c.Check(tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			if f.Verdict != tc.verdict || f.Suggestion != tc.want {
				t.Errorf("got %s → %q (score %.3f, %v), want %s → %q", f.Verdict, f.Suggestion, f.Score, f.Reasons, tc.verdict, tc.want)
			}
		})
	}
}
