package detect

import (
	"strings"
	"testing"
)

// A suffix appended to one of the organisation's own domains (army.mil.com:
// autocompletion, or .com typed out of habit) leaves the protected space for
// a stranger's domain: that is the .mil → .ml leak again, and is blocked
// with the domain the sender meant.
func TestAppendedSuffixToAProtectedDomainIsBlockedWithTheRightSuggestion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		protect, addr, intended string
	}{
		{"mil", "h@army.mil.com", "army.mil"},
		{"mil", "h@army.mil.net", "army.mil"},
		{"example.com", "j@example.com.com", "example.com"},
		{"example.com", "j@examplecom.com", "example.com"},
		// The protected domain's own suffix glued on, then .com: the dot
		// dropped and the habit suffix typed (not only com/net/org glue).
		{"army.mil", "h@armymil.com", "army.mil"},
		{"army.mil", "h@armymil.net", "army.mil"},
		{"mod.gov.uk", "h@modgovuk.com", "mod.gov.uk"},
		{"bund.de", "h@bundde.com", "bund.de"},
		// The suffix typed again with a slip: the domain before it is
		// what the sender meant, not army.mil.mil.
		{"mil", "h@army.mil.ml", "army.mil"},
		{"army.mil", "h@army.mil.ml", "army.mil"},
		{"example.com", "j@example.com.cm", "example.com"},
	}
	for _, tt := range tests {
		c, err := New(Knowledge{Protected: []string{tt.protect}})
		if err != nil {
			t.Fatal(err)
		}
		f, err := c.Check(tt.addr)
		if err != nil {
			t.Fatal(err)
		}
		if f.Verdict != Block || f.Intended != tt.intended {
			t.Errorf("--protect %s %s: %s → %q, want block → %q (%v)", tt.protect, tt.addr, f.Verdict, f.Intended, tt.intended, f.Reasons)
			continue
		}
		typed := tt.addr[strings.IndexByte(tt.addr, '@')+1:]
		for _, r := range f.Reasons {
			if r.Kind == KindProtectedLookalike && !strings.HasPrefix(r.Message, typed+" looks like "+tt.intended) {
				t.Errorf("%s: reason %q does not name the typed domain", tt.addr, r.Message)
			}
		}
	}
	// A name under a registry's two-part suffix is a domain of its own,
	// not a known correspondent's with the suffix retyped.
	k, _ := New(Knowledge{Known: map[string]int{"falabella.com": 50, "gmail.com": 9}})
	for _, a := range []string{"j@falabella.com.co", "j@shop.com.cm"} {
		if f, _ := k.Check(a); f.Verdict != OK {
			t.Errorf("%s: %s → %s, want ok (%v)", a, f.Verdict, f.Intended, f.Reasons)
		}
	}
	// The organisation's own hosts stay ok.
	c, _ := New(Knowledge{Protected: []string{"mil", "example.com"}})
	for _, a := range []string{"h@army.mil", "j@example.com", "j@mail.example.com"} {
		if f, _ := c.Check(a); f.Verdict != OK {
			t.Errorf("%s: %s, want ok", a, f.Verdict)
		}
	}
}

// A provider's whole domain with another generic suffix appended.
func TestAppendedSuffixToAProviderDomainIsHeld(t *testing.T) {
	t.Parallel()
	c, _ := New(Knowledge{})
	for _, a := range []string{"j@gmail.com.net", "j@hotmail.com.org"} {
		f, _ := c.Check(a)
		want := a[2:strings.LastIndexByte(a, '.')]
		if f.Verdict < Hold || f.Intended != want {
			t.Errorf("%s: %s → %q, want hold → %s", a, f.Verdict, f.Intended, want)
		}
	}
}
