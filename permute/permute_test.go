package permute

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/publicsuffix"

	"github.com/stray-mail/stray/detect"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenDomains are the permutation sets kept as golden files: the two .mil
// domains of the leak, the biggest provider, a two-level public suffix and
// an IDN.
var goldenDomains = []string{"army.mil", "mail.mil", "gmail.com", "example.co.uk", "müller.de"}

func TestGeneratedSetsMatchGoldenFiles(t *testing.T) {
	t.Parallel()
	for _, d := range goldenDomains {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			cands, err := Generate(d, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			fmt.Fprintf(&b, "# permute.Generate(%q): %d candidates; domain, display form, kind, likelihood\n", d, len(cands))
			for _, c := range cands {
				fmt.Fprintf(&b, "%s\t%s\t%s\t%.3f\n", c.Domain, c.Unicode, c.Kind, c.Likelihood)
			}
			a, err := lookup.ToASCII(d)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "golden", a+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./permute -update to create it)", err)
			}
			if got := b.String(); got != string(want) {
				t.Errorf("%s differs from %s (go test ./permute -update rewrites it); first difference:\n%s", d, path, firstDiff(got, string(want)))
			}
		})
	}
}

func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n  got  %q\n  want %q", i+1, gl, wl)
		}
	}
	return ""
}

func byDomain(cands []Candidate) map[string]Candidate {
	m := make(map[string]Candidate, len(cands))
	for _, c := range cands {
		m[c.Domain] = c
	}
	return m
}

// The lookalikes the leak and the issue name must be generated, with the
// right kind, and scored at least as likely as the typo model says.
func TestGeneratesTheLookalikesThatLeakMail(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		domain, want, kind string
		minP               float64
	}{
		{"army.mil", "army.ml", KindTLDSwap, 0.9},
		{"army.mil", "army.il", KindTLDSwap, 0.9},
		{"army.mil", "army.mit", KindTLDSwap, 0.9},
		{"army.mil", "armym.il", KindShiftedDot, 0.85},
		{"army.mil", "armymil.com", KindMissingDot, 0.3},
		{"army.mil", "army-mil.com", KindHyphenation, 0.1},
		{"army.mil", "amry.mil", KindTransposition, 0.85},
		{"army.mil", "arrny.mil", KindHomoglyph, 0.5},
		{"mail.mil", "mail.ml", KindTLDSwap, 0.9},
		{"mail.mil", "mial.mil", KindTransposition, 0.85},
		{"mail.mil", "mailmil.com", KindMissingDot, 0.3},
		{"gmail.com", "gmail.cm", KindTLDSwap, 0.9},
		{"gmail.com", "gmail.om", KindTLDSwap, 0.9},
		{"gmail.com", "gmail.co", KindTLDSwap, 0.9},
		{"gmail.com", "gmailc.om", KindShiftedDot, 0.85},
		{"gmail.com", "gmial.com", KindTransposition, 0.85},
		{"gmail.com", "gmaill.com", KindRepetition, 0.75},
		{"gmail.com", "gmal.com", KindOmission, 0.6},
		{"gmail.com", "gmeil.com", KindVowelSwap, 0.35},
		{"gmail.com", "gmails.com", KindPlural, 0.2},
		{"gmail.com", "grnail.com", KindHomoglyph, 0.5},
		{"gmail.com", "xn--gmil-63d.com", KindMixedScript, 0.98},  // gmаil, Cyrillic а
		{"gmail.com", "xn--gml-7cd4q.com", KindMixedScript, 0.98}, // gmаіl, Cyrillic а, Ukrainian і
		{"gmail.com", "xn--mail-z7b.com", KindHomoglyph, 0.98},    // ɡmail, Latin script ɡ
		{"gmail.com", "g.mail.com", KindExtraDot, 0.5},
		{"gmail.com", "gmail-login.com", KindSuffix, 0.1},
		{"gmail.com", "mygmail.com", KindPrefix, 0.1},
		{"example.co.uk", "example.ac.uk", KindSecondLevel, 0.3},
		{"example.co.uk", "example.org.uk", KindSecondLevel, 0.3},
		{"example.co.uk", "example.uk", KindSecondLevel, 0.4},
		{"example.co.uk", "exmaple.co.uk", KindTransposition, 0.85},
		{"us.company.com", "uscompany.com", KindMissingDot, 0.75},
		{"us.company.com", "us-company.com", KindHyphenation, 0.3},
		{"müller.de", "muller.de", KindDiacritic, 0.75},
		{"müller.de", "mueller.de", KindDiacritic, 0.6},
		{"müller.de", "xn--mler-0ra.de", KindOmission, 0.6}, // müler.de
	} {
		t.Run(tc.domain+"→"+tc.want, func(t *testing.T) {
			t.Parallel()
			cands, err := Generate(tc.domain, Options{})
			if err != nil {
				t.Fatal(err)
			}
			c, ok := byDomain(cands)[tc.want]
			if !ok {
				t.Fatalf("%s not generated for %s", tc.want, tc.domain)
			}
			if c.Kind != tc.kind || c.Likelihood < tc.minP {
				t.Errorf("%s: kind %s likelihood %.3f, want %s ≥ %.2f", tc.want, c.Kind, c.Likelihood, tc.kind, tc.minP)
			}
		})
	}
}

// Homoglyphs respect the registry: none under an ASCII-only TLD, no mixed
// scripts where labels must be in one script, whole-script labels where
// every letter has a twin.
func TestHomoglyphsFollowTheRegistrysScriptRules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		domain  string
		want    []string // must be generated
		notWant []string // must not be
	}{
		// .mil has no IDNs: only the ASCII lookalike.
		{"army.mil", []string{"arrny.mil"}, []string{"xn--rmy-5cd.mil" /* аrmy */}},
		// .org (default rule): one script per label, so no gmаil.org, but
		// ɡmail.org (all Latin).
		{"gmail.org", []string{"xn--mail-z7b.org"}, []string{"xn--gmil-63d.org"}},
		// Whole-script Cyrillic: сосо.org for coco.org (default rule).
		{"coco.org", []string{"xn--n1aahb.org"}, nil},
		// .de (DENIC): no confusable letters.
		{"gmail.de", nil, []string{"xn--mail-z7b.de", "xn--gmil-63d.de"}},
	} {
		cands, err := Generate(tc.domain, Options{})
		if err != nil {
			t.Fatal(err)
		}
		got := byDomain(cands)
		for _, w := range tc.want {
			if _, ok := got[w]; !ok {
				t.Errorf("%s: %s not generated", tc.domain, w)
			}
		}
		for _, w := range tc.notWant {
			if c, ok := got[w]; ok {
				t.Errorf("%s: %s (%s) generated, but its registry refuses it", tc.domain, w, c.Unicode)
			}
		}
		for _, c := range cands {
			if (c.Kind == KindHomoglyph || c.Kind == KindMixedScript) && strings.HasSuffix(c.Domain, ".mil") && c.Domain != c.Unicode {
				t.Errorf("%s: IDN %s under .mil", tc.domain, c.Unicode)
			}
		}
	}
}

// Every candidate is a valid, registrable host name under a real TLD,
// outside the original's registrable domain, once, in order.
func TestCandidatesAreRegistrableUniqueAndOrdered(t *testing.T) {
	t.Parallel()
	for _, d := range append(goldenDomains, "mail.army.mil", "us.company.com", "xn--80ak6aa92e.com", "яндекс.рф", "a.co") {
		cands, err := Generate(d, Options{})
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		if len(cands) == 0 {
			t.Errorf("%s: no candidates", d)
		}
		checkCandidates(t, d, cands)
	}
}

func checkCandidates(t *testing.T, d string, cands []Candidate) {
	t.Helper()
	orig, _ := toASCII(d)
	if a, err := lookup.ToASCII(d); err == nil {
		orig = a
	}
	reg, _ := publicsuffix.EffectiveTLDPlusOne(orig)
	seen := map[string]bool{}
	for i, c := range cands {
		if seen[c.Domain] {
			t.Fatalf("%s: %s twice", d, c.Domain)
		}
		seen[c.Domain] = true
		if c.Domain == orig || c.Domain == reg || strings.HasSuffix(c.Domain, "."+reg) {
			t.Fatalf("%s: %s is the original or inside it", d, c.Domain)
		}
		if !validHost(c.Domain) {
			t.Fatalf("%s: %q is not a valid host name", d, c.Domain)
		}
		ps, _ := publicsuffix.PublicSuffix(c.Domain)
		if !tldExists(c.Domain[strings.LastIndexByte(c.Domain, '.')+1:]) || len(ps) >= len(c.Domain) {
			t.Fatalf("%s: %s is not registrable (public suffix %s)", d, c.Domain, ps)
		}
		if c.Likelihood <= 0 || c.Likelihood > 1 || !slices.Contains(kinds, c.Kind) {
			t.Fatalf("%s: %+v: bad likelihood or kind", d, c)
		}
		if u, err := lookup.ToUnicode(c.Domain); err != nil || u != c.Unicode {
			t.Fatalf("%s: %s displays as %q, want %q (%v)", d, c.Domain, c.Unicode, u, err)
		}
		if i > 0 {
			p := cands[i-1]
			if p.Likelihood < c.Likelihood || (p.Likelihood == c.Likelihood && p.Domain >= c.Domain) {
				t.Fatalf("%s: %s before %s: not ordered", d, p.Domain, c.Domain)
			}
		}
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	t.Parallel()
	a, _ := Generate("gmail.com", Options{})
	b, _ := Generate("GMAIL.COM.", Options{})
	if !slices.Equal(a, b) {
		t.Errorf("two runs differ: %d vs %d candidates", len(a), len(b))
	}
}

func TestOptionsFilterKindsAndLikelihood(t *testing.T) {
	t.Parallel()
	cands, err := Generate("army.mil", Options{Kinds: []string{KindTLDSwap, KindShiftedDot}, MinLikelihood: 0.8})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, c := range cands {
		if c.Kind != KindTLDSwap && c.Kind != KindShiftedDot || c.Likelihood < 0.8 {
			t.Errorf("%+v passed the filter", c)
		}
		got[c.Domain] = true
	}
	for _, w := range []string{"army.ml", "army.il", "armym.il"} {
		if !got[w] {
			t.Errorf("%s filtered out", w)
		}
	}
	if _, err := Generate("army.mil", Options{Kinds: []string{"typo"}}); err == nil {
		t.Error("unknown kind accepted")
	}
}

func TestGenerateRefusesWhatCannotHaveLookalikes(t *testing.T) {
	t.Parallel()
	for _, d := range []string{"", "mil", "co.uk", "example.notatld", "exa mple.com", "a..b.com", strings.Repeat("a", 70) + ".com"} {
		if c, err := Generate(d, Options{}); err == nil {
			t.Errorf("Generate(%q): %d candidates, want an error", d, len(c))
		}
	}
}

// A TLD two slips away is kept only when both slips are likely; one slip
// away, always.
func TestTwoSlipTLDsNeedLikelySlips(t *testing.T) {
	t.Parallel()
	n := tldNeighbours("mil")
	for _, w := range []string{"ml", "il", "mit", "mo", "nl"} {
		if _, ok := n[w]; !ok {
			t.Errorf("mil: %s missing from %v", w, n)
		}
	}
	for tld, p := range n {
		if _, _, oneSlip := detect.Slip(tld, "mil"); !oneSlip && p < minTwoSlipTLD {
			t.Errorf("mil → %s: two slips kept at %.3f", tld, p)
		}
	}
	for _, w := range []string{"xyz", "com", "mil"} {
		if _, ok := n[w]; ok {
			t.Errorf("mil → %s kept: three slips or itself", w)
		}
	}
}

func TestSlipJudgesNonASCIIEditsLikeASCIIOnes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ typed, intended, kind string }{
		{"müler.de", "müller.de", KindOmission},
		{"mülelr.de", "müller.de", KindTransposition},
		{"mülller.de", "müller.de", KindRepetition},
		{"mëller.de", "müller.de", KindSubstitution}, // never a bit flip or a key
	} {
		kind, p, ok := slip(tc.typed, tc.intended)
		if !ok || kind != tc.kind || p <= 0 {
			t.Errorf("slip(%q, %q) = %s %.2f %v, want %s", tc.typed, tc.intended, kind, p, ok, tc.kind)
		}
	}
	if _, _, ok := slip("mxxxer.de", "müller.de"); ok {
		t.Error("three edits judged as one")
	}
}

func TestAccentedLookalikesAreGeneratedWhereRegistriesSellThem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		domain string
		want   []string // Unicode forms that must be there
		none   bool     // no accented candidate at all
	}{
		{"gmail.com", []string{"gmàil.com", "gmaíl.com", "gmáil.com", "gmaïl.com", "gmaił.com"}, false},
		{"example.co.uk", nil, true}, // .uk sells no IDNs
		{"army.mil", nil, true},
		{"web.de", []string{"wéb.de", "wèb.de"}, false},
	} {
		cands, err := Generate(tc.domain, Options{Kinds: []string{KindDiacritic}})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]Candidate{}
		accented := 0
		for _, c := range cands {
			got[c.Unicode] = c
			if !isASCII(c.Unicode) {
				accented++
			}
		}
		for _, w := range tc.want {
			c, ok := got[w]
			if !ok {
				t.Errorf("%s: %s not generated", tc.domain, w)
				continue
			}
			if c.Likelihood < 0.9 || !strings.HasPrefix(c.Domain, "xn--") {
				t.Errorf("%s: %+v: want an xn-- domain with likelihood ≥ 0.9", tc.domain, c)
			}
		}
		if tc.none && accented > 0 {
			t.Errorf("%s: %d accented candidates under a TLD without IDNs", tc.domain, accented)
		}
	}
}
