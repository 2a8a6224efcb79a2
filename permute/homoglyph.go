package permute

import (
	"slices"
	"strings"
	"sync"
	"unicode"

	"github.com/stray-mail/stray/internal/knowledge"
)

// script is a set of the scripts homoglyphs are taken from.
type script uint8

const (
	latin    script = 1 << iota // non-ASCII Latin letters: ɡ, ı, ɑ
	greek                       // α, ο, ρ
	cyrillic                    // а, е, о, р, с, і (Ukrainian)
	armenian                    // ո, ս, օ, ց
)

var scriptNames = map[string]script{"Latin": latin, "Greek": greek, "Cyrillic": cyrillic, "Armenian": armenian}

// idnRule is what a TLD's registry accepts in a label, as far as homoglyphs
// go.
type idnRule struct {
	// scripts are the scripts whose letters a label may use besides ASCII.
	scripts script
	// mixed is true where labels mixing scripts exist: registered before
	// the registry forbade it, or under a registry that never did.
	mixed bool
}

// registryRules are the IDN policies stray knows. Registries publish theirs
// in IANA's Repository of IDN Practices; these are the ones that matter
// most for mail, summarised:
//   - mil, gov, edu, int, arpa, uk, us: no IDNs at all.
//   - com, net (Verisign): many scripts; since the language-table rules a new
//     label may not mix scripts, but mixed labels registered before remain
//     (the 2005 pаypal.com demonstration was one).
//   - de (DENIC): Latin letters with diacritics only, none of them a
//     confusable of an ASCII letter.
//   - ru: no IDNs (Cyrillic names live under рф); рф: Cyrillic only.
//
// Any other TLD gets defaultRule: Latin, Greek and Cyrillic, one script per
// label, as ICANN's IDN Implementation Guidelines require.
var registryRules = map[string]idnRule{
	"mil": {}, "gov": {}, "edu": {}, "int": {}, "arpa": {}, "uk": {}, "us": {}, "ru": {}, "de": {},
	"com":      {scripts: latin | greek | cyrillic | armenian, mixed: true},
	"net":      {scripts: latin | greek | cyrillic | armenian, mixed: true},
	"xn--p1ai": {scripts: cyrillic},
}

var defaultRule = idnRule{scripts: latin | greek | cyrillic}

func ruleFor(tld string) idnRule {
	if r, ok := registryRules[tld]; ok {
		return r
	}
	return defaultRule
}

// glyph is a non-ASCII letter that looks like some ASCII string.
type glyph struct {
	r rune
	s script
}

// glyphTables are built once from the UTS #39 confusables.
type glyphTables struct {
	// bySkeleton maps a DomainSkeleton to the letters that have it, in rune
	// order (so the common Cyrillic а comes before rarer ones).
	bySkeleton map[string][]glyph
	// ascii maps a DomainSkeleton to the ASCII strings of one or two
	// characters that have it: {"rn", "m"}, {"0", "o"}, {"1", "l"}.
	ascii map[string][]string
}

// glyphRanges are the blocks searched for homoglyphs of ASCII letters.
var glyphRanges = [][2]rune{
	{0x00C0, 0x02AF}, // Latin-1 letters, Latin Extended-A and -B, IPA
	{0x0370, 0x03FF}, // Greek
	{0x0400, 0x052F}, // Cyrillic and its supplement
	{0x0531, 0x058F}, // Armenian
	{0x1D00, 0x1DBF}, // phonetic extensions
	{0x1E00, 0x1EFF}, // Latin Extended Additional
}

var glyphs = sync.OnceValue(func() *glyphTables {
	t := &glyphTables{bySkeleton: map[string][]glyph{}, ascii: map[string][]string{}}
	for _, rg := range glyphRanges {
		for r := rg[0]; r <= rg[1]; r++ {
			if !unicode.IsLetter(r) {
				continue
			}
			s := string(r)
			sk := knowledge.DomainSkeleton(s)
			if !isASCII(sk) || sk == "" {
				continue
			}
			if a, ok := toASCII(s + ".x"); !ok || a == sk+".x" {
				continue // not a valid label, or IDNA maps it to ASCII
			}
			sc := knowledge.Scripts(s)
			if len(sc) != 1 || scriptNames[sc[0]] == 0 {
				continue
			}
			t.bySkeleton[sk] = append(t.bySkeleton[sk], glyph{r, scriptNames[sc[0]]})
		}
	}
	const ldh = "abcdefghijklmnopqrstuvwxyz0123456789"
	var strs []string
	for i := range len(ldh) {
		strs = append(strs, ldh[i:i+1])
		for j := range len(ldh) {
			strs = append(strs, ldh[i:i+1]+ldh[j:j+1])
		}
	}
	for _, s := range strs {
		sk := knowledge.DomainSkeleton(s)
		t.ascii[sk] = append(t.ascii[sk], s)
	}
	for sk, l := range t.ascii {
		if len(l) < 2 {
			delete(t.ascii, sk)
		}
	}
	return t
})

// homoglyphs makes the labels left of the public suffix look the same with
// other characters: ASCII lookalikes (grnail.com), one letter from another
// script or non-ASCII Latin (ɡmail.com, gmаil.com), every letter that can be
// from one other script (gmаіl.com with Cyrillic а and Ukrainian і), and the
// whole label in another script when every letter has a twin there. Only
// scripts the TLD's registry accepts are used, and mixed-script labels only
// where they can exist.
func (g *gen) homoglyphs() {
	rule := ruleFor(g.tld)
	t := glyphs()
	ul := strings.Split(g.uni, ".")
	nps := strings.Count(g.ps, ".") + 1
	for li := 0; li < len(ul)-nps; li++ {
		label := []rune(ul[li])
		rebuild := func(nl []rune) string {
			parts := slices.Clone(ul)
			parts[li] = string(nl)
			return strings.Join(parts, ".")
		}
		// ASCII lookalikes, one or two characters at a time.
		for i := range label {
			for w := 1; w <= 2 && i+w <= len(label); w++ {
				win := string(label[i : i+w])
				if !isASCII(win) {
					continue
				}
				for _, alt := range t.ascii[knowledge.DomainSkeleton(win)] {
					if alt == win {
						continue
					}
					nl := slices.Concat(label[:i], []rune(alt), label[i+w:])
					c := rebuild(nl)
					if _, p, ok := slip(c, g.uni); ok {
						g.add(c, KindHomoglyph, p)
					} else {
						g.add(c, KindHomoglyph, asciiLookalikeLikelihood)
					}
				}
			}
		}
		if rule.scripts == 0 {
			continue
		}
		// One letter replaced.
		for i, c := range label {
			if c >= 128 {
				continue
			}
			for _, gl := range t.bySkeleton[knowledge.DomainSkeleton(string(c))] {
				if rule.scripts&gl.s == 0 {
					continue
				}
				nl := slices.Clone(label)
				nl[i] = gl.r
				kind := KindHomoglyph
				if knowledge.MixedScript(string(nl)) {
					if !rule.mixed {
						continue
					}
					kind = KindMixedScript
				}
				g.add(rebuild(nl), kind, homoglyphLikelihood)
			}
		}
		// Every letter that can be, from one non-Latin script.
		for _, s := range []script{cyrillic, greek, armenian} {
			if rule.scripts&s == 0 {
				continue
			}
			nl := slices.Clone(label)
			n, rest := 0, false
			for i, c := range label {
				if c >= 128 || !unicode.IsLetter(c) {
					continue
				}
				if r, ok := firstOf(t.bySkeleton[knowledge.DomainSkeleton(string(c))], s); ok {
					nl[i] = r
					n++
				} else {
					rest = true
				}
			}
			if n < 2 {
				continue // one letter: done above
			}
			kind := KindHomoglyph
			if rest || knowledge.MixedScript(string(nl)) {
				if !rule.mixed {
					continue
				}
				kind = KindMixedScript
			}
			g.add(rebuild(nl), kind, homoglyphLikelihood)
		}
	}
}

// firstOf returns the first glyph of script s.
func firstOf(gs []glyph, s script) (rune, bool) {
	for _, g := range gs {
		if g.s == s {
			return g.r, true
		}
	}
	return 0, false
}
