package knowledge

import (
	"math/bits"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Script detection for mixed-script checks on domain labels (UTS #39 §5).
// Scripts are the Unicode Script property values of package unicode (Common
// and Inherited are ignored); Script_Extensions are not used.

type scriptInfo struct {
	name  string
	table *unicode.RangeTable
}

// Script ids: the scripts below come first, in this order (the order in which
// a rune is tested against them), then every other script of unicode.Scripts
// in name order, then unknownScript.
const (
	scriptLatin = iota
	scriptCyrillic
	scriptGreek
	scriptArmenian
	scriptHebrew
	scriptArabic
	scriptHan
	scriptHiragana
	scriptKatakana
	scriptHangul
	scriptBopomofo
	scriptThai
	scriptDevanagari
	scriptGeorgian
	scriptCherokee
	numKnownScripts
)

var knownScripts = [numKnownScripts]scriptInfo{
	scriptLatin:      {"Latin", unicode.Latin},
	scriptCyrillic:   {"Cyrillic", unicode.Cyrillic},
	scriptGreek:      {"Greek", unicode.Greek},
	scriptArmenian:   {"Armenian", unicode.Armenian},
	scriptHebrew:     {"Hebrew", unicode.Hebrew},
	scriptArabic:     {"Arabic", unicode.Arabic},
	scriptHan:        {"Han", unicode.Han},
	scriptHiragana:   {"Hiragana", unicode.Hiragana},
	scriptKatakana:   {"Katakana", unicode.Katakana},
	scriptHangul:     {"Hangul", unicode.Hangul},
	scriptBopomofo:   {"Bopomofo", unicode.Bopomofo},
	scriptThai:       {"Thai", unicode.Thai},
	scriptDevanagari: {"Devanagari", unicode.Devanagari},
	scriptGeorgian:   {"Georgian", unicode.Georgian},
	scriptCherokee:   {"Cherokee", unicode.Cherokee},
}

// unknownScriptName is reported for runes that are in no script of package
// unicode (unassigned, or assigned after its Unicode version), like the
// Unicode script value Unknown (Zzzz).
const unknownScriptName = "Unknown"

// otherScripts lists the scripts of unicode.Scripts that are neither in
// knownScripts nor Common/Inherited, in name order. It is built on first use
// only, since ordinary labels never need it.
var otherScripts = sync.OnceValue(func() []scriptInfo {
	known := make(map[string]bool, numKnownScripts)
	for _, s := range knownScripts {
		known[s.name] = true
	}
	var others []scriptInfo
	for name, t := range unicode.Scripts {
		if !known[name] && name != "Common" && name != "Inherited" {
			others = append(others, scriptInfo{name, t})
		}
	}
	slices.SortFunc(others, func(a, b scriptInfo) int { return strings.Compare(a.name, b.name) })
	return others
})

// scriptSet is a set of script ids.
type scriptSet [4]uint64

const maxScriptID = len(scriptSet{})*64 - 1

func (s *scriptSet) add(id int) { s[id/64] |= 1 << (id % 64) }

func (s *scriptSet) len() int {
	n := 0
	for _, w := range s {
		n += bits.OnesCount64(w)
	}
	return n
}

// subsetOf reports whether every script of s is among the known scripts in
// mask.
func (s *scriptSet) subsetOf(mask uint64) bool {
	return s[0]&^mask == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0
}

// scriptOf returns the script id of r; ok is false for Common and Inherited
// runes (digits, hyphen, punctuation, combining marks), which are ignored.
func scriptOf(r rune) (id int, ok bool) {
	if r < utf8.RuneSelf {
		if 'a' <= r|0x20 && r|0x20 <= 'z' {
			return scriptLatin, true
		}
		return 0, false
	}
	for i := range knownScripts {
		if unicode.Is(knownScripts[i].table, r) {
			return i, true
		}
	}
	if unicode.Is(unicode.Common, r) || unicode.Is(unicode.Inherited, r) {
		return 0, false
	}
	others := otherScripts()
	for i := range others {
		if unicode.Is(others[i].table, r) {
			return min(numKnownScripts+i, maxScriptID), true
		}
	}
	return min(numKnownScripts+len(others), maxScriptID), true // unknownScriptName
}

func scriptName(id int) string {
	if id < numKnownScripts {
		return knownScripts[id].name
	}
	if others := otherScripts(); id-numKnownScripts < len(others) {
		return others[id-numKnownScripts].name
	}
	return unknownScriptName
}

func labelScripts(label string) scriptSet {
	var set scriptSet
	for _, r := range label {
		if id, ok := scriptOf(r); ok {
			set.add(id)
		}
	}
	return set
}

// Scripts returns the distinct Unicode scripts (names as in unicode.Scripts,
// e.g. "Latin", "Cyrillic", "Han") of the runes of label, sorted by name.
// Common and Inherited runes (digits, hyphen, punctuation, combining marks)
// are ignored; runes in no known script count as "Unknown". It returns nil
// when no rune has a script.
func Scripts(label string) []string {
	set := labelScripts(label)
	var names []string
	for w, word := range set {
		for word != 0 {
			b := bits.TrailingZeros64(word)
			word &^= 1 << b
			names = append(names, scriptName(w*64+b))
		}
	}
	slices.Sort(names)
	return names
}

// Script combinations that UTS #39's Highly Restrictive level accepts besides
// a single script.
var allowedScriptMixes = [...]uint64{
	1<<scriptLatin | 1<<scriptHan | 1<<scriptHiragana | 1<<scriptKatakana, // Japanese
	1<<scriptLatin | 1<<scriptHan | 1<<scriptBopomofo,                     // Chinese
	1<<scriptLatin | 1<<scriptHan | 1<<scriptHangul,                       // Korean
}

// MixedScript reports whether label mixes scripts in a way the UTS #39
// "Highly Restrictive" level refuses: more than one script (Common and
// Inherited ignored) that is not covered by one of Latin+Han+Hiragana+Katakana,
// Latin+Han+Bopomofo or Latin+Han+Hangul. "gmаil" (Latin + Cyrillic а) is
// mixed; "españa", "яндекс" and "日本語ドメイン" are not.
func MixedScript(label string) bool {
	set := labelScripts(label)
	if set.len() <= 1 {
		return false
	}
	for _, mix := range allowedScriptMixes {
		if set.subsetOf(mix) {
			return false
		}
	}
	return true
}

// WholeScriptConfusable reports whether label is written entirely in one
// non-Latin script (ignoring Common and Inherited runes such as digits and
// hyphens) yet every rune of it looks Latin: its DomainSkeleton consists only
// of ASCII letters, digits and hyphens. "сосо" and "асе" in Cyrillic are
// whole-script confusables of "coco" and "ace"; "яндекс" is not ('я' has no
// Latin prototype). Pass one label at a time, not a dotted domain.
func WholeScriptConfusable(label string) bool {
	set := labelScripts(label)
	if set.len() != 1 || set[0]&(1<<scriptLatin) != 0 {
		return false
	}
	sk := DomainSkeleton(label)
	letter := false
	for i := 0; i < len(sk); i++ {
		switch c := sk[i]; {
		case 'a' <= c && c <= 'z':
			letter = true
		case '0' <= c && c <= '9', c == '-':
		default:
			return false
		}
	}
	return letter
}
