package address

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"john@example.com",
		"John@EXAMPLE.COM.",
		"John Doe <john@example.com>",
		`"Doe, John" <john@example.com>`,
		`"a@b"@c.com`,
		`"john doe"@example.com`,
		`"a\"b\\c"@example.com`,
		"a@b@c",
		"a..b@x.com",
		"user@gmаil.com",
		"user@xn--gmil-63d.com",
		"user@яндекс.рф",
		"user@españa.com",
		"user@ｇｍａｉｌ．ｃｏｍ",
		"user@例子。广告。",
		"user@[192.0.2.1]",
		"user@[IPv6:2001:db8::1]",
		"user@localhost",
		"a@my_host.com",
		"a@-a.com",
		"a@xn--abc-.com",
		"a@b..com",
		"",
		"<>",
		"a\xff@b.com",
		"用户@例子.广告",
		"a@مثال.إختبار",
		"a@faß.de",
		"a@ΣΊΣΥΦΟΣ.gr",
		"a@क्\u200dष.in",
		"a@\u0627\u0661.eg",
		"a@\u05d0\u05d1-1.il",
		"a@xn--a-yda.com",
		"a@b\u3002c\uff0ed\uff61",
		"a@\u2488.com",
		"a@\U0001F4A9.la",
		"\"\t\"@x.y",
		"a@[IPv6:::ffff:192.0.2.1]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s)
		if err != nil {
			if a != (Address{}) {
				t.Fatalf("Parse(%q) returned %#v with error %v", s, a, err)
			}
			if !strings.HasPrefix(err.Error(), "address: ") {
				t.Fatalf("Parse(%q) error %q lacks prefix", s, err)
			}
			return
		}
		checkDomain(t, s, a)
		if a.Local == "" || len(a.Local) > maxLocalLen || !utf8.ValidString(a.Local) {
			t.Fatalf("Parse(%q): bad Local %q", s, a.Local)
		}
		str := a.String()
		b, err := Parse(str)
		if err != nil {
			t.Fatalf("Parse(%q) = %#v, but Parse(String() = %q) failed: %v", s, a, str, err)
		}
		if b.Domain != a.Domain {
			t.Fatalf("round trip changed Domain: Parse(%q).Domain = %q, Parse(%q).Domain = %q", s, a.Domain, str, b.Domain)
		}
		if !a.Literal {
			// The display form must lead back to the same ASCII domain.
			u := a.WithDomain(a.UnicodeDomain)
			c, err := Parse(u)
			if err != nil {
				t.Fatalf("Parse(%q) = %#v, but Parse(WithDomain(UnicodeDomain) = %q) failed: %v", s, a, u, err)
			}
			if c.Domain != a.Domain {
				t.Fatalf("UnicodeDomain round trip changed Domain: %q -> %q", a.Domain, c.Domain)
			}
		}
		if b != a {
			t.Fatalf("round trip changed address: Parse(%q) = %#v, Parse(%q) = %#v", s, a, str, b)
		}
	})
}

func checkDomain(t *testing.T, s string, a Address) {
	t.Helper()
	d := a.Domain
	if d == "" || len(d) > maxDomainLen {
		t.Fatalf("Parse(%q): bad Domain length %d: %q", s, len(d), d)
	}
	if a.UnicodeDomain == "" {
		t.Fatalf("Parse(%q): empty UnicodeDomain", s)
	}
	if a.Literal {
		if d[0] != '[' || d[len(d)-1] != ']' || a.UnicodeDomain != d {
			t.Fatalf("Parse(%q): bad literal %q / %q", s, d, a.UnicodeDomain)
		}
		return
	}
	if strings.HasSuffix(d, ".") {
		t.Fatalf("Parse(%q): Domain %q has a trailing dot", s, d)
	}
	for i := 0; i < len(d); i++ {
		c := d[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			t.Fatalf("Parse(%q): Domain %q is not lower-case LDH ASCII", s, d)
		}
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > maxLabelLen || label[0] == '-' || label[len(label)-1] == '-' {
			t.Fatalf("Parse(%q): Domain %q has a bad label %q", s, d, label)
		}
	}
}
