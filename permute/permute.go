package permute

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"

	"github.com/stray-mail/stray/detect"
)

// Fuzzer kinds: why a candidate looks like the original. The kinds shared
// with the detection engine have the same names as its reason kinds.
const (
	KindOmission      = detect.KindOmission      // a character left out: gmal.com
	KindRepetition    = detect.KindRepetition    // a character typed twice: gmaill.com
	KindKeyboardSlip  = detect.KindKeyboardSlip  // a neighbouring key, instead of or next to the right one: gmaik.com
	KindInsertion     = detect.KindInsertion     // an unrelated extra character
	KindSubstitution  = detect.KindSubstitution  // an unrelated character replaced
	KindTransposition = detect.KindTransposition // two neighbours swapped: gmial.com
	KindBitFlip       = detect.KindBitFlip       // one bit of one character flipped: gmaml.com
	KindMissingDot    = detect.KindMissingDot    // uscompany.com, armymil.com
	KindExtraDot      = detect.KindExtraDot      // g.mail.com
	KindShiftedDot    = detect.KindShiftedDot    // gmailc.om, armym.il
	KindHomoglyph     = detect.KindHomoglyph     // looks the same, other characters: ɡmail.com, grnail.com
	KindMixedScript   = detect.KindMixedScript   // a homoglyph label that mixes scripts: gmаil.com (Cyrillic а)
	KindVowelSwap     = "vowel-swap"             // one vowel for another: gmeil.com
	KindHyphenation   = "hyphenation"            // a hyphen added or for a dot: gm-ail.com, army-mil.com
	KindTLDSwap       = "tld-swap"               // another real TLD one or two slips away: army.ml, gmail.cm
	KindSecondLevel   = "second-level"           // another second level under the same TLD: example.ac.uk
	KindPlural        = "plural"                 // an s added or dropped: gmails.com
	KindPrefix        = "prefix"                 // a common word before the name: mygmail.com, www-gmail.com
	KindSuffix        = "suffix"                 // a common word after the name: gmail-login.com
	KindDiacritic     = "diacritic"              // accents dropped, spelled out or added: muller.de, mueller.de, gmàil.com
)

// kinds lists every kind; the order breaks likelihood ties between fuzzers
// that produce the same domain (the more specific explanation first).
var kinds = []string{
	KindHomoglyph, KindMixedScript, KindTLDSwap, KindSecondLevel, KindShiftedDot, KindMissingDot, KindExtraDot,
	KindTransposition, KindRepetition, KindOmission, KindKeyboardSlip, KindVowelSwap, KindHyphenation,
	KindBitFlip, KindDiacritic, KindPlural, KindPrefix, KindSuffix, KindInsertion, KindSubstitution,
}

// Kinds returns every fuzzer kind.
func Kinds() []string { return slices.Clone(kinds) }

func kindRank(k string) int {
	if i := slices.Index(kinds, k); i >= 0 {
		return i
	}
	return len(kinds)
}

// Candidate is one lookalike of a domain.
type Candidate struct {
	// Domain is the lookalike in ASCII (A-label) form, as DNS knows it.
	Domain string `json:"domain"`
	// Unicode is its display form; equal to Domain when it is ASCII.
	Unicode string `json:"unicode"`
	// Kind says what slip or disguise makes it (Kind* constants).
	Kind string `json:"kind"`
	// Likelihood is how likely a person is to type it for, or take it for,
	// the original: 0..1, on the scale of detect's slip model.
	Likelihood float64 `json:"likelihood"`
}

// Options narrows what Generate returns. The zero value returns everything.
type Options struct {
	// Kinds keeps only candidates of these kinds (nil: all).
	Kinds []string
	// MinLikelihood drops candidates less likely than this.
	MinLikelihood float64
}

// Errors of Generate.
var (
	ErrNotRegistrable = errors.New("not a registrable domain")
	ErrUnknownTLD     = errors.New("TLD does not exist")
)

// lookup is the IDNA profile of a domain lookup, as in package detect.
var lookup = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.Transitional(false))

// Generate returns the lookalikes of domain (ASCII or Unicode, any case),
// most likely first, then by domain. The domain itself and anything inside
// its own registrable domain are never returned.
func Generate(domain string, opt Options) ([]Candidate, error) {
	for _, k := range opt.Kinds {
		if !slices.Contains(kinds, k) {
			return nil, fmt.Errorf("permute: unknown kind %q", k)
		}
	}
	d, err := detect.NormalizeDomain(domain)
	if err != nil {
		return nil, fmt.Errorf("permute: %w", err)
	}
	tld := d[strings.LastIndexByte(d, '.')+1:]
	if !strings.Contains(d, ".") || !tldExists(tld) {
		return nil, fmt.Errorf("permute: %s: %w", d, ErrUnknownTLD)
	}
	reg, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return nil, fmt.Errorf("permute: %s: %w", d, ErrNotRegistrable)
	}
	uni, err := lookup.ToUnicode(d)
	if err != nil {
		uni = d
	}
	g := &gen{
		orig:  d,
		uni:   uni,
		reg:   reg,
		tld:   tld,
		opt:   opt,
		found: map[string]Candidate{},
	}
	i := strings.IndexByte(reg, '.')
	g.name, g.ps = reg[:i], reg[i+1:]
	g.generate()
	out := make([]Candidate, 0, len(g.found))
	for _, c := range g.found {
		if c.Likelihood >= opt.MinLikelihood {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b Candidate) int {
		if a.Likelihood != b.Likelihood {
			if a.Likelihood > b.Likelihood {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Domain, b.Domain)
	})
	return out, nil
}

// gen is one run of the generator.
type gen struct {
	orig  string // the domain, A-label form
	uni   string // its Unicode form
	reg   string // its registrable domain (eTLD+1), A-label form
	ps    string // its public suffix, A-label form
	name  string // the label left of the public suffix, A-label form
	tld   string
	opt   Options
	found map[string]Candidate // by A-label domain
}

func (g *gen) generate() {
	g.edits()
	g.tldSwaps()
	g.dots()
	g.secondLevel()
	g.words()
	g.diacritics()
	g.accents()
	g.homoglyphs()
}

// add records a candidate given in Unicode (or ASCII) form, if it is a
// valid, registrable lookalike outside the original's registrable domain.
// For one candidate found by several fuzzers, the most likely explanation
// wins; equal likelihoods go to the earlier kind in kinds.
func (g *gen) add(u, kind string, p float64) {
	if p <= 0 {
		return
	}
	if len(g.opt.Kinds) > 0 && !slices.Contains(g.opt.Kinds, kind) {
		return
	}
	a, ok := toASCII(u)
	if !ok || a == g.orig {
		return
	}
	if !registrableOutside(a, g.reg) {
		return
	}
	p = math.Round(min(p, 1)*1000) / 1000
	if old, dup := g.found[a]; dup {
		if old.Likelihood > p || (old.Likelihood == p && kindRank(old.Kind) <= kindRank(kind)) {
			return
		}
	}
	disp := a
	if strings.Contains(a, "xn--") {
		disp, _ = lookup.ToUnicode(a) // validHost checked the round trip
	}
	g.found[a] = Candidate{Domain: a, Unicode: disp, Kind: kind, Likelihood: p}
}

// toASCII converts a Unicode candidate to its A-label form. It refuses
// strings that IDNA would change other than by encoding (upper case,
// compatibility forms), since those are the original in disguise, and
// anything that is not a valid host name.
func toASCII(u string) (string, bool) {
	a := u
	if !isASCII(u) {
		var err error
		if a, err = lookup.ToASCII(u); err != nil {
			return "", false
		}
		if back, err := lookup.ToUnicode(a); err != nil || back != u {
			return "", false
		}
	}
	return a, validHost(a)
}

// validHost reports whether a is a lower-case LDH host name of at least two
// labels, with A-labels only where they decode.
func validHost(a string) bool {
	if len(a) > 253 || !strings.Contains(a, ".") {
		return false
	}
	for l := range strings.SplitSeq(a, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
		if len(l) >= 4 && l[2:4] == "--" && !strings.HasPrefix(l, "xn--") {
			return false
		}
	}
	if strings.Contains(a, "xn--") {
		// The whole name must survive the round trip: labels that decode
		// alone can still break the bidi rule together.
		u, err := lookup.ToUnicode(a)
		if err != nil || u == a {
			return false
		}
		if back, err := lookup.ToASCII(u); err != nil || back != a {
			return false
		}
	}
	return true
}

// registrableOutside reports whether a can be registered (its TLD exists and
// it lies below its public suffix) and is not inside reg, the original's
// registrable domain.
func registrableOutside(a, reg string) bool {
	if !tldExists(a[strings.LastIndexByte(a, '.')+1:]) {
		return false
	}
	ps, _ := publicsuffix.PublicSuffix(a)
	if len(a) <= len(ps) {
		return false
	}
	return !(a == reg || strings.HasSuffix(a, "."+reg))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
