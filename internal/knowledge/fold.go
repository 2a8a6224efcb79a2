package knowledge

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Accented Latin letters are not confusables in the UTS #39 sense (é does
// not look exactly like e), so the skeleton leaves them alone; yet a phone's
// long-press menu puts à next to a, and an IDN registrant can buy gmàil.com.
// FoldDiacritics and SpellDiacritics are the two ways people and machines
// turn such a name back into ASCII.

// FoldDiacritics removes combining marks after canonical decomposition
// (gmàil → gmail, exámple → example) and maps the Latin letters that carry
// no separable mark to their base letter (ø → o, ł → l, đ → d, ı → i, æ → ae,
// œ → oe, ß → ss, þ → th). The result is lower case NFC.
func FoldDiacritics(s string) string {
	d := norm.NFD.String(strings.ToLower(s))
	var b strings.Builder
	b.Grow(len(d))
	for _, r := range d {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		if rep, ok := latinBase[r]; ok {
			b.WriteString(rep)
			continue
		}
		b.WriteRune(r)
	}
	return norm.NFC.String(b.String())
}

// SpellDiacritics writes letters with diacritics the conventional way of
// languages whose keyboards have them (German, Scandinavian): ä → ae,
// ö → oe, ü → ue, å → aa, then folds the rest as FoldDiacritics does.
func SpellDiacritics(s string) string {
	return FoldDiacritics(spelled.Replace(norm.NFC.String(strings.ToLower(s))))
}

var spelled = strings.NewReplacer("ä", "ae", "ö", "oe", "ü", "ue", "å", "aa", "ø", "oe", "æ", "ae")

// latinBase maps Latin letters that NFD does not decompose to their usual
// ASCII spelling.
var latinBase = map[rune]string{
	'ø': "o", 'ł': "l", 'đ': "d", 'ð': "d", 'ı': "i", 'ħ': "h", 'ŧ': "t",
	'æ': "ae", 'œ': "oe", 'ß': "ss", 'þ': "th", 'ŀ': "l", 'ĸ': "k",
}

// AccentVariants lists, for an ASCII letter, the accented Latin letters a
// phone keyboard's long-press menu offers for it (iOS and Android defaults
// for Western European languages): the lookalikes a registrant can buy and a
// sender can hit by accident.
func AccentVariants(c byte) []rune {
	return accents[c]
}

var accents = map[byte][]rune{
	'a': []rune("àáâäãåāą"),
	'c': []rune("çćč"),
	'e': []rune("èéêëēęė"),
	'i': []rune("ìíîïīį"),
	'l': []rune("ł"),
	'n': []rune("ñń"),
	'o': []rune("òóôöõøō"),
	's': []rune("śš"),
	'u': []rune("ùúûüū"),
	'y': []rune("ÿý"),
	'z': []rune("žźż"),
}
