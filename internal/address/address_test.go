package address

import (
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want Address
	}{
		{
			name: "plain address is split into local part and domain",
			in:   "john@example.com",
			want: Address{Local: "john", Domain: "example.com", UnicodeDomain: "example.com"},
		},
		{
			name: "upper-case domain is lower-cased",
			in:   "John@EXAMPLE.Com",
			want: Address{Local: "John", Domain: "example.com", UnicodeDomain: "example.com"},
		},
		{
			name: "local part keeps its case",
			in:   "JOHN.Doe@example.com",
			want: Address{Local: "JOHN.Doe", Domain: "example.com", UnicodeDomain: "example.com"},
		},
		{
			name: "one trailing dot is stripped",
			in:   "user@gmail.com.",
			want: Address{Local: "user", Domain: "gmail.com", UnicodeDomain: "gmail.com"},
		},
		{
			name: "surrounding space tab CR LF is trimmed",
			in:   " \t\r\nuser@gmail.com\r\n \t",
			want: Address{Local: "user", Domain: "gmail.com", UnicodeDomain: "gmail.com"},
		},
		{
			name: "angle brackets are removed",
			in:   "<user@gmail.com>",
			want: Address{Local: "user", Domain: "gmail.com", UnicodeDomain: "gmail.com"},
		},
		{
			name: "blanks inside angle brackets are trimmed",
			in:   "< user@gmail.com >",
			want: Address{Local: "user", Domain: "gmail.com", UnicodeDomain: "gmail.com"},
		},
		{
			name: "display name is ignored",
			in:   "John Doe <john@example.com>",
			want: Address{Local: "john", Domain: "example.com", UnicodeDomain: "example.com"},
		},
		{
			name: "quoted display name with comma and angle bracket is ignored",
			in:   `"Doe, John <boss>" <john@example.com>`,
			want: Address{Local: "john", Domain: "example.com", UnicodeDomain: "example.com"},
		},
		{
			name: "last angle-bracket pair wins",
			in:   "a@b.com <john@example.com>",
			want: Address{Local: "john", Domain: "example.com", UnicodeDomain: "example.com"},
		},
		{
			name: "display name with trailing blanks after the bracket",
			in:   "John <john@example.com>  \r\n",
			want: Address{Local: "john", Domain: "example.com", UnicodeDomain: "example.com"},
		},
		{
			name: "quoted local part with at sign",
			in:   `"a@b"@c.com`,
			want: Address{Local: "a@b", Domain: "c.com", UnicodeDomain: "c.com"},
		},
		{
			name: "quoted local part with space",
			in:   `"john doe"@example.com`,
			want: Address{Local: "john doe", Domain: "example.com", UnicodeDomain: "example.com"},
		},
		{
			name: "quoted local part escapes are resolved",
			in:   `"a\"b\\c\d"@example.com`,
			want: Address{Local: `a"b\cd`, Domain: "example.com", UnicodeDomain: "example.com"},
		},
		{
			name: "quoted local part with angle brackets inside angle brackets",
			in:   `Name <"a>b<c"@example.com>`,
			want: Address{Local: "a>b<c", Domain: "example.com", UnicodeDomain: "example.com"},
		},
		{
			name: "quoted local part without specials",
			in:   `"john"@example.com`,
			want: Address{Local: "john", Domain: "example.com", UnicodeDomain: "example.com"},
		},
		{
			name: "consecutive and edge dots in local part are accepted leniently",
			in:   ".a..b.@example.com",
			want: Address{Local: ".a..b.", Domain: "example.com", UnicodeDomain: "example.com"},
		},
		{
			name: "atext specials in local part",
			in:   "a+tag!#$%&'*/=?^_`{|}~-@example.com",
			want: Address{Local: "a+tag!#$%&'*/=?^_`{|}~-", Domain: "example.com", UnicodeDomain: "example.com"},
		},
		{
			name: "UTF-8 local part (SMTPUTF8)",
			in:   "用户@例子.广告",
			want: Address{Local: "用户", Domain: "xn--fsqu00a.xn--4rr70v", UnicodeDomain: "例子.广告"},
		},
		{
			name: "single-label domain is valid syntax",
			in:   "user@localhost",
			want: Address{Local: "user", Domain: "localhost", UnicodeDomain: "localhost"},
		},
		{
			name: "digits-only labels are valid",
			in:   "user@123.456",
			want: Address{Local: "user", Domain: "123.456", UnicodeDomain: "123.456"},
		},
		{
			name: "inner hyphens are valid",
			in:   "user@my-mail.co-op.example",
			want: Address{Local: "user", Domain: "my-mail.co-op.example", UnicodeDomain: "my-mail.co-op.example"},
		},
		{
			name: "double hyphen in the middle of an LDH label is accepted",
			in:   "user@r3---sn-abc.example",
			want: Address{Local: "user", Domain: "r3---sn-abc.example", UnicodeDomain: "r3---sn-abc.example"},
		},
		{
			name: "63-octet label is the maximum",
			in:   "user@" + strings.Repeat("a", 63) + ".com",
			want: Address{Local: "user", Domain: strings.Repeat("a", 63) + ".com", UnicodeDomain: strings.Repeat("a", 63) + ".com"},
		},
		{
			name: "253-octet domain is the maximum",
			in:   "user@" + domainOfLen(253),
			want: Address{Local: "user", Domain: domainOfLen(253), UnicodeDomain: domainOfLen(253)},
		},
		{
			name: "253-octet domain with trailing dot",
			in:   "user@" + domainOfLen(253) + ".",
			want: Address{Local: "user", Domain: domainOfLen(253), UnicodeDomain: domainOfLen(253)},
		},
		{
			name: "homoglyph Cyrillic a is converted to punycode and parses",
			in:   "user@gmаil.com",
			want: Address{Local: "user", Domain: "xn--gmil-63d.com", UnicodeDomain: "gmаil.com"},
		},
		{
			name: "punycode homoglyph domain parses and decodes for display",
			in:   "user@xn--gmil-63d.com",
			want: Address{Local: "user", Domain: "xn--gmil-63d.com", UnicodeDomain: "gmаil.com"},
		},
		{
			name: "upper-case punycode is lower-cased",
			in:   "user@XN--GMIL-63D.COM",
			want: Address{Local: "user", Domain: "xn--gmil-63d.com", UnicodeDomain: "gmаil.com"},
		},
		{
			name: "Cyrillic domain and TLD",
			in:   "user@яндекс.рф",
			want: Address{Local: "user", Domain: "xn--d1acpjx3f.xn--p1ai", UnicodeDomain: "яндекс.рф"},
		},
		{
			name: "upper-case Cyrillic is lower-cased",
			in:   "user@ЯНДЕКС.РФ",
			want: Address{Local: "user", Domain: "xn--d1acpjx3f.xn--p1ai", UnicodeDomain: "яндекс.рф"},
		},
		{
			name: "Latin with tilde",
			in:   "user@españa.com",
			want: Address{Local: "user", Domain: "xn--espaa-rta.com", UnicodeDomain: "españa.com"},
		},
		{
			name: "decomposed n with combining tilde is NFC-normalised",
			in:   "user@espan\u0303a.com",
			want: Address{Local: "user", Domain: "xn--espaa-rta.com", UnicodeDomain: "españa.com"},
		},
		{
			name: "upper-case Latin with tilde",
			in:   "user@ESPAÑA.COM",
			want: Address{Local: "user", Domain: "xn--espaa-rta.com", UnicodeDomain: "españa.com"},
		},
		{
			name: "fullwidth letters and full stop map to ASCII",
			in:   "user@ｇｍａｉｌ．ｃｏｍ",
			want: Address{Local: "user", Domain: "gmail.com", UnicodeDomain: "gmail.com"},
		},
		{
			name: "fullwidth upper-case letters map to lower-case ASCII",
			in:   "user@ＧＭＡＩＬ.ＣＯＭ",
			want: Address{Local: "user", Domain: "gmail.com", UnicodeDomain: "gmail.com"},
		},
		{
			name: "ideographic full stop separates labels",
			in:   "user@例子。广告",
			want: Address{Local: "user", Domain: "xn--fsqu00a.xn--4rr70v", UnicodeDomain: "例子.广告"},
		},
		{
			name: "trailing ideographic full stop is stripped like a dot",
			in:   "user@例子。",
			want: Address{Local: "user", Domain: "xn--fsqu00a", UnicodeDomain: "例子"},
		},
		{
			name: "sharp s is kept (non-transitional IDNA 2008)",
			in:   "user@faß.de",
			want: Address{Local: "user", Domain: "xn--fa-hia.de", UnicodeDomain: "faß.de"},
		},
		{
			name: "right-to-left domain",
			in:   "user@مثال.إختبار",
			want: Address{Local: "user", Domain: "xn--mgbh0fb.xn--kgbechtv", UnicodeDomain: "مثال.إختبار"},
		},
		{
			name: "upper-case ACE prefix and punycode are lower-cased",
			in:   "user@XN--A-SFA.COM",
			want: Address{Local: "user", Domain: "xn--a-sfa.com", UnicodeDomain: "aà.com"},
		},
		{
			name: "emoji domain is valid under UTS #46 lookup",
			in:   "user@\U0001F4A9.la",
			want: Address{Local: "user", Domain: "xn--ls8h.la", UnicodeDomain: "\U0001F4A9.la"},
		},
		{
			name: "IPv4 address literal",
			in:   "user@[192.0.2.1]",
			want: Address{Local: "user", Domain: "[192.0.2.1]", UnicodeDomain: "[192.0.2.1]", Literal: true},
		},
		{
			name: "IPv6 address literal is canonicalised",
			in:   "user@[IPv6:2001:DB8:0:0:0:0:0:1]",
			want: Address{Local: "user", Domain: "[IPv6:2001:db8::1]", UnicodeDomain: "[IPv6:2001:db8::1]", Literal: true},
		},
		{
			name: "IPv6 tag is case-insensitive",
			in:   "user@[ipv6:::1]",
			want: Address{Local: "user", Domain: "[IPv6:::1]", UnicodeDomain: "[IPv6:::1]", Literal: true},
		},
		{
			name: "IPv4-mapped IPv6 literal",
			in:   "<user@[IPv6:::ffff:192.0.2.1]>",
			want: Address{Local: "user", Domain: "[IPv6:::ffff:192.0.2.1]", UnicodeDomain: "[IPv6:::ffff:192.0.2.1]", Literal: true},
		},
		{
			name: "local part of 256 octets is accepted",
			in:   strings.Repeat("a", 256) + "@example.com",
			want: Address{Local: strings.Repeat("a", 256), Domain: "example.com", UnicodeDomain: "example.com"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("Parse(%q)\n got %#v\nwant %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		wantErr string // substring of the error message
	}{
		{name: "empty input", in: "", wantErr: "empty address"},
		{name: "blank input", in: " \t\r\n", wantErr: "empty address"},
		{name: "empty angle brackets (null path)", in: "<>", wantErr: "empty address"},
		{name: "10 kB line is too long", in: strings.Repeat("a", 10*1024) + "@example.com", wantErr: "address too long"},
		{name: "1025 bytes is too long", in: strings.Repeat("a", 1013) + "@example.com", wantErr: "address too long"},
		{name: "invalid UTF-8 in local part", in: "a\xffb@example.com", wantErr: "invalid UTF-8"},
		{name: "invalid UTF-8 in domain", in: "ab@exa\xc3mple.com", wantErr: "invalid UTF-8"},
		{name: "no at sign", in: "john.example.com", wantErr: "missing '@'"},
		{name: "no at sign after quoted local part", in: `"john"`, wantErr: "missing '@'"},
		{name: "empty local part", in: "@example.com", wantErr: "empty local part"},
		{name: "empty quoted local part", in: `""@example.com`, wantErr: "empty local part"},
		{name: "empty domain", in: "john@", wantErr: "empty domain"},
		{name: "domain of only a dot", in: "john@.", wantErr: "empty domain"},
		{name: "two unquoted at signs", in: "a@b@c", wantErr: "more than one '@'"},
		{name: "at sign after quoted local part and domain", in: `"a@b"@c@d.com`, wantErr: "more than one '@'"},
		{name: "unterminated quote", in: `"john@example.com`, wantErr: "unterminated quote"},
		{name: "unterminated quote ending in backslash", in: `"john\`, wantErr: "unterminated quote"},
		{name: "unterminated quote in display name", in: `"John <john@example.com>`, wantErr: "unterminated quote"},
		{name: "text between quoted local part and at sign", in: `"john"x@example.com`, wantErr: "must be followed by '@'"},
		{name: "control character in quoted local part", in: "\"jo\x01hn\"@example.com", wantErr: "invalid character '\\x01' in quoted local part"},
		{name: "escaped NUL in quoted local part", in: "\"jo\\\x00hn\"@example.com", wantErr: "in quoted local part"},
		{name: "space in unquoted local part", in: "john doe@example.com", wantErr: "invalid character ' ' in local part"},
		{name: "tab in unquoted local part", in: "john\tdoe@example.com", wantErr: "invalid character '\\t' in local part"},
		{name: "NUL in unquoted local part", in: "jo\x00hn@example.com", wantErr: "invalid character '\\x00' in local part"},
		{name: "DEL in unquoted local part", in: "jo\x7fhn@example.com", wantErr: "invalid character '\\x7f' in local part"},
		{name: "C1 control in unquoted local part", in: "jo\u0085hn@example.com", wantErr: "in local part"},
		{name: "no-break space in unquoted local part", in: "jo\u00a0hn@example.com", wantErr: "in local part"},
		{name: "comma in unquoted local part", in: "jo,hn@example.com", wantErr: "invalid character ',' in local part"},
		{name: "backslash in unquoted local part", in: `jo\hn@example.com`, wantErr: `invalid character '\\' in local part`},
		{name: "quote inside unquoted local part", in: `jo"hn@example.com`, wantErr: "invalid character '\"' in local part"},
		{name: "local part over 256 octets", in: strings.Repeat("a", 257) + "@example.com", wantErr: "local part too long"},
		{name: "quoted local part over 256 octets", in: `"` + strings.Repeat("a", 257) + `"@example.com`, wantErr: "local part too long"},
		{name: "missing closing angle bracket", in: "John <john@example.com", wantErr: "missing closing '>'"},
		{name: "text after closing angle bracket", in: "<john@example.com> x", wantErr: "unexpected text after '>'"},
		{name: "consecutive dots in domain", in: "a@b..com", wantErr: "empty label"},
		{name: "leading dot in domain", in: "a@.com", wantErr: "empty label"},
		{name: "two trailing dots", in: "a@b.com..", wantErr: "empty label"},
		{name: "consecutive fullwidth full stops", in: "a@b．．com", wantErr: "empty label"},
		{name: "underscore in domain", in: "a@my_host.com", wantErr: "invalid character '_' in domain"},
		{name: "fullwidth underscore in domain", in: "a@my＿host.com", wantErr: "in domain"},
		{name: "space in domain", in: "a@exa mple.com", wantErr: "invalid character ' ' in domain"},
		{name: "ideographic space in domain", in: "a@exa\u3000mple.com", wantErr: "in domain"},
		{name: "bracket inside domain", in: "a@exa[mple.com", wantErr: "invalid character '[' in domain"},
		{name: "label starting with hyphen", in: "a@-example.com", wantErr: "starts or ends with '-'"},
		{name: "label ending with hyphen", in: "a@example-.com", wantErr: "starts or ends with '-'"},
		{name: "TLD ending with hyphen", in: "a@example.co-", wantErr: "starts or ends with '-'"},
		{name: "Unicode label starting with hyphen", in: "a@-ñ.com", wantErr: "starts or ends with '-'"},
		{name: "64-octet label is too long", in: "a@" + strings.Repeat("a", 64) + ".com", wantErr: "too long"},
		{name: "Unicode label over 63 octets in ASCII form", in: "a@" + strings.Repeat("ñ", 60) + ".com", wantErr: "too long"},
		{name: "254-octet domain is too long", in: "a@" + domainOfLen(254), wantErr: "domain too long"},
		{name: "punycode that does not decode", in: "a@xn--zzzzzzzzzzz.com", wantErr: "invalid punycode"},
		{name: "punycode decoding to ASCII only", in: "a@xn--abc-.com", wantErr: "invalid punycode"},
		{name: "bare ACE prefix", in: "a@xn--.com", wantErr: "invalid punycode"},
		{name: "punycode of a disallowed upper-case letter", in: "a@xn--a-yda.com", wantErr: "invalid domain label"},
		{name: "zero-width joiner outside its context", in: "a@a\u200db.com", wantErr: "invalid domain label"},
		{name: "mixed-direction label violates Bidi rule", in: "a@aمثال.com", wantErr: "invalid domain label"},
		{name: "C1 control character in domain", in: "a@exa\u0080mple.com", wantErr: "disallowed character U+0080 in domain"},
		{name: "noncharacter in domain", in: "a@exa\uFFFFmple.com", wantErr: "in domain"},
		{name: "invalid IPv4 literal", in: "a@[192.0.2.256]", wantErr: "invalid address literal"},
		{name: "IPv4 literal with leading zero", in: "a@[192.0.2.01]", wantErr: "invalid address literal"},
		{name: "IPv6 without tag", in: "a@[2001:db8::1]", wantErr: "unsupported address literal"},
		{name: "invalid IPv6 literal", in: "a@[IPv6:2001:db8:::1]", wantErr: "invalid address literal"},
		{name: "IPv6 literal with zone", in: "a@[IPv6:fe80::1%eth0]", wantErr: "invalid address literal"},
		{name: "IPv4 address under IPv6 tag", in: "a@[IPv6:192.0.2.1]", wantErr: "invalid address literal"},
		{name: "general address literal", in: "a@[x400:foo]", wantErr: "unsupported address literal"},
		{name: "empty literal", in: "a@[]", wantErr: "invalid address literal"},
		{name: "unterminated literal", in: "a@[192.0.2.1", wantErr: "unterminated address literal"},
		{name: "trailing dot after literal", in: "a@[192.0.2.1].", wantErr: "unexpected text after address literal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %#v, want error containing %q", tt.in, got, tt.wantErr)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "address: ") {
				t.Errorf("Parse(%q) error %q lacks the %q prefix", tt.in, msg, "address: ")
			}
			if !strings.Contains(msg, tt.wantErr) {
				t.Errorf("Parse(%q) error %q, want it to contain %q", tt.in, msg, tt.wantErr)
			}
			if got != (Address{}) {
				t.Errorf("Parse(%q) returned non-zero Address %#v with error", tt.in, got)
			}
		})
	}
}

// TestParseErrorIsShort checks that errors never echo more than about 100
// bytes of the input, however long or odd the input is.
func TestParseErrorIsShort(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("ñ", 300)
	tests := []struct {
		name string
		in   string
	}{
		{name: "long Unicode label", in: "a@" + long + ".com"},
		{name: "long ASCII label", in: "a@" + strings.Repeat("b", 500) + ".com"},
		{name: "long invalid punycode label", in: "a@xn--" + strings.Repeat("9", 500) + ".com"},
		{name: "long label with disallowed joiner", in: "a@" + long + "\u200d.com"},
		{name: "long Bidi-violating label", in: "a@a" + strings.Repeat("م", 300) + ".com"},
		{name: "long label ending in hyphen", in: "a@" + strings.Repeat("b", 500) + "-.com"},
		{name: "long local part", in: strings.Repeat("x", 900) + "@b.com"},
		{name: "long input", in: strings.Repeat("x", 5000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q...) succeeded, want error", tt.in[:20])
			}
			if n := len(err.Error()); n > 140 {
				t.Errorf("error is %d bytes long: %q", n, err)
			}
		})
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "plain address is unchanged", in: "john@example.com", want: "john@example.com"},
		{name: "display name and brackets are dropped and domain lower-cased", in: "John <John@Example.COM.>", want: "John@example.com"},
		{name: "unneeded quotes are dropped", in: `"john"@example.com`, want: "john@example.com"},
		{name: "quotes are kept for a space", in: `"john doe"@example.com`, want: `"john doe"@example.com`},
		{name: "quotes are kept for an at sign", in: `"a@b"@c.com`, want: `"a@b"@c.com`},
		{name: "quote and backslash are escaped again", in: `"a\"b\\c"@example.com`, want: `"a\"b\\c"@example.com`},
		{name: "unnecessary escapes are dropped", in: `"a\b"@example.com`, want: `ab@example.com`},
		{name: "Unicode domain is written as punycode", in: "user@gmаil.com", want: "user@xn--gmil-63d.com"},
		{name: "UTF-8 local part is kept", in: "usér@example.com", want: "usér@example.com"},
		{name: "IPv6 literal", in: "user@[IPv6:2001:db8::1]", want: "user@[IPv6:2001:db8::1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tt.in, err)
			}
			if got := a.String(); got != tt.want {
				t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got, tt.want)
			}
			b, err := Parse(a.String())
			if err != nil {
				t.Fatalf("Parse(%q) (round trip) error: %v", a.String(), err)
			}
			if b != a {
				t.Errorf("round trip changed the address:\n got %#v\nwant %#v", b, a)
			}
		})
	}
}

func TestWithDomain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     string
		domain string
		want   string
	}{
		{name: "suggested domain replaces the typo", in: "john@gmial.com", domain: "gmail.com", want: "john@gmail.com"},
		{name: "homoglyph domain gets the ASCII suggestion", in: "john@gmаil.com", domain: "gmail.com", want: "john@gmail.com"},
		{name: "quoted local part stays quoted", in: `"john doe"@gmial.com`, domain: "gmail.com", want: `"john doe"@gmail.com`},
		{name: "escapes are kept", in: `"a\"b"@gmial.com`, domain: "gmail.com", want: `"a\"b"@gmail.com`},
		{name: "domain is used as given, e.g. a U-label for display", in: "john@yandex.ru", domain: "яндекс.рф", want: "john@яндекс.рф"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tt.in, err)
			}
			got := a.WithDomain(tt.domain)
			if got != tt.want {
				t.Errorf("WithDomain(%q) = %q, want %q", tt.domain, got, tt.want)
			}
			b, err := Parse(got)
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", got, err)
			}
			if b.Local != a.Local {
				t.Errorf("local part changed: got %q, want %q", b.Local, a.Local)
			}
		})
	}
}

// TestStringQuotesZeroAndOddLocalParts checks String on Address values not
// produced by Parse.
func TestStringQuotesZeroAndOddLocalParts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a    Address
		want string
	}{
		{name: "zero Address does not panic", a: Address{}, want: `""@`},
		{name: "local part with tab is quoted", a: Address{Local: "a\tb", Domain: "x.com"}, want: "\"a\tb\"@x.com"},
		{name: "local part with brackets is quoted", a: Address{Local: "<a>", Domain: "x.com"}, want: `"<a>"@x.com`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.a.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

// domainOfLen returns a valid ASCII domain of exactly n octets (n >= 3).
func domainOfLen(n int) string {
	var b strings.Builder
	for b.Len() < n {
		rest := n - b.Len()
		if b.Len() > 0 {
			b.WriteByte('.')
			rest--
		}
		l := min(rest, 63)
		if rest-l == 1 { // avoid leaving room for only a dot
			l--
		}
		b.WriteString(strings.Repeat("a", l))
	}
	return b.String()
}

func BenchmarkParse(b *testing.B) {
	inputs := []string{
		"john@example.com",
		"John Doe <John.Doe@Example.COM.>",
		`"john doe"@example.com`,
		"user@gmаil.com",
		"user@xn--gmil-63d.com",
		"user@яндекс.рф",
		"user@[IPv6:2001:db8::1]",
		"a@b@c",
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_, _ = Parse(inputs[i%len(inputs)])
	}
}
