package clientcert

import (
	"strings"
	"testing"
)

func TestRuleParsing(t *testing.T) {
	t.Parallel()
	good := []string{"mx.example.com", "*.mail.protection.outlook.com", "MX.Example.COM.", "sha256:" + strings.Repeat("ab", 32),
		"SHA256:" + strings.TrimSuffix(strings.Repeat("AB:", 32), ":")}
	for _, g := range good {
		if _, err := Parse([]string{g}); err != nil {
			t.Errorf("%q: %v", g, err)
		}
	}
	bad := []string{"", "*", "*.com", "com", "*.*.example.com", "mx.*.example.com", "sha256:abcd", "sha256:" + strings.Repeat("zz", 32),
		"mx..example.com", "müller.example.com", "mx.example.com/24", "a b.example.com"}
	for _, b := range bad {
		if _, err := Parse([]string{b}); err == nil {
			t.Errorf("%q accepted", b)
		}
	}
	if _, err := Parse([]string{"ok.example.com", "*", "sha256:1"}); err == nil || strings.Count(err.Error(), ";") != 1 {
		t.Errorf("every problem reported at once: %v", err)
	}
}

func TestNameRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rule, name string
		want       bool
	}{
		{"mx.example.com", "mx.example.com", true},
		{"mx.example.com", "mx.example.com.evil.test", false},
		{"mx.example.com", "*.example.com", false},
		{"*.example.com", "mx.example.com", true},
		{"*.example.com", "*.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "a.b.example.com", false},
		{"*.example.com", ".example.com", false},
		{"*.example.com", "*.a.example.com", false},
		{"*.example.com", "mxexample.com", false},
		{"*.example.com", "mx.example.com.evil.test", false},
	}
	for _, tc := range tests {
		if got := NameMatches(tc.rule, tc.name); got != tc.want {
			t.Errorf("rule %q, name %q: %v", tc.rule, tc.name, got)
		}
	}
}

// FuzzRules: parsing never panics, a parsed name rule is lower-case
// DNS, and a name rule never matches a name outside its own domain.
func FuzzRules(f *testing.F) {
	for _, s := range []string{"mx.example.com", "*.mail.protection.outlook.com", "sha256:" + strings.Repeat("0", 64), "*.com", "a..b", "x.example.com"} {
		f.Add(s, "x.example.com")
	}
	f.Fuzz(func(t *testing.T, entry, name string) {
		r, err := Parse([]string{entry})
		if err != nil {
			return
		}
		for _, n := range r.Names {
			if n != strings.ToLower(n) || strings.Count(n, "*") > 1 {
				t.Fatalf("rule %q from %q", n, entry)
			}
			name = strings.ToLower(name)
			if NameMatches(n, name) {
				base := strings.TrimPrefix(n, "*.")
				if name != n && !strings.HasSuffix(name, "."+base) {
					t.Fatalf("rule %q matched %q", n, name)
				}
				if name != n && strings.Count(name, ".") != strings.Count(base, ".")+1 {
					t.Fatalf("rule %q matched %q at another depth", n, name)
				}
			}
		}
	})
}
