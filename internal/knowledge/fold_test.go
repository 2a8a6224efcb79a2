package knowledge

import "testing"

func TestFoldDiacriticsTurnsAccentedLettersIntoTheirBase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, fold, spell string }{
		{"gmàil.com", "gmail.com", "gmail.com"},
		{"exámple.com", "example.com", "example.com"},
		{"müller.de", "muller.de", "mueller.de"},
		{"straße.de", "strasse.de", "strasse.de"},
		{"københavn.dk", "kobenhavn.dk", "koebenhavn.dk"},
		{"GMAÍL.COM", "gmail.com", "gmail.com"},
		{"gmail.com", "gmail.com", "gmail.com"},
		{"gmаil.com", "gmаil.com", "gmаil.com"}, // Cyrillic а is the skeleton's job
	} {
		if got := FoldDiacritics(tc.in); got != tc.fold {
			t.Errorf("FoldDiacritics(%q) = %q, want %q", tc.in, got, tc.fold)
		}
		if got := SpellDiacritics(tc.in); got != tc.spell {
			t.Errorf("SpellDiacritics(%q) = %q, want %q", tc.in, got, tc.spell)
		}
	}
}

func TestAccentVariantsFoldBackToTheirLetter(t *testing.T) {
	t.Parallel()
	for c, rs := range accents {
		for _, r := range rs {
			if got := FoldDiacritics(string(r)); got != string(c) {
				t.Errorf("FoldDiacritics(%q) = %q, want %q", r, got, string(c))
			}
		}
	}
}

func TestNorvigCountsAreEmbeddedAndOrdered(t *testing.T) {
	t.Parallel()
	n := Norvig()
	if n.Count("e", "i") != 917 || n.Max() != 917 {
		t.Fatalf("e|i = %d, max %d; want 917, 917", n.Count("e", "i"), n.Max())
	}
	if n.Count("e", "a") <= n.Count("q", "a") {
		t.Errorf("e for a (%d) should be more common than q for a (%d)", n.Count("e", "a"), n.Count("q", "a"))
	}
	if n.Count("ge", "g") == 0 {
		t.Errorf("an e added after g is missing from the counts")
	}
}
