package detect

import (
	"strings"
	"testing"
)

func mustChecker(t testing.TB, k Knowledge) *Checker {
	t.Helper()
	c, err := New(k)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type wantFinding struct {
	addr       string
	verdict    Verdict
	suggestion string
	kind       string // a reason kind that must be present ("" none required)
}

func checkAll(t *testing.T, c *Checker, cases []wantFinding) {
	t.Helper()
	for _, w := range cases {
		f, err := c.Check(w.addr)
		if err != nil {
			t.Errorf("%s: unexpected error %v", w.addr, err)
			continue
		}
		if f.Verdict != w.verdict || f.Suggestion != w.suggestion {
			t.Errorf("%s: got %s → %q (score %.2f, %v), want %s → %q", w.addr, f.Verdict, f.Suggestion, f.Score, f.Reasons, w.verdict, w.suggestion)
		}
		if w.kind != "" && !hasKind(f, w.kind) {
			t.Errorf("%s: reasons %v lack %q", w.addr, f.Reasons, w.kind)
		}
		if f.Verdict == OK && (f.Intended != "" || len(f.Reasons) != 0) {
			t.Errorf("%s: ok finding carries intended %q or reasons %v", w.addr, f.Intended, f.Reasons)
		}
	}
}

func hasKind(f Finding, kind string) bool {
	for _, r := range f.Reasons {
		if r.Kind == kind {
			return true
		}
	}
	return false
}

func TestMilToMaliAndIsraelIsBlockedWithSuggestion(t *testing.T) {
	t.Parallel()
	c := mustChecker(t, Knowledge{Protected: []string{"mil"}})
	checkAll(t, c, []wantFinding{
		{"j.smith@army.ml", Block, "j.smith@army.mil", KindTLDConfusion},
		{"j.smith@army.il", Block, "j.smith@army.mil", KindProtectedLookalike},
		{"J.Smith@ARMY.ML.", Block, "J.Smith@army.mil", KindTLDConfusion},
		{"j@hq.navy.ml", Block, "j@hq.navy.mil", KindTLDConfusion},
		{"j@army.mil", OK, "", ""},
		{"j@hq.army.mil", OK, "", ""},
	})
}

func TestKnownHostsDecideWhichMaliDomainsAreLeaks(t *testing.T) {
	t.Parallel()
	c := mustChecker(t, Knowledge{Protected: []string{"mil"}, Known: map[string]int{"jble.af.mil": 40, "hq.tricare.mil": 3}})
	checkAll(t, c, []wantFinding{
		{"a@jble.af.ml", Block, "a@jble.af.mil", KindTLDConfusion},
		{"a@jble.af.il", Block, "a@jble.af.mil", KindTLDConfusion},
		{"a@other.af.ml", Block, "a@other.af.mil", KindProtectedLookalike}, // af.mil is ours
		{"a@tricare.ml", Block, "a@tricare.mil", KindProtectedLookalike},   // parent of a known host
		{"a@muzycznaradom.ml", OK, "", ""},                                 // a real .ml school
		{"a@huji.ac.il", OK, "", ""},                                       // a real Israeli university
		{"a@jble.af.mil", OK, "", ""},
	})
}

func TestProtectedDomainLookalikesOutsideItAreBlocked(t *testing.T) {
	t.Parallel()
	c := mustChecker(t, Knowledge{Protected: []string{"example.com", "us.company.com"}})
	checkAll(t, c, []wantFinding{
		{"a@example.cm", Block, "a@example.com", KindTLDConfusion},
		{"a@example.co", Block, "a@example.com", KindTLDConfusion},
		{"a@example.om", Block, "a@example.com", KindTLDConfusion},
		{"a@exmaple.com", Block, "a@example.com", KindTransposition},
		{"a@mail.example.co", Block, "a@mail.example.com", KindTLDConfusion},
		{"a@uscompany.com", Block, "a@us.company.com", KindMissingDot},
		{"a@sales.example.com", OK, "", ""},
	})
}

func TestProviderSlipsAreHeldAndLegitimateNeighboursPass(t *testing.T) {
	t.Parallel()
	c := mustChecker(t, Knowledge{})
	checkAll(t, c, []wantFinding{
		{"a@gmial.com", Hold, "a@gmail.com", KindTransposition},
		{"a@gmailc.om", Hold, "a@gmail.com", KindShiftedDot},
		{"a@gnail.com", Hold, "a@gmail.com", KindKeyboardSlip},
		{"a@gmaill.com", Hold, "a@gmail.com", KindRepetition},
		{"a@hotmal.com", Hold, "a@hotmail.com", KindOmission},
		{"a@yahooo.co.uk", Hold, "a@yahoo.co.uk", KindRepetition},
		{"a@gmail.cm", Block, "a@gmail.com", KindTLDConfusion},
		{"a@mail.gmial.com", Hold, "a@mail.gmail.com", KindTransposition},
		// Legitimate near-neighbours of one another.
		{"a@ymail.com", OK, "", ""},
		{"a@gmx.com", OK, "", ""},
		{"a@gmx.net", OK, "", ""},
		{"a@mail.com", OK, "", ""},
		{"a@email.com", OK, "", ""},
		{"a@me.com", OK, "", ""},
		{"a@mac.com", OK, "", ""},
		{"a@web.de", OK, "", ""},
		{"a@web.com", OK, "", ""},
		{"a@yahoo.co.uk", OK, "", ""},
		{"a@live.com", OK, "", ""},
		// A brand's country domain that is not listed still passes...
		{"a@yahoo.com.pe", OK, "", ""},
		// ...unless its TLD is a classic slip.
		{"a@outlook.co", Block, "a@outlook.com", KindTLDConfusion},
		// Unrelated domains pass.
		{"a@durham.ac.uk", OK, "", ""},
		{"a@example.org", OK, "", ""},
	})
}

func TestNonexistentTLDIsHeldAndCorrected(t *testing.T) {
	t.Parallel()
	c := mustChecker(t, Knowledge{})
	checkAll(t, c, []wantFinding{
		{"a@gmail.con", Hold, "a@gmail.com", KindNonexistentTLD},
		{"a@outlook.con", Hold, "a@outlook.com", KindNonexistentTLD},
		{"a@hotmial.con", Hold, "a@hotmail.com", KindNonexistentTLD},
		{"a@someshop.cmo", Hold, "a@someshop.com", KindNonexistentTLD},
	})
}

func TestHomoglyphsAndPunycodeAreBlocked(t *testing.T) {
	t.Parallel()
	c := mustChecker(t, Knowledge{})
	checkAll(t, c, []wantFinding{
		{"a@gmаil.com", Block, "a@gmail.com", KindHomoglyph},       // Cyrillic а
		{"a@xn--gmil-63d.com", Block, "a@gmail.com", KindPunycode}, // the same, as punycode
		{"a@gοogle.com", Block, "a@google.com", KindHomoglyph},     // Greek ο
		{"a@outloоk.com", Block, "a@outlook.com", KindHomoglyph},
		{"a@grnail.com", Block, "a@gmail.com", KindHomoglyph}, // ASCII: rn for m
		{"a@g00gle.com", Block, "a@google.com", KindHomoglyph},
		{"a@яндекс.рф", OK, "", ""},
		{"a@españa.com", OK, "", ""},
	})
	f, _ := c.Check("a@pаypal-secure.com") // mixed script, no target
	if f.Verdict != Warn || !hasKind(f, KindMixedScript) {
		t.Errorf("mixed-script label: got %s %v, want warn mixed-script", f.Verdict, f.Reasons)
	}
}

func TestKnownCorrespondentSlipsAreHeldAndKnownDomainsNeverFlagged(t *testing.T) {
	t.Parallel()
	known := map[string]int{"westlandhigh.school.nz": 120, "uwaterloo.ca": 9, "gmial.com": 4}
	c := mustChecker(t, Knowledge{Known: known})
	checkAll(t, c, []wantFinding{
		{"a@wstlandhigh.school.nz", Hold, "a@westlandhigh.school.nz", KindCorrespondent},
		{"a@uwaterlo.ca", Hold, "a@uwaterloo.ca", KindOmission},
		{"a@wastlandhigh.school.nz", Warn, "a@westlandhigh.school.nz", KindSubstitution}, // a weaker slip
		{"a@uwaterloo.ca", OK, "", ""},
		{"a@www.uwaterloo.ca", OK, "", ""},
		// The organisation really writes to gmial.com: never flagged.
		{"a@gmial.com", OK, "", ""},
	})
}

func TestUnparsableAddressesReturnErrors(t *testing.T) {
	t.Parallel()
	c := mustChecker(t, Knowledge{})
	for _, in := range []string{"", "a@b@c", "no-at-sign", "a@", "@x.com", "a@b..com", "\xff@x.com", strings.Repeat("a", 10000) + "@x.com"} {
		if _, err := c.Check(in); err == nil {
			t.Errorf("%q: want an error", in)
		}
	}
	for _, in := range []string{"<a@gmail.com>", `"a b"@gmail.com`, "A@GMAIL.COM.", "a@[192.0.2.1]", "a@localhost"} {
		f, err := c.Check(in)
		if err != nil || f.Verdict != OK {
			t.Errorf("%q: got %v %v, want ok", in, f.Verdict, err)
		}
	}
}

func TestReadKnownParsesCountsCommentsAndRejectsGarbage(t *testing.T) {
	t.Parallel()
	m, err := ReadKnown(strings.NewReader("# comment\nExample.COM 5\n\nfoo.org\nexample.com. 2 # trailing\n  bücher.de 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"example.com": 7, "foo.org": 1, "xn--bcher-kva.de": 3}
	if len(m) != len(want) {
		t.Fatalf("got %v, want %v", m, want)
	}
	for d, n := range want {
		if m[d] != n {
			t.Errorf("%s: got %d, want %d", d, m[d], n)
		}
	}
	for _, bad := range []string{"a.com x\n", "a.com 1 2\n", "a..com\n", "a_b.com 1\n", "a.com -3\n"} {
		if _, err := ReadKnown(strings.NewReader("ok.com\n" + bad)); err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%q: got %v, want an error naming line 2", bad, err)
		}
	}
}

func TestIndexLookupIsIndependentOfKnowledgeSize(t *testing.T) {
	t.Parallel()
	// Every one-edit neighbour of an indexed domain is found.
	x := newDeleteIndex(1)
	x.add("gmail.com", 0)
	for _, q := range []string{"gmail.com", "gmal.com", "gmaill.com", "gmial.com", "gnail.com", "gmailc.om", "gmail.co"} {
		if ids := x.lookup(q, nil); len(ids) == 0 {
			t.Errorf("%s: not found", q)
		}
	}
	if ids := x.lookup("yahoo.com", nil); len(ids) != 0 {
		t.Errorf("yahoo.com: unexpected candidates %v", ids)
	}
}

func TestVerdictTextRoundTrip(t *testing.T) {
	t.Parallel()
	for _, v := range []Verdict{OK, Warn, Hold, Block} {
		b, _ := v.MarshalText()
		var got Verdict
		if err := got.UnmarshalText(b); err != nil || got != v {
			t.Errorf("%s: round trip gave %s, %v", v, got, err)
		}
	}
	if _, err := ParseVerdict("maybe"); err == nil {
		t.Error("ParseVerdict(maybe): want an error")
	}
}

func TestFindingJSONHasNullsWhenOK(t *testing.T) {
	t.Parallel()
	c := mustChecker(t, Knowledge{})
	f, _ := c.Check("a@gmail.com")
	b, _ := f.MarshalJSON()
	if got := string(b); got != `{"address":"a@gmail.com","verdict":"ok","intended":null,"suggestion":null,"score":0,"reasons":[]}` {
		t.Errorf("got %s", got)
	}
}

func TestSlipRanksKeyboardNeighboursAboveArbitraryLetters(t *testing.T) {
	t.Parallel()
	kind, near, ok := Slip("gnail.com", "gmail.com")
	if !ok || kind != KindKeyboardSlip {
		t.Fatalf("gnail: %s %v", kind, ok)
	}
	_, far, _ := Slip("gqail.com", "gmail.com")
	if near <= far {
		t.Errorf("neighbour key %.2f not above arbitrary %.2f", near, far)
	}
	if _, _, ok := Slip("gmail.com", "yahoo.com"); ok {
		t.Error("two unrelated domains explained as one slip")
	}
}

func TestRegisteredLookalikesFromScanAreBlocked(t *testing.T) {
	t.Parallel()
	deny, err := ReadDeny(strings.NewReader("# stray scan\narmymil.com army.mil # omission, registered\nweird.example\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := mustChecker(t, Knowledge{Protected: []string{"army.mil"}, Deny: deny})
	checkAll(t, c, []wantFinding{
		{"a@armymil.com", Block, "a@army.mil", KindRegistered},
		{"a@mail.armymil.com", Block, "a@mail.army.mil", KindRegistered},
		{"a@weird.example", Block, "", KindRegistered},
		{"a@army.mil", OK, "", ""},
	})
	if _, err := ReadDeny(strings.NewReader("a.com b.com c.com\n")); err == nil {
		t.Error("three fields accepted")
	}
}
