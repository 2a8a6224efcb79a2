package permute

import (
	"slices"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"github.com/stray-mail/stray/internal/knowledge"
)

// Common words squatters put before or after a name.
var (
	prefixWords = []string{"www", "mail", "my", "email", "webmail", "smtp", "login", "secure", "mx"}
	suffixWords = []string{"mail", "email", "login", "online", "secure", "web", "app", "support"}
)

// words adds plurals (gmails.com; singular for a name ending in s) and
// common words before or after the name, joined or hyphenated.
func (g *gen) words() {
	prefix, ps := g.uniPrefix(), g.uniLabel(g.ps)
	name := g.uniLabel(g.name)
	at := func(n string) string { return prefix + n + "." + ps }

	var plurals []string
	switch {
	case strings.HasSuffix(name, "s"):
		plurals = append(plurals, name[:len(name)-1], name+"es")
	case strings.HasSuffix(name, "x"), strings.HasSuffix(name, "z"), strings.HasSuffix(name, "ch"), strings.HasSuffix(name, "sh"):
		plurals = append(plurals, name+"es")
	default:
		plurals = append(plurals, name+"s")
	}
	for _, pl := range plurals {
		if _, p, ok := slip(at(pl), g.uni); ok {
			g.add(at(pl), KindPlural, p)
		} else {
			g.add(at(pl), KindPlural, twoEditPluralLikelihood)
		}
	}
	for _, w := range prefixWords {
		if !strings.HasPrefix(name, w) {
			g.add(at(w+name), KindPrefix, wordLikelihood)
			g.add(at(w+"-"+name), KindPrefix, wordLikelihood)
		}
	}
	for _, w := range suffixWords {
		if !strings.HasSuffix(name, w) {
			g.add(at(name+w), KindSuffix, wordLikelihood)
			g.add(at(name+"-"+w), KindSuffix, wordLikelihood)
		}
	}
}

// spelled are the conventional ASCII spellings of letters with diacritics.
var spelled = strings.NewReplacer("ä", "ae", "ö", "oe", "ü", "ue", "ß", "ss", "å", "aa", "æ", "ae", "ø", "oe")

// diacritics drops the accents of an IDN (muller.de for müller.de) and
// spells umlauts out (mueller.de): what people type on a keyboard that
// lacks the letters.
func (g *gen) diacritics() {
	if isASCII(g.uni) {
		return
	}
	g.add(stripMarks(g.uni), KindDiacritic, stripLikelihood)
	g.add(stripMarks(spelled.Replace(g.uni)), KindDiacritic, spellLikelihood)
}

// stripMarks removes combining marks after canonical decomposition
// (é → e), then recomposes what is left.
func stripMarks(s string) string {
	d := norm.NFD.String(s)
	var b strings.Builder
	for _, r := range d {
		if !unicode.Is(unicode.Mn, r) {
			b.WriteRune(r)
		}
	}
	return norm.NFC.String(b.String())
}

// noLatinIDN are the TLDs whose registries accept no IDNs at all, so no
// accented lookalike can exist under them.
var noLatinIDN = map[string]bool{"mil": true, "gov": true, "edu": true, "int": true, "arpa": true, "uk": true, "us": true, "ru": true}

// accents adds a diacritic to one letter of a label left of the public
// suffix (gmàil.com, gmaíl.com): the accented Latin letters a phone's
// long-press menu offers (knowledge.AccentVariants), which read as the
// plain letter at a glance and which registrars of most TLDs sell.
func (g *gen) accents() {
	if noLatinIDN[g.tld] {
		return
	}
	ul := strings.Split(g.uni, ".")
	nps := strings.Count(g.ps, ".") + 1
	for li := 0; li < len(ul)-nps; li++ {
		label := []rune(ul[li])
		for i, c := range label {
			if c >= 128 {
				continue
			}
			for _, v := range knowledge.AccentVariants(byte(c)) {
				nl := slices.Clone(label)
				nl[i] = v
				parts := slices.Clone(ul)
				parts[li] = string(nl)
				g.add(strings.Join(parts, "."), KindDiacritic, accentLikelihood)
			}
		}
	}
}
