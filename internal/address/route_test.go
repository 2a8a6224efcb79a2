package address

import (
	"strings"
	"testing"
)

// localExample treats example.com and address literals as the MTA's own,
// like a Postfix with mydestination = example.com (its own IP literals are
// local too).
func localExample(a Address) bool { return a.Domain == "example.com" || a.Literal }

// The expectations are what Postfix 3.7 (allow_percent_hack,
// swap_bangpath and resolve_dequoted_address at their defaults, yes) did
// with each form, as its {rcpt_addr} milter macro and its delivery log
// showed: see e2e/route_test.go, which checks them against a real Postfix.
func TestParseRouteFollowsTheAddressPostfixDeliversTo(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 300)
	tests := []struct {
		name  string
		in    string
		hops  []string // String() of each hop
		final string   // Domain of the last hop ("" when none)
	}{
		{"plain address is one hop", "j@army.ml", []string{"j@army.ml"}, "army.ml"},
		{"angle brackets", "<j@army.ml>", []string{"j@army.ml"}, "army.ml"},
		{"source route is ignored", "<@relay.example.com:j@army.ml>", []string{"j@army.ml"}, "army.ml"},
		{"source route with two relays", "@a.example.com,@b.example.com:j@army.ml", []string{"j@army.ml"}, "army.ml"},
		{"percent hack under a local domain", "j%army.ml@example.com", []string{"j%army.ml@example.com", "j@army.ml"}, "army.ml"},
		{"percent hack under a remote domain stays there", "j%army.ml@gmail.com", []string{"j%army.ml@gmail.com"}, "gmail.com"},
		{"bang path under a local domain", "army.ml!j@example.com", []string{"army.ml!j@example.com", "j@army.ml"}, "army.ml"},
		{"first bang wins", "a!b!j@example.com", []string{"a!b!j@example.com", "b!j@a"}, "a"},
		{"quoted at under a local domain", `"j@army.ml"@example.com`, []string{`"j@army.ml"@example.com`, "j@army.ml"}, "army.ml"},
		{"quoted percent under a local domain", `"j%army.ml"@example.com`, []string{"j%army.ml@example.com", "j@army.ml"}, "army.ml"},
		{"quoted bang under a local domain", `"army.ml!j"@example.com`, []string{"army.ml!j@example.com", "j@army.ml"}, "army.ml"},
		{"escaped at under a local domain", `j\@army.ml@example.com`, []string{`"j@army.ml"@example.com`, "j@army.ml"}, "army.ml"},
		{"unquoted second at: the last one is the domain", "j@army.ml@example.com", []string{`"j@army.ml"@example.com`, "j@army.ml"}, "army.ml"},
		{"unquoted second at under a remote domain", "j@army.ml@gmail.com", []string{`"j@army.ml"@gmail.com`}, "gmail.com"},
		{"percent chain", "j%army.ml%example.com@example.com", []string{"j%army.ml%example.com@example.com", "j%army.ml@example.com", "j@army.ml"}, "army.ml"},
		{"source route then percent", "<@relay.example.com:j%army.ml@example.com>", []string{"j%army.ml@example.com", "j@army.ml"}, "army.ml"},
		{"percent under an address literal", "j%army.ml@[127.0.0.1]", []string{"j%army.ml@[127.0.0.1]", "j@army.ml"}, "army.ml"},
		{"address literal", "j@[192.0.2.1]", []string{"j@[192.0.2.1]"}, "[192.0.2.1]"},
		{"300-byte local part", long + "@army.ml", []string{long + "@army.ml"}, "army.ml"},
		{"trailing dot and case", "j@ARMY.ML.", []string{"j@army.ml"}, "army.ml"},
		{"quoted plain local part", `"j"@army.ml`, []string{"j@army.ml"}, "army.ml"},
		{"quoted space stays a local part", `"john doe"@example.com`, []string{`"john doe"@example.com`}, "example.com"},
		{"no domain: the MTA's own", "postmaster", nil, ""},
		{"bang path without a domain", "army.ml!j", []string{"j@army.ml"}, "army.ml"},
		{"percent without a domain", "j%army.ml", []string{"j@army.ml"}, "army.ml"},
		{"quoted at without a domain", `"j@army.ml"`, []string{"j@army.ml"}, "army.ml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := ParseRoute(tt.in, localExample)
			if err != nil {
				t.Fatalf("ParseRoute(%q): %v", tt.in, err)
			}
			var got []string
			for _, h := range r.Hops {
				got = append(got, h.String())
			}
			if strings.Join(got, " | ") != strings.Join(tt.hops, " | ") {
				t.Errorf("ParseRoute(%q) hops = %q, want %q", tt.in, got, tt.hops)
			}
			f, ok := r.Final()
			if ok != (tt.final != "") || f.Domain != tt.final {
				t.Errorf("ParseRoute(%q) final = %q (%v), want %q", tt.in, f.Domain, ok, tt.final)
			}
		})
	}
}

func TestParseRouteRefusesWhatItCannotRead(t *testing.T) {
	t.Parallel()
	for name, in := range map[string]string{
		"empty":                  "",
		"null path":              "<>",
		"empty domain":           "j@",
		"underscore in domain":   "j@army_ml.com",
		"bad literal":            "j@[999.0.0.1]",
		"unterminated quote":     `"j@army.ml@example.com`,
		"control character":      "j\x01@army.ml",
		"blank outside quotes":   "john doe@army.ml",
		"over 1024 bytes":        strings.Repeat("x", 1100) + "@army.ml",
		"invalid UTF-8":          "j\xff@army.ml",
		"unreadable inner route": "j%army_ml@example.com",
		"endless route":          "j" + strings.Repeat("%example.com", 20) + "@example.com",
		"empty local part":       "@example.com",
	} {
		r, err := ParseRoute(in, localExample)
		if err == nil {
			t.Errorf("%s: ParseRoute(%q) = %+v, want an error", name, in, r)
			continue
		}
		if !strings.HasPrefix(err.Error(), "address: ") {
			t.Errorf("%s: error %q lacks the package prefix", name, err)
		}
	}
}

func TestInternalQuotesWhatPostfixUnquoted(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"j@army.ml":             "j@army.ml",
		"j@army.ml@example.com": `"j@army.ml"@example.com`,
		"john doe@example.com":  `"john doe"@example.com`,
		"j%army.ml@example.com": "j%army.ml@example.com",
		"postmaster":            "postmaster",
		"":                      "",
		"@relay.example.com:j@army.ml@example.com": `@relay.example.com:"j@army.ml"@example.com`,
		"not an address@@":                         "not an address@@",
	} {
		if got := Internal(in); got != want {
			t.Errorf("Internal(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{
		"j@army.ml", "<@relay.example.com:j@army.ml>", "j%army.ml@example.com", "army.ml!j@example.com",
		`"j@army.ml"@example.com`, `j\@army.ml@example.com`, "j@army.ml@example.com", "j@[192.0.2.1]",
		"j%army.ml%example.com@example.com", "a!b!j@example.com", `"j@army.ml"`, "army.ml!j", "postmaster",
		"<>", `"\"@example.com`, "@:", "@a:@b:c@d", "j%@example.com", "!@example.com",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRoute(s, localExample)
		if err != nil {
			if len(r.Hops) != 0 {
				t.Fatalf("ParseRoute(%q) returned hops with error %v", s, err)
			}
			if !strings.HasPrefix(err.Error(), "address: ") {
				t.Fatalf("ParseRoute(%q) error %q lacks prefix", s, err)
			}
			return
		}
		if len(r.Hops) > maxHops {
			t.Fatalf("ParseRoute(%q): %d hops", s, len(r.Hops))
		}
		for i, h := range r.Hops {
			checkDomain(t, s, h)
			if h.Local == "" {
				t.Fatalf("ParseRoute(%q): hop %d has an empty local part", s, i)
			}
			// Every hop but the last is local and routes on.
			if i < len(r.Hops)-1 && (!localExample(h) || !strings.ContainsAny(h.Local, "@!%")) {
				t.Fatalf("ParseRoute(%q): hop %d %q does not route on", s, i, h)
			}
			// A hop reads back as itself.
			back, err := ParseRoute(h.String(), nil)
			if err != nil || len(back.Hops) != 1 || back.Hops[0] != h {
				t.Fatalf("ParseRoute(%q): hop %d %q reads back as %+v, %v", s, i, h.String(), back, err)
			}
		}
		// A final local hop has no route left in its local part.
		if last, ok := r.Final(); ok && localExample(last) && strings.ContainsAny(last.Local, "@!%") {
			t.Fatalf("ParseRoute(%q): final local hop %q still routes", s, last)
		}
	})
}
