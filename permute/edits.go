package permute

import (
	"strings"
	"sync"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/knowledge"
)

// Likelihoods of the fuzzers that are not one edit of the domain. One-edit
// candidates take detect.Slip's likelihood; these extend the same scale.
const (
	// tldConfusionLikelihood is the floor for a swap into one of the classic
	// confusion TLDs of the original (knowledge.TLDConfusions: mil → ml, il;
	// com → co, cm, om), as detect scores such a swap.
	tldConfusionLikelihood = 0.9
	// minTwoSlipTLD drops TLDs two slips away whose combined likelihood (the
	// product of the two slips') is below it.
	minTwoSlipTLD = 0.2
	// secondLevelLikelihood: another second level of the same TLD
	// (example.ac.uk for example.co.uk) that is not one slip away; people
	// confuse the conventions rather than mistype them.
	secondLevelLikelihood = 0.3
	// bareTLDLikelihood: the second level dropped (example.uk).
	bareTLDLikelihood = 0.4
	// twoEditPluralLikelihood: a plural that is not one edit (boxes).
	twoEditPluralLikelihood = 0.15
	// wordLikelihood: a common word added before or after the name
	// (mygmail.com, gmail-login.com): a deliberate squat, not a slip.
	wordLikelihood = 0.1
	// stripLikelihood: accents dropped (muller.de for müller.de), the most
	// common way to type an IDN on a keyboard without them.
	stripLikelihood = 0.75
	// spellLikelihood: umlauts spelled out (mueller.de).
	spellLikelihood = 0.6
	// accentLikelihood: one letter with an accent added (gmàil.com), as
	// detect scores an accented lookalike of a domain it knows: a phone's
	// long-press slip or a registered IDN lookalike, blocked.
	accentLikelihood = 0.95
	// homoglyphLikelihood: a label that looks exactly like the original, as
	// detect scores a homoglyph.
	homoglyphLikelihood = 0.98
	// asciiLookalikeLikelihood: ASCII characters that read alike (rn for m),
	// as detect scores a visually similar ASCII pair.
	asciiLookalikeLikelihood = 0.6
)

// appendTLDs are the TLDs a name gets when its own dot is lost
// (armymil.com for army.mil), with how likely each is to be added.
var appendTLDs = []struct {
	tld string
	w   float64
}{{"com", 0.5}, {"net", 0.25}, {"org", 0.25}}

// neighbours[c] lists the LDH characters next to c on any built-in keyboard
// layout (QWERTY, QWERTZ, AZERTY).
var neighbours = sync.OnceValue(func() *[128][]rune {
	var adj []*knowledge.Adjacency
	for _, l := range knowledge.Layouts() {
		adj = append(adj, l.Adjacent())
	}
	var t [128][]rune
	for a := range 128 {
		for b := range 128 {
			if !isLDH(byte(b)) {
				continue
			}
			for _, x := range adj {
				if x[a][b] {
					t[a] = append(t[a], rune(b))
					break
				}
			}
		}
	}
	return &t
})

func isLDH(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' }

func isVowel(r rune) bool { return strings.ContainsRune("aeiouy", r) }

// edits makes every one-edit slip of the whole domain string that a person
// plausibly makes: omission, repetition, transposition (dots included:
// armym.il, gmailc.om), adjacent keys substituted or inserted, vowel swaps,
// bit flips, hyphens and dots added, removed or swapped for each other.
// Each is scored and named by detect.Slip.
func (g *gen) edits() {
	r := []rune(g.uni)
	n := len(r)
	buf := make([]rune, 0, n+1)
	emit := func(parts ...[]rune) {
		buf = buf[:0]
		for _, p := range parts {
			buf = append(buf, p...)
		}
		g.addEdit(string(buf))
	}
	one := make([]rune, 1)
	for i := 0; i <= n; i++ {
		for _, x := range insertChars(r, i) {
			one[0] = x
			emit(r[:i], one, r[i:])
		}
		if i == n {
			break
		}
		emit(r[:i], r[i+1:])           // omission, missing dot
		emit(r[:i+1], r[i:])           // repetition
		if i+1 < n && r[i] != r[i+1] { // transposition, shifted dot
			one[0] = r[i]
			emit(r[:i], r[i+1:i+2], one, r[i+2:])
		}
		for _, x := range substChars(r[i]) {
			one[0] = x
			emit(r[:i], one, r[i+1:])
		}
	}
}

// insertChars lists what may be slipped in before r[i]: a neighbour of the
// key before or after, a hyphen or a dot.
func insertChars(r []rune, i int) []rune {
	var out []rune
	if i > 0 && r[i-1] < 128 {
		out = append(out, neighbours()[r[i-1]]...)
	}
	if i < len(r) && r[i] < 128 {
		out = append(out, neighbours()[r[i]]...)
	}
	return append(out, '-', '.')
}

// substChars lists what may be typed instead of c: its keyboard neighbours,
// other vowels for a vowel, its one-bit flips, a hyphen for a dot and back.
func substChars(c rune) []rune {
	var out []rune
	switch c {
	case '.':
		return []rune{'-'}
	case '-':
		out = append(out, '.')
	}
	if c >= 128 {
		return out
	}
	out = append(out, neighbours()[c]...)
	if isVowel(c) {
		for _, v := range "aeiouy" {
			if v != c {
				out = append(out, v)
			}
		}
	}
	for b := range 7 {
		x := byte(c) ^ 1<<b
		if isLDH(x) {
			out = append(out, rune(x))
		}
	}
	return out
}

// addEdit scores a one-edit candidate with the typo model and names it.
func (g *gen) addEdit(typed string) {
	kind, p, ok := slip(typed, g.uni)
	if !ok {
		return
	}
	kind, p = g.relabel(typed, kind, p)
	g.add(typed, kind, p)
}

// relabel refines the engine's reason kind into the fuzzer kind: a slip
// that only changes the TLD into another real one is a TLD swap (at least
// tldConfusionLikelihood into a classic confusion), a vowel for a vowel is a
// vowel swap, a hyphen in or out is hyphenation.
func (g *gen) relabel(typed, kind string, p float64) (string, float64) {
	ut := g.uni[strings.LastIndexByte(g.uni, '.')+1:]
	base := g.uni[:len(g.uni)-len(ut)]
	if strings.HasPrefix(typed, base) && !strings.Contains(typed[len(base):], ".") {
		if a, ok := toASCII(typed); ok && isConfusion(g.tld, a[strings.LastIndexByte(a, '.')+1:]) {
			p = max(p, tldConfusionLikelihood)
		}
		return KindTLDSwap, p
	}
	if strings.Count(typed, "-") != strings.Count(g.uni, "-") {
		return KindHyphenation, p
	}
	if kind == KindSubstitution {
		a, b := []rune(typed), []rune(g.uni)
		if len(a) == len(b) {
			for i := range a {
				if a[i] != b[i] {
					if isVowel(a[i]) && isVowel(b[i]) {
						return KindVowelSwap, p
					}
					break
				}
			}
		}
	}
	return kind, p
}

// isConfusion reports whether to is one of the classic slips of the TLD
// from (knowledge.TLDConfusions).
func isConfusion(from, to string) bool {
	for _, t := range knowledge.TLDConfusions[from] {
		if t == to {
			return true
		}
	}
	return false
}

// slip is detect.Slip for strings that may hold non-ASCII runes: the
// engine's model works on bytes, so the runes around the one edit are
// mapped to placeholder bytes that are neither keys, vowels nor one bit
// from any other character, and the model judges the edit on that window.
func slip(typed, intended string) (kind string, p float64, ok bool) {
	if isASCII(typed) && isASCII(intended) {
		return detect.Slip(typed, intended)
	}
	t, in := []rune(typed), []rune(intended)
	i := 0
	for i < len(t) && i < len(in) && t[i] == in[i] {
		i++
	}
	j := 0
	for j < len(t)-i && j < len(in)-i && t[len(t)-1-j] == in[len(in)-1-j] {
		j++
	}
	lo := max(0, i-2)
	ctx := min(j, 2)
	tw, iw := t[lo:len(t)-j+ctx], in[lo:len(in)-j+ctx]
	if len(tw) > 7 || len(iw) > 7 {
		return "", 0, false // more than one edit apart
	}
	codes := map[rune]byte{}
	enc := func(rs []rune) string {
		b := make([]byte, len(rs))
		for k, r := range rs {
			if r < 128 {
				b[k] = byte(r)
				continue
			}
			c, seen := codes[r]
			if !seen {
				c = placeholders[len(codes)]
				codes[r] = c
			}
			b[k] = c
		}
		return string(b)
	}
	return detect.Slip(enc(tw), enc(iw))
}

// placeholders stand for non-ASCII runes in slip: high bytes whose low bits
// are control characters (never in a domain) of even parity, so that no
// placeholder is one bit from another or from an ASCII character of a
// domain. Two windows of at most 7 runes hold fewer runes than the 15 codes.
var placeholders = [...]byte{0x83, 0x85, 0x86, 0x89, 0x8a, 0x8c, 0x8f, 0x91, 0x92, 0x94, 0x97, 0x98, 0x9b, 0x9d, 0x9e}
