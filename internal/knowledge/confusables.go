package knowledge

//go:generate go run ./gen/confusables

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Prototype returns the UTS #39 confusables prototype of r: the string that r
// is visually confusable with (for example Cyrillic 'а' → "a", '0' → "O",
// '1' → "l", 'm' → "rn"). ok is false when r is not a source in the table, in
// which case r is its own prototype. The returned string is a slice of a
// compiled-in constant; looking it up does not allocate.
func Prototype(r rune) (proto string, ok bool) {
	if uint32(r) < utf8.RuneSelf {
		p := asciiPrototypes[r]
		return p, p != ""
	}
	i, ok := confusableIndex(r)
	if !ok {
		return "", false
	}
	return confusablePrototypes[confusableOffsets[i]:confusableOffsets[i+1]], true
}

// confusableIndex finds r in confusableSources by binary search.
func confusableIndex(r rune) (int, bool) {
	x := uint32(r)
	if x < confusableSources[0] || x > confusableSources[len(confusableSources)-1] {
		return 0, false
	}
	lo, hi := 0, len(confusableSources)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if confusableSources[m] < x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(confusableSources) && confusableSources[lo] == x
}

// Skeleton returns the UTS #39 skeleton of s: NFD, every rune replaced by its
// confusables prototype, NFD again. Two strings are confusable when their
// skeletons are equal. The skeleton is not meant for display, and it is
// case-sensitive (the data maps '0' to "O" but leaves 'o' and 'O' alone); for
// domain names use DomainSkeleton.
//
// When s needs no change it is returned as is, without allocating.
func Skeleton(s string) string {
	if isASCII(s) {
		// NFD is the identity on ASCII and the prototypes of ASCII sources
		// are already NFD, so only the ASCII part of the table applies.
		return mapASCII(s, &asciiPrototypes)
	}
	t, _ := mapRunes(norm.NFD.String(s))
	return norm.NFD.String(t)
}

// DomainSkeleton returns a skeleton for comparing domain names or labels: two
// domains look alike when their DomainSkeletons are equal. "gmаil.com"
// (Cyrillic а), "grnail.com", "GMAIL.COM" and "ｇｍａｉｌ.ｃｏｍ" all give
// "grnail.corn" (the data maps 'm' to "rn").
//
// It extends the UTS #39 Skeleton with what IDNA (UTS #46) does to a domain
// before it is looked up, so that spellings naming the same domain get the
// same skeleton:
//
//   - s is first compatibility-decomposed (NFKD, so fullwidth and other
//     compatibility forms become their plain letters) and case-folded;
//   - then every rune is replaced by its prototype (as in Skeleton), and the
//     result normalized again (NFKD, fold, NFD) — the data maps some
//     characters to upper-case prototypes, such as '0' → "O", and to
//     prototypes that fold to sources, such as Cherokee 'Ꮇ' → "M" (→ "rn");
//   - the last step repeats until nothing changes, so the result is a fixed
//     point of it and DomainSkeleton(DomainSkeleton(s)) == DomainSkeleton(s).
//
// Case folding is unicode.ToLower, except that Cherokee small letters fold to
// their capitals as in Unicode case folding and IDNA. s should be in Unicode
// form, not "xn--" punycode: decode A-labels first.
func DomainSkeleton(s string) string {
	if isASCII(s) {
		return mapASCII(s, &asciiDomainPrototypes)
	}
	return domainSkeleton(s)
}

// maxDomainRounds bounds the map+normalize iteration of domainSkeleton. With
// the current data every single rune settles after at most two changing rounds
// (TestDomainSkeletonFixedPoint checks that each result is a fixed point).
const maxDomainRounds = 8

// domainSkeleton is the general (non-ASCII) path of DomainSkeleton.
func domainSkeleton(s string) string {
	x := domainNormalize(s)
	for range maxDomainRounds {
		y, changed := mapRunes(x)
		if !changed {
			break
		}
		// The data maps U+A77A ꝺ (small insular d) to its own capital,
		// U+A779 Ꝺ, which folds back: stop when the step is a no-op.
		if y = domainNormalize(y); y == x {
			break
		}
		x = y
	}
	return x
}

// domainNormalize is the IDNA-like normalization of DomainSkeleton: NFKD,
// case folding, NFD. It returns s itself when that is already normalized.
func domainNormalize(s string) string {
	return norm.NFD.String(foldString(norm.NFKD.String(s)))
}

// asciiDomainPrototypes[c] is DomainSkeleton(string(c)) for each ASCII byte c,
// or "" when that is c itself. Only the few bytes that are sources (or fold to
// sources) take the general path, so building it is cheap;
// TestASCIIFastPaths checks every entry against the general path.
var asciiDomainPrototypes = func() (t [128]string) {
	for c := range byte(utf8.RuneSelf) {
		lc := c
		if 'A' <= lc && lc <= 'Z' {
			lc += 'a' - 'A'
		}
		switch {
		case asciiPrototypes[lc] != "":
			t[c] = domainSkeleton(string(rune(c)))
		case lc != c:
			t[c] = asciiLower[lc-'a' : lc-'a'+1]
		}
	}
	return t
}()

const asciiLower = "abcdefghijklmnopqrstuvwxyz"

// foldRune is the case folding used for domains: unicode.ToLower, except for
// Cherokee small letters, which Unicode case folding (and IDNA) map to the
// capitals.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return r
	}
	switch {
	case 0x13A0 <= r && r <= 0x13F5: // Cherokee capitals fold to themselves
		return r
	case (0x13F8 <= r && r <= 0x13FD) || (0xAB70 <= r && r <= 0xABBF): // Cherokee small letters
		return unicode.ToUpper(r)
	}
	return unicode.ToLower(r)
}

// foldString applies foldRune to every rune of s, returning s itself when
// nothing changes.
func foldString(s string) string {
	var b strings.Builder
	changed := false
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		f := r
		if r != utf8.RuneError || size > 1 {
			f = foldRune(r)
		}
		if f != r && !changed {
			changed = true
			b.Grow(len(s) + utf8.UTFMax)
			b.WriteString(s[:i])
		}
		if changed {
			if f != r {
				b.WriteRune(f)
			} else {
				b.WriteString(s[i : i+size])
			}
		}
		i += size
	}
	if !changed {
		return s
	}
	return b.String()
}

// mapRunes replaces every rune of s by its prototype. It returns s itself and
// false when nothing changes. Invalid UTF-8 bytes are copied through
// unchanged.
func mapRunes(s string) (string, bool) {
	var b strings.Builder
	changed := false
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		p, ok := Prototype(r)
		if !ok {
			if changed {
				b.WriteString(s[i : i+size])
			}
			i += size
			continue
		}
		if !changed {
			changed = true
			b.Grow(len(s) + 2*len(p))
			b.WriteString(s[:i])
		}
		b.WriteString(p)
		i += size
	}
	if !changed {
		return s, false
	}
	return b.String(), true
}

// mapASCII replaces each byte c of the ASCII string s by t[c] when that is not
// empty. It returns s itself when nothing changes and otherwise allocates
// exactly once.
func mapASCII(s string, t *[128]string) string {
	i := 0
	for i < len(s) && t[s[i]] == "" {
		i++
	}
	if i == len(s) {
		return s
	}
	n := i
	for j := i; j < len(s); j++ {
		if p := t[s[j]]; p != "" {
			n += len(p)
		} else {
			n++
		}
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		if p := t[s[i]]; p != "" {
			b.WriteString(p)
		} else {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// isASCII reports whether s is pure ASCII.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
