package knowledge

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// TestConfusablesTableMatchesData checks that the generated table is current:
// every single-rune entry of data/unicode-confusables.json is found by
// Prototype, and the table has nothing else. Run `go generate` if it fails.
func TestConfusablesTableMatchesData(t *testing.T) {
	raw, err := os.ReadFile("data/unicode-confusables.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	single := 0
	for k, v := range m {
		if utf8.RuneCountInString(k) != 1 {
			continue // the generator skips multi-rune sources (there are none)
		}
		single++
		r, _ := utf8.DecodeRuneInString(k)
		if got, ok := Prototype(r); !ok || got != v {
			t.Errorf("Prototype(%U) = %q, %v; want %q", r, got, ok, v)
		}
	}
	if single != confusablesLen {
		t.Errorf("table has %d entries, data has %d single-rune sources", confusablesLen, single)
	}
	for i := 1; i < len(confusableSources); i++ {
		if confusableSources[i-1] >= confusableSources[i] {
			t.Fatalf("confusableSources not strictly ascending at %d", i)
		}
	}
	for c := range rune(utf8.RuneSelf) {
		want := ""
		if i, ok := confusableIndex(c); ok {
			want = confusablePrototypes[confusableOffsets[i]:confusableOffsets[i+1]]
		}
		if asciiPrototypes[c] != want {
			t.Errorf("asciiPrototypes[%q] = %q, want %q", c, asciiPrototypes[c], want)
		}
		// Skeleton's ASCII fast path relies on these being NFD already.
		if p := asciiPrototypes[c]; !norm.NFD.IsNormalString(p) {
			t.Errorf("asciiPrototypes[%q] = %q is not NFD", c, p)
		}
	}
}

func TestPrototype(t *testing.T) {
	for _, tc := range []struct {
		r    rune
		want string
		ok   bool
	}{
		{'0', "O", true},
		{'1', "l", true},
		{'I', "l", true},
		{'|', "l", true},
		{'m', "rn", true}, // "rn" itself is not a source: 'm' maps to it
		{'a', "", false},
		{'l', "", false},
		{'O', "", false},
		{'w', "", false}, // and "vv" is not a source either
		{'а', "a", true}, // Cyrillic а
		{'ο', "o", true}, // Greek omicron
		{'ӏ', "i", true}, // Cyrillic palochka: 'i', not 'l', in this data
		{'Ӏ', "l", true}, // capital palochka
		{'ñ', "", false},
		{'ｇ', "g", true}, // fullwidth g
		{'ｍ', "", false}, // fullwidth m is not a source (NFKD handles it in DomainSkeleton)
		{-1, "", false},
		{utf8.MaxRune + 1, "", false},
	} {
		got, ok := Prototype(tc.r)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Prototype(%q) = %q, %v; want %q, %v", tc.r, got, ok, tc.want, tc.ok)
		}
	}
}

func TestSkeleton(t *testing.T) {
	same := []struct{ a, b string }{
		{"gmаil.com", "gmail.com"},   // Cyrillic а
		{"раураl", "paypal"},         // Cyrillic р, а, у
		{"gοοgle", "google"},         // Greek ο
		{"ｇｏｏｇｌｅ", "google"},         // fullwidth letters are sources (except ｍ)
		{"grnail.corn", "gmail.com"}, // 'm' → "rn"
		{"paypa1", "paypal"},         // '1' → 'l'
		{"paypaI", "paypal"},         // 'I' → 'l'
		{"e\u0301", "é"},             // NFD
		{"beӀlsouth", "bellsouth"},   // capital palochka Ӏ → 'l'
	}
	for _, tc := range same {
		if sa, sb := Skeleton(tc.a), Skeleton(tc.b); sa != sb {
			t.Errorf("Skeleton(%q) = %q, Skeleton(%q) = %q; want equal", tc.a, sa, tc.b, sb)
		}
	}
	differ := []struct{ a, b string }{
		{"españa", "espana"},
		{"vvikipedia", "wikipedia"}, // "vv" is not confusable with 'w' in the data
		// The data maps the small palochka ӏ to 'i' (not 'l'), so this classic
		// homoglyph attack only matches "beilsouth".
		{"beӏlsouth", "bellsouth"},
		{"G00GLE.com", "google.com"}, // Skeleton is case-sensitive: "GOOGLE.corn"
		{"ｇｏｏｇｌｅ.ｃｏｍ", "google.com"}, // fullwidth ｍ is not a source: "google.coｍ"
	}
	for _, tc := range differ {
		if sa, sb := Skeleton(tc.a), Skeleton(tc.b); sa == sb {
			t.Errorf("Skeleton(%q) = Skeleton(%q) = %q; want different", tc.a, tc.b, sa)
		}
	}
	for in, want := range map[string]string{
		"":            "",
		"gmail.com":   "grnail.corn",
		"G00GLE.com":  "GOOGLE.corn",
		"beӏlsouth":   "beilsouth",
		"españa":      "espan\u0303a", // NFD
		"l0l":         "lOl",
		"100%":        "lOOº/₀",
		"яндекс":      "ᴙʜдeĸc",
		"straße":      "straße",
		"bad\xffutf8": "bad\xffutf8",
	} {
		if got := Skeleton(in); got != want {
			t.Errorf("Skeleton(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDomainSkeleton(t *testing.T) {
	// Every group names look-alikes of its first member.
	groups := [][]string{
		{"gmail.com", "gmаil.com", "GMAIL.COM", "grnail.com", "ｇｍａｉｌ.ｃｏｍ", "GMАIL.COM"},
		// The data maps '0' to "O"; folding makes that 'o', so these match.
		{"google.com", "G00GLE.com", "g00gle.com", "gοοgle.com", "ｇｏｏｇｌｅ.ｃｏｍ"},
		{"paypal", "раураl", "PAYPAL", "paypa1", "paypa|"},
		{"coco", "сосо", "СОСО"},
		{"mail", "Ꮇail"}, // Cherokee Ꮇ → "M" → 'm' → "rn"
	}
	for _, g := range groups {
		want := DomainSkeleton(g[0])
		for _, s := range g[1:] {
			if got := DomainSkeleton(s); got != want {
				t.Errorf("DomainSkeleton(%q) = %q, DomainSkeleton(%q) = %q; want equal", s, got, g[0], want)
			}
		}
	}
	for _, tc := range []struct{ a, b string }{
		{"españa", "espana"},
		{"яндекс", "yandex"},
		// Domains are case-insensitive: "PAYPAI" is the domain "paypai".
		{"PAYPAI", "paypal"},
		{"beӏlsouth", "bellsouth"}, // palochka → 'i' in the data
	} {
		if sa, sb := DomainSkeleton(tc.a), DomainSkeleton(tc.b); sa == sb {
			t.Errorf("DomainSkeleton(%q) = DomainSkeleton(%q) = %q; want different", tc.a, tc.b, sa)
		}
	}
	for in, want := range map[string]string{
		"":            "",
		"gmail.com":   "grnail.corn",
		"G00GLE.com":  "google.corn",
		"MAIL":        "rnail",
		"ſtray":       "stray",  // NFKD: ſ is the domain "stray" in IDNA too
		"100%":        "looo/o", // '%' → "º/₀" → NFKD "o/0" → "o/O" → "o/o"
		"ꝺ":           "ꝺ",      // small insular d → its capital → folds back
		"bad\xffutf8": "bad\xffutf8",
	} {
		if got := DomainSkeleton(in); got != want {
			t.Errorf("DomainSkeleton(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDomainSkeletonFixedPoint checks, for every rune, that DomainSkeleton
// settles within maxDomainRounds: its result is a fixed point of the
// map+normalize step (and so of DomainSkeleton).
func TestDomainSkeletonFixedPoint(t *testing.T) {
	if testing.Short() {
		t.Skip("exhaustive over all runes")
	}
	for r := range rune(utf8.MaxRune + 1) {
		if !utf8.ValidRune(r) {
			continue
		}
		s := string(r)
		if _, ok := Prototype(r); !ok && foldRune(r) == r && norm.NFKD.IsNormalString(s) {
			continue // trivially its own DomainSkeleton
		}
		x := DomainSkeleton(s)
		if y, _ := mapRunes(x); domainNormalize(y) != x || DomainSkeleton(x) != x {
			t.Errorf("DomainSkeleton(%q) = %q is not a fixed point", r, x)
		}
	}
}

// TestASCIIFastPaths checks the ASCII tables against the general paths.
func TestASCIIFastPaths(t *testing.T) {
	for c := range byte(utf8.RuneSelf) {
		s := string(rune(c))
		if got, want := mapASCII(s, &asciiDomainPrototypes), domainSkeleton(s); got != want {
			t.Errorf("ASCII DomainSkeleton(%q) = %q, general path %q", s, got, want)
		}
		if got, want := mapASCII(s, &asciiPrototypes), norm.NFD.String(mustMap(norm.NFD.String(s))); got != want {
			t.Errorf("ASCII Skeleton(%q) = %q, general path %q", s, got, want)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	for range 2000 {
		b.Reset()
		for range rng.IntN(20) {
			b.WriteByte(byte(rng.IntN(utf8.RuneSelf)))
		}
		s := b.String()
		if got, want := DomainSkeleton(s), domainSkeleton(s); got != want {
			t.Fatalf("DomainSkeleton(%q) = %q, general path %q", s, got, want)
		}
		if got, want := Skeleton(s), norm.NFD.String(mustMap(norm.NFD.String(s))); got != want {
			t.Fatalf("Skeleton(%q) = %q, general path %q", s, got, want)
		}
	}
}

func mustMap(s string) string { t, _ := mapRunes(s); return t }

func TestSkeletonNoAlloc(t *testing.T) {
	for _, s := range []string{"example.org", "españa", "яндекс.рф"} {
		for name, f := range map[string]func(string) string{"Skeleton": Skeleton, "DomainSkeleton": DomainSkeleton} {
			if f(s) != s {
				continue
			}
			if n := testing.AllocsPerRun(100, func() { f(s) }); n != 0 {
				t.Errorf("%s(%q) allocates %v times, want 0", name, s, n)
			}
		}
	}
	if n := testing.AllocsPerRun(100, func() { DomainSkeleton("gmail.com") }); n != 1 {
		t.Errorf("DomainSkeleton(ASCII) allocates %v times, want 1", n)
	}
}

var sink string

func BenchmarkDomainSkeletonASCII(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sink = DomainSkeleton("gmail.com")
	}
}

func BenchmarkDomainSkeletonUnicode(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sink = DomainSkeleton("gmаil.com") // Cyrillic а
	}
}

func BenchmarkSkeletonASCII(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sink = Skeleton("gmail.com")
	}
}

func BenchmarkSkeletonUnicode(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sink = Skeleton("gmаil.com") // Cyrillic а
	}
}

func BenchmarkPrototype(b *testing.B) {
	var ok bool
	for b.Loop() {
		sink, ok = Prototype('а')
	}
	_ = ok
}
