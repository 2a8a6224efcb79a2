package knowledge

import (
	"slices"
	"testing"
	"unicode"
)

func TestScripts(t *testing.T) {
	for _, tc := range []struct {
		label string
		want  []string
	}{
		{"", nil},
		{"123-456", nil}, // Common only
		{"gmail", []string{"Latin"}},
		{"españa", []string{"Latin"}},
		{"espan\u0303a", []string{"Latin"}}, // combining tilde is Inherited
		{"gmаil", []string{"Cyrillic", "Latin"}},
		{"яндекс", []string{"Cyrillic"}},
		{"gοοgle", []string{"Greek", "Latin"}},
		{"ευρωπαϊκή", []string{"Greek"}},
		{"հայ", []string{"Armenian"}},
		{"עברית", []string{"Hebrew"}},
		{"عربي", []string{"Arabic"}},
		{"日本語ドメインです", []string{"Han", "Hiragana", "Katakana"}},
		{"한국어", []string{"Hangul"}},
		{"ไทย", []string{"Thai"}},
		{"हिन्दी", []string{"Devanagari"}}, // virama and vowel signs are Devanagari
		{"ქართული", []string{"Georgian"}},
		{"ᏣᎳᎩ", []string{"Cherokee"}},
		{"ㄅㄆㄇ", []string{"Bopomofo"}},
		{"தமிழ்", []string{"Tamil"}},         // fallback to unicode.Scripts
		{"ລາວ-ไทย", []string{"Lao", "Thai"}}, // sorted by name
		{"a\U000E0080b", []string{"Latin", "Unknown"}},
	} {
		if got := Scripts(tc.label); !slices.Equal(got, tc.want) {
			t.Errorf("Scripts(%q) = %q, want %q", tc.label, got, tc.want)
		}
	}
}

func TestScriptIDsFit(t *testing.T) {
	if n := numKnownScripts + len(otherScripts()) + 1; n > maxScriptID+1 {
		t.Fatalf("%d script ids do not fit in scriptSet (%d bits)", n, maxScriptID+1)
	}
	for _, s := range knownScripts {
		if unicode.Scripts[s.name] != s.table {
			t.Errorf("known script %s does not match unicode.Scripts", s.name)
		}
	}
}

func TestMixedScript(t *testing.T) {
	for label, want := range map[string]bool{
		"":             false,
		"gmail":        false,
		"españa":       false,
		"яндекс":       false,
		"сосо":         false, // whole-script confusable, but a single script
		"gmаil":        true,  // Latin + Cyrillic а
		"раураl":       true,  // Cyrillic + Latin l
		"gοοgle":       true,  // Latin + Greek
		"paypal-ру":    true,
		"日本語ドメインです":    false, // Han + Hiragana + Katakana
		"sony日本":       false, // Latin + Han
		"abcカタカナ":      false, // Latin + Katakana
		"中文ㄅㄆ":         false, // Han + Bopomofo
		"abc한국어漢字":     false, // Latin + Hangul + Han
		"한국어カタカナ":      true,  // Hangul + Katakana
		"ㄅㄆかな":         true,  // Bopomofo + Hiragana
		"ελληνικά-яз":  true,
		"ไทย123":       false,
		"a\U000E0080b": true, // Latin + Unknown
	} {
		if got := MixedScript(label); got != want {
			t.Errorf("MixedScript(%q) = %v, want %v (scripts %q)", label, got, want, Scripts(label))
		}
	}
}

func TestWholeScriptConfusable(t *testing.T) {
	for label, want := range map[string]bool{
		"сосо":   true,  // Cyrillic "coco"
		"асе":    true,  // Cyrillic "ace"
		"АСЕ":    true,  // folded to "асе"
		"ѕсоре":  true,  // Cyrillic "scope"
		"рау-1":  true,  // digits and hyphen are ignored: "pay-l"
		"ιο":     true,  // Greek "io"
		"νοο":    true,  // Greek "voo"
		"וו":     true,  // Hebrew vav vav → "ll": any single non-Latin script counts
		"яндекс": false, // я, н, д, к have no Latin prototype
		"раураl": false, // mixed script (Latin l)
		"gmаil":  false, // mixed script
		"españa": false, // Latin
		"paypal": false, // Latin
		"123":    false, // no script at all
		"ευρώ":   false,
		"":       false,
	} {
		if got := WholeScriptConfusable(label); got != want {
			t.Errorf("WholeScriptConfusable(%q) = %v, want %v (skeleton %q)", label, got, want, DomainSkeleton(label))
		}
	}
}

func TestScriptsNoAllocForChecks(t *testing.T) {
	for _, label := range []string{"gmаil", "日本語ドメインです", "яндекс"} {
		if n := testing.AllocsPerRun(100, func() { MixedScript(label) }); n != 0 {
			t.Errorf("MixedScript(%q) allocates %v times", label, n)
		}
	}
}

func BenchmarkMixedScript(b *testing.B) {
	for b.Loop() {
		MixedScript("gmаil")
	}
}
