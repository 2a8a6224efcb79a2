package address

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Limits.
const (
	maxInputLen  = 1024 // whole input, in bytes, before any trimming
	maxLocalLen  = 256  // local part after unquoting; lenient (RFC 5321 says 64)
	maxDomainLen = 253  // ASCII form, without the trailing dot
	maxLabelLen  = 63   // ASCII form
	maxErrSnip   = 40   // at most this many bytes of input are quoted in an error
)

// Address is a parsed and normalised e-mail address.
type Address struct {
	Local         string // local part as given (quotes removed from a quoted local part; escapes resolved)
	Domain        string // ASCII (A-label / punycode) form, lower case, no trailing dot; for literals the literal text incl brackets
	UnicodeDomain string // U-label form for display (equal to Domain when all ASCII)
	Literal       bool   // domain is an address literal like [192.0.2.1] or [IPv6:...]
}

// profile converts domains to their ASCII form for lookup: UTS #46 mapping
// (case folding, width mapping, NFC), STD3 rules, label validation, the
// Bidi rule, the ContextJ joiner rules, and non-transitional (IDNA 2008)
// processing of ß, ς, ZWJ and ZWNJ.
//
// Hyphen checks are switched off here and done by checkLabel instead, which
// gives a clearer message and, leniently, accepts plain LDH labels with "--"
// in the third and fourth position (such as "r3---sn-abc").
var profile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.Transitional(false),
	idna.CheckHyphens(false),
)

// errorf builds an error with the package prefix.
func errorf(format string, args ...any) error {
	return fmt.Errorf("address: "+format, args...)
}

// Errors without arguments.
var (
	errEmpty           = errors.New("address: empty address")
	errTooLong         = errors.New("address: address too long")
	errInvalidUTF8     = errors.New("address: invalid UTF-8")
	errUnterminated    = errors.New("address: unterminated quote")
	errNoCloseAngle    = errors.New("address: missing closing '>'")
	errAfterAngle      = errors.New("address: unexpected text after '>'")
	errNoAt            = errors.New("address: missing '@'")
	errManyAt          = errors.New("address: more than one '@'")
	errEmptyLocal      = errors.New("address: empty local part")
	errLocalTooLong    = errors.New("address: local part too long")
	errAfterQuote      = errors.New("address: quoted local part must be followed by '@'")
	errEmptyDomain     = errors.New("address: empty domain")
	errDomainTooLong   = errors.New("address: domain too long")
	errEmptyLabel      = errors.New("address: empty label in domain")
	errBadLiteral      = errors.New("address: invalid address literal")
	errUnsupportedLit  = errors.New("address: unsupported address literal")
	errUnterminatedLit = errors.New("address: unterminated address literal")
	errAfterLiteral    = errors.New("address: unexpected text after address literal")
)

// Parse parses s as a single e-mail address and normalises it.
//
// Accepted forms are "local@domain", "<local@domain>" and
// "Display Name <local@domain>" (the part inside the last <...> is used),
// with surrounding spaces, tabs, CRs and LFs ignored. The local part may be
// quoted ("john doe"@example.com) and may contain UTF-8 (SMTPUTF8). The
// domain may be a host name in ASCII or Unicode, or an address literal.
func Parse(s string) (Address, error) {
	if len(s) > maxInputLen {
		return Address{}, errTooLong
	}
	if !utf8.ValidString(s) {
		return Address{}, errInvalidUTF8
	}
	s = trimSpace(s)
	if s == "" {
		return Address{}, errEmpty
	}
	s, err := stripAngle(s)
	if err != nil {
		return Address{}, err
	}
	if s == "" {
		return Address{}, errEmpty
	}

	local, domain, err := splitLocal(s)
	if err != nil {
		return Address{}, err
	}
	return hopAddress(local, domain)
}

// String returns the address as Local@Domain with the ASCII domain, quoting
// the local part if it contains characters that are not allowed unquoted.
func (a Address) String() string {
	return a.WithDomain(a.Domain)
}

// WithDomain returns the address with the same local part at domain d, for
// example to show a suggested correction. d is used as given; pass a
// normalised domain (such as another Address's Domain or UnicodeDomain).
func (a Address) WithDomain(d string) string {
	return quoteLocal(a.Local) + "@" + d
}

// trimSpace removes surrounding spaces, tabs, CRs and LFs.
func trimSpace(s string) string {
	return strings.Trim(s, " \t\r\n")
}

// stripAngle returns the address inside the last unquoted <...> of s, or s
// itself if s contains no unquoted '<'. Text before the '<' is a display
// name and is ignored; text after the matching '>' must be blank.
func stripAngle(s string) (string, error) {
	open, closing := -1, -1
	inQuote := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inQuote {
			switch c {
			case '\\':
				i++ // skip the escaped byte; continuation bytes are never ASCII
			case '"':
				inQuote = false
			}
			continue
		}
		switch c {
		case '"':
			inQuote = true
		case '<':
			open, closing = i, -1
		case '>':
			if open >= 0 && closing < 0 {
				closing = i
			}
		}
	}
	if open < 0 {
		// No angle brackets; a stray quote is reported by splitLocal.
		return s, nil
	}
	if inQuote {
		return "", errUnterminated
	}
	if closing < 0 {
		return "", errNoCloseAngle
	}
	if trimSpace(s[closing+1:]) != "" {
		return "", errAfterAngle
	}
	return trimSpace(s[open+1 : closing]), nil
}

// splitLocal splits s into the (unquoted) local part and the raw domain.
func splitLocal(s string) (local, domain string, err error) {
	if strings.HasPrefix(s, `"`) {
		local, rest, err := parseQuoted(s)
		if err != nil {
			return "", "", err
		}
		if rest == "" {
			return "", "", errNoAt
		}
		if rest[0] != '@' {
			return "", "", errAfterQuote
		}
		domain = rest[1:]
		if local == "" {
			return "", "", errEmptyLocal
		}
		if len(local) > maxLocalLen {
			return "", "", errLocalTooLong
		}
		if strings.Contains(domain, "@") {
			return "", "", errManyAt
		}
		return local, domain, nil
	}

	at := strings.IndexByte(s, '@')
	if at < 0 {
		return "", "", errNoAt
	}
	local, domain = s[:at], s[at+1:]
	if local == "" {
		return "", "", errEmptyLocal
	}
	if strings.Contains(domain, "@") {
		return "", "", errManyAt
	}
	if len(local) > maxLocalLen {
		return "", "", errLocalTooLong
	}
	for _, r := range local {
		if !unquotedLocalOK(r) {
			return "", "", errorf("invalid character %q in local part", r)
		}
	}
	return local, domain, nil
}

// parseQuoted parses the quoted string at the start of s (s[0] == '"') and
// returns its content with escapes resolved and the rest of s after the
// closing quote.
func parseQuoted(s string) (content, rest string, err error) {
	var b strings.Builder
	for i := 1; i < len(s); {
		c := s[i]
		switch c {
		case '"':
			return b.String(), s[i+1:], nil
		case '\\':
			i++
			if i >= len(s) {
				return "", "", errUnterminated
			}
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if !quotedLocalOK(r) {
			return "", "", errorf("invalid character %q in quoted local part", r)
		}
		b.WriteRune(r)
		i += size
	}
	return "", "", errUnterminated
}

// specials are the characters that may appear in a local part only when it
// is quoted.
const specials = `"(),:;<>@[\]`

// unquotedLocalOK reports whether r may appear in an unquoted local part:
// any printable, non-space character except the specials. Dots are allowed
// anywhere (leniently, since real mail logs contain "a..b@x").
func unquotedLocalOK(r rune) bool {
	if r == utf8.RuneError || isControl(r) || unicode.IsSpace(r) {
		return false
	}
	return !strings.ContainsRune(specials, r)
}

// quotedLocalOK reports whether r may appear (possibly escaped) inside a
// quoted local part: anything except control characters; space and tab are
// allowed.
func quotedLocalOK(r rune) bool {
	if r == '\t' {
		return true
	}
	return r != utf8.RuneError && !isControl(r)
}

// isControl reports C0 and C1 control characters and DEL.
func isControl(r rune) bool {
	return r < 0x20 || r == 0x7f || unicode.IsControl(r)
}

// quoteLocal returns local as it must be written in an address: unchanged
// if every character is allowed unquoted, otherwise in double quotes with
// '"' and '\' escaped.
func quoteLocal(local string) string {
	needs := local == ""
	for _, r := range local {
		if !unquotedLocalOK(r) {
			needs = true
			break
		}
	}
	if !needs {
		return local
	}
	var b strings.Builder
	b.Grow(len(local) + 2)
	b.WriteByte('"')
	for _, r := range local {
		if r == '"' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// parseLiteral validates an address literal ("[192.0.2.1]" or
// "[IPv6:2001:db8::1]") and returns its canonical text, brackets included.
func parseLiteral(d string) (string, error) {
	if len(d) < 2 || d[len(d)-1] != ']' {
		if strings.Contains(d, "]") {
			return "", errAfterLiteral
		}
		return "", errUnterminatedLit
	}
	inner := d[1 : len(d)-1]
	const v6 = "IPv6:"
	if len(inner) >= len(v6) && strings.EqualFold(inner[:len(v6)], v6) {
		ip, err := netip.ParseAddr(inner[len(v6):])
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return "", errBadLiteral
		}
		return "[" + v6 + ip.String() + "]", nil
	}
	if strings.ContainsRune(inner, ':') {
		// General-address-literal (RFC 5321 section 4.1.3): "tag:content".
		return "", errUnsupportedLit
	}
	ip, err := netip.ParseAddr(inner)
	if err != nil || !ip.Is4() {
		return "", errBadLiteral
	}
	return "[" + ip.String() + "]", nil
}

// normalizeDomain converts a host name to its lower-case ASCII form without
// the trailing dot and checks it strictly.
func normalizeDomain(d string) (string, error) {
	// Reject ASCII characters that can never be part of a host name before
	// IDNA processing, for a clearer message.
	for i := 0; i < len(d); i++ {
		if c := d[i]; c < utf8.RuneSelf && !isLDH(c) && c != '.' {
			return "", errorf("invalid character %q in domain", rune(c))
		}
	}
	// Catch "xn--" labels that do not decode before IDNA processing, whose
	// error would not say so.
	for label := range strings.SplitSeq(d, ".") {
		if len(label) >= 4 && strings.EqualFold(label[:4], "xn--") && isASCII(label) {
			if u, err := idna.Punycode.ToUnicode(strings.ToLower(label)); err != nil || u == "" || isASCII(u) {
				return "", errorf("invalid punycode label %q", clip(label))
			}
		}
	}
	// Fast path: plain LDH ASCII without punycode needs no IDNA mapping,
	// only lower-casing (what the mapping would do to it).
	ascii, plain := plainLower(d)
	if !plain {
		var err error
		if ascii, err = profile.ToASCII(d); err != nil {
			return "", idnaError(err)
		}
	}
	// Strip one trailing dot. This is done after mapping so that a trailing
	// ideographic or fullwidth full stop counts as well.
	ascii = strings.TrimSuffix(ascii, ".")
	if ascii == "" {
		return "", errEmptyDomain
	}
	if len(ascii) > maxDomainLen {
		return "", errDomainTooLong
	}
	for label := range strings.SplitSeq(ascii, ".") {
		if err := checkLabel(label); err != nil {
			return "", err
		}
	}
	return ascii, nil
}

// checkLabel checks one ASCII label: non-empty, at most 63 octets, only
// lower-case letters, digits and hyphens, no hyphen at either end, and a
// "xn--" label must be canonical punycode for a non-ASCII U-label.
func checkLabel(label string) error {
	if label == "" {
		return errEmptyLabel
	}
	if len(label) > maxLabelLen {
		return errorf("domain label %q too long (%d octets, max %d)", clip(label), len(label), maxLabelLen)
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if !isLDH(c) || ('A' <= c && c <= 'Z') {
			return errorf("invalid character %q in domain", rune(c))
		}
	}
	if label[0] == '-' || label[len(label)-1] == '-' {
		return errorf("domain label %q starts or ends with '-'", clip(label))
	}
	if strings.HasPrefix(label, "xn--") {
		u, err := idna.Punycode.ToUnicode(label)
		if err != nil || u == "" || isASCII(u) {
			return errorf("invalid punycode label %q", clip(label))
		}
		if u[0] == '-' || u[len(u)-1] == '-' {
			return errorf("domain label %q starts or ends with '-'", clip(u))
		}
		if back, err := idna.Punycode.ToASCII(u); err != nil || back != label {
			return errorf("invalid punycode label %q", clip(label))
		}
	}
	return nil
}

// idnaError turns an error from the idna package into a short error that
// quotes at most a clipped fragment of the input.
func idnaError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "idna: ")
	if quoted, ok := strings.CutPrefix(msg, "invalid label "); ok {
		if label, err := strconv.Unquote(quoted); err == nil {
			return errorf("invalid domain label %q (IDNA)", clip(label))
		}
		return errorf("invalid domain label (IDNA)")
	}
	if r, ok := strings.CutPrefix(msg, "disallowed rune "); ok {
		return errorf("disallowed character %s in domain", clip(r))
	}
	return errorf("invalid domain (IDNA): %s", clip(msg))
}

func isLDH(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-'
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// clip shortens s to at most maxErrSnip bytes on a rune boundary, marking
// the cut with "...".
func clip(s string) string {
	if len(s) <= maxErrSnip {
		return s
	}
	n := maxErrSnip
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// plainLower returns d lower-cased and true when d is only ASCII letters,
// digits, hyphens and dots and holds no punycode label.
func plainLower(d string) (string, bool) {
	upper := false
	for i := 0; i < len(d); i++ {
		c := d[i]
		switch {
		case 'A' <= c && c <= 'Z':
			upper = true
		case c >= utf8.RuneSelf || (!isLDH(c) && c != '.'):
			return "", false
		}
	}
	lower := d
	if upper {
		lower = strings.ToLower(d)
	}
	if strings.Contains(lower, "xn--") {
		return "", false
	}
	return lower, true
}
