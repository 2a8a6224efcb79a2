package permute

import "testing"

// FuzzGenerate: any input either errors or gives valid, registrable, unique,
// ordered candidates, the same on a second run.
func FuzzGenerate(f *testing.F) {
	for _, s := range []string{"army.mil", "gmail.com", "example.co.uk", "müller.de", "яндекс.рф", "xn--gmil-63d.com",
		"a.b.c.d.e.com", "x.np", "-a.com", "a--b.com", "GMAIL.COM.", "", ".", "1.2.3.4", "a\xffb.com", "sub.blogspot.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cands, err := Generate(s, Options{})
		if err != nil {
			return
		}
		checkCandidates(t, s, cands)
		again, _ := Generate(s, Options{})
		if len(again) != len(cands) {
			t.Fatalf("%q: %d then %d candidates", s, len(cands), len(again))
		}
		for i := range again {
			if again[i] != cands[i] {
				t.Fatalf("%q: run 2 differs at %d: %+v vs %+v", s, i, again[i], cands[i])
			}
		}
	})
}
