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

// Each class of the error model, beyond the issue's rows: what it catches
// and what it must leave alone.
func TestErrorModelClassesCatchSlipsAndLeaveRealDomainsAlone(t *testing.T) {
	t.Parallel()
	c := mustChecker(t, Knowledge{})
	for _, tc := range []struct {
		class, addr string
		verdict     Verdict
		want, kind  string
	}{
		{"spelling slip", "j@gmeil.com", Hold, "j@gmail.com", ""},
		{"one arbitrary slip of a giant", "j@yahho.com", Hold, "j@yahoo.com", ""},
		{"first letter, a neighbouring key", "j@fmail.com", Hold, "j@gmail.com", ""},
		{"two slips", "j@hotmaali.fr", Hold, "j@hotmail.fr", KindTwoSlips},
		{"name slip and TLD slip", "j@gmial.co", Hold, "j@gmail.com", KindTLDConfusion},
		{"exact name, other generic TLD", "j@gmail.net", Hold, "j@gmail.com", KindOtherTLD},
		{"brand name, other generic TLD", "j@outlook.org", Hold, "j@outlook.com", KindOtherTLD},
		{"doubled national suffix", "j@hotmail.co.uk.uk", Hold, "j@hotmail.co.uk", KindDoubledSuffix},
		{"suffix with a slip, then again", "j@gmail.cim.com", Hold, "j@gmail.com", KindDoubledSuffix},
		{"suffix with a slip, then again", "j@gmail.om.com", Hold, "j@gmail.com", KindDoubledSuffix},
		{"bare name", "j@hotmail", Hold, "j@hotmail.com", KindMissingDot},
		{"bare name with a slip", "j@gmial", Hold, "j@gmail.com", KindMissingDot},
		{"accent on a known provider", "j@wéb.de", Block, "j@web.de", KindDiacritic},
		{"punycode accent", "j@xn--gmil-1na.com", Block, "j@gmail.com", KindDiacritic},
		// Real destinations stay ok.
		{"arbitrary first letter", "j@wahoo.com", OK, "", ""},
		{"another provider under another TLD", "j@ymail.net", OK, "", ""},
		{"another provider under another TLD", "j@email.net", OK, "", ""},
		{"a provider's corporate domain", "j@comcast.com", OK, "", ""},
		{"a giant's name at home under a country TLD", "j@proton.com", OK, "", ""},
		{"short company domain", "j@gm.com", OK, "", ""},
		{"brand country domain", "j@outlook.sk", OK, "", ""},
		{"national provider", "j@hotmail.co.uk", OK, "", ""},
		{"local host without a dot", "root@localhost", OK, "", ""},
		{"real IDN", "j@müller.de", OK, "", ""},
		{"glued word that is no suffix", "j@telecom.com", OK, "", ""},
	} {
		t.Run(tc.class+"/"+tc.addr, func(t *testing.T) {
			t.Parallel()
			f, err := c.Check(tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			if f.Verdict != tc.verdict || f.Suggestion != tc.want {
				t.Errorf("got %s → %q (score %.3f, %v), want %s → %q", f.Verdict, f.Suggestion, f.Score, f.Reasons, tc.verdict, tc.want)
			}
			if tc.kind != "" && !hasKind(f, tc.kind) {
				t.Errorf("reasons %v lack %q", f.Reasons, tc.kind)
			}
		})
	}
}

func TestTwoSlipsFindsTheLikeliestPairAndNothingFurther(t *testing.T) {
	t.Parallel()
	c := mustChecker(t, Knowledge{})
	for _, tc := range []struct {
		typed, intended string
		two             bool
	}{
		{"yhaooo", "yahoo", true},
		{"icould", "icloud", true},
		{"gemeil", "gmail", true},
		{"gmial", "gmail", false}, // one slip
		{"gmail", "gmail", false},
		{"xyzzy", "gmail", false}, // far
	} {
		p, why := c.twoSlips(tc.typed, tc.intended)
		if (p > 0) != tc.two || (p > 0 && why == "") {
			t.Errorf("twoSlips(%s, %s) = %.3f %q, want two slips %v", tc.typed, tc.intended, p, why, tc.two)
		}
	}
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"yahoo", "yahoo", 0}, {"yhaoo", "yahoo", 1}, {"yhaooo", "yahoo", 2}, {"abc", "xyz", 3}, {"gmail", "g", 3}} {
		if got := osaDistance(tc.a, tc.b, 2); got != tc.d {
			t.Errorf("osaDistance(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.d)
		}
	}
}
