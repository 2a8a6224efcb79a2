package address

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxHops bounds how often a route is rewritten (Postfix has no bound, but
// each rewrite shortens the address; real routes have one or two hops).
const maxHops = 8

var (
	errTooManyHops = errors.New("address: too many routing hops")
	errBadLocal    = errors.New("address: invalid local part")
)

// Route is where an MTA delivers an envelope recipient, read the way
// Postfix's trivial-rewrite resolves it.
type Route struct {
	// Hops are the addresses the recipient passes through: Hops[0] is the
	// address as written (source route removed, quotes resolved), and each
	// next hop is what the previous one becomes when its domain is local
	// and its local part holds a route ("j%army.ml", "army.ml!j",
	// "j@army.ml" in quotes). The last hop is where the mail goes.
	//
	// Hops is empty for an address without any domain ("postmaster"): the
	// MTA appends its own (Postfix: append_at_myorigin).
	Hops []Address
}

// Final returns the last hop: where the mail goes (ok false when the
// address has no domain).
func (r Route) Final() (Address, bool) {
	if len(r.Hops) == 0 {
		return Address{}, false
	}
	return r.Hops[len(r.Hops)-1], true
}

// ParseRoute parses an SMTP envelope address (the argument of RCPT TO,
// angle brackets optional) and follows it as Postfix routes it:
//
//   - a source route is ignored: <@relay.example:j@army.ml> goes to
//     j@army.ml (RFC 5321 section 4.1.1.3; Postfix strips it);
//   - the domain is after the last '@' that is neither quoted nor escaped:
//     j@army.ml@example.com is local part "j@army.ml" at example.com;
//   - when local(hop) reports that the MTA delivers the hop's domain itself
//     (Postfix: mydestination or one of its own address literals), the
//     domain is stripped and a route in the local part is followed: the
//     quoted "j@army.ml" (resolve_dequoted_address), army.ml!j
//     (swap_bangpath: the first '!') and j%army.ml (allow_percent_hack: the
//     last '%'), which all go to j@army.ml;
//   - an address without '@' is given the MTA's own domain
//     (append_at_myorigin), which is assumed local, so the same routes in
//     it are followed.
//
// local may be nil (no domain is local). The local part has no length
// limit of its own (Postfix has none); the whole input is limited to 1024
// bytes. An address that cannot be read is an error.
func ParseRoute(s string, local func(Address) bool) (Route, error) {
	if len(s) > maxInputLen {
		return Route{}, errTooLong
	}
	if !utf8.ValidString(s) {
		return Route{}, errInvalidUTF8
	}
	s = trimSpace(s)
	s, err := stripAngle(s)
	if err != nil {
		return Route{}, err
	}
	var r Route
	for hop := 0; ; hop++ {
		if hop == maxHops {
			return Route{}, errTooManyHops
		}
		s = stripSourceRoute(s)
		if s == "" {
			return Route{}, errEmpty
		}
		at := lastUnquoted(s, '@')
		if at < 0 {
			// No domain: the MTA appends its own, a local one.
			u, err := unquote(s)
			if err != nil {
				return Route{}, err
			}
			next, ok := localRoute(u)
			if !ok {
				return r, nil
			}
			s = next
			continue
		}
		rawLocal, domain := s[:at], s[at+1:]
		u, err := unquote(rawLocal)
		if err != nil {
			return Route{}, err
		}
		if u == "" {
			return Route{}, errEmptyLocal
		}
		a, err := hopAddress(u, domain)
		if err != nil {
			return Route{}, err
		}
		r.Hops = append(r.Hops, a)
		if local == nil || !local(a) {
			return r, nil
		}
		// A local domain: what its local part routes to, if anything.
		if !strings.ContainsAny(u, "@!%") {
			return r, nil
		}
		s = u
	}
}

// localRoute rewrites a local part that holds a route into an address
// with a domain, as Postfix does with a local part of its own domain: a
// quoted '@' stands as is; else the first '!' swaps (site!user →
// user@site); else the last '%' becomes '@'. ok is false when u holds no
// route.
func localRoute(u string) (string, bool) {
	if strings.Contains(u, "@") {
		return u, true
	}
	if i := strings.IndexByte(u, '!'); i >= 0 {
		return u[i+1:] + "@" + u[:i], true
	}
	if i := strings.LastIndexByte(u, '%'); i >= 0 {
		return u[:i] + "@" + u[i+1:], true
	}
	return "", false
}

// hopAddress builds the address of one hop from its unquoted local part
// and raw domain (Parse's last step too).
func hopAddress(local, domain string) (Address, error) {
	if domain == "" {
		return Address{}, errEmptyDomain
	}
	if strings.HasPrefix(domain, "[") {
		lit, err := parseLiteral(domain)
		if err != nil {
			return Address{}, err
		}
		return Address{Local: local, Domain: lit, UnicodeDomain: lit, Literal: true}, nil
	}
	ascii, err := normalizeDomain(domain)
	if err != nil {
		return Address{}, err
	}
	uni := ascii
	if strings.Contains(ascii, "xn--") {
		if u, err := profile.ToUnicode(ascii); err == nil && u != "" {
			uni = u
		}
	}
	return Address{Local: local, Domain: ascii, UnicodeDomain: uni}, nil
}

// stripSourceRoute removes an RFC 5321 source route ("@a,@b:") from the
// front of s.
func stripSourceRoute(s string) string {
	if !strings.HasPrefix(s, "@") {
		return s
	}
	if i := firstUnquoted(s, ':'); i >= 0 && i < len(s)-1 {
		return s[i+1:]
	}
	return s
}

// lastUnquoted returns the index of the last c in s that is neither inside
// a quoted string nor escaped with a backslash, or -1.
func lastUnquoted(s string, c byte) int {
	last := -1
	scanUnquoted(s, func(i int) bool {
		if s[i] == c {
			last = i
		}
		return true
	})
	return last
}

// firstUnquoted is lastUnquoted for the first c.
func firstUnquoted(s string, c byte) int {
	first := -1
	scanUnquoted(s, func(i int) bool {
		if s[i] == c {
			first = i
			return false
		}
		return true
	})
	return first
}

// scanUnquoted calls fn with the index of every byte of s outside quoted
// strings and escapes, until fn returns false.
func scanUnquoted(s string, fn func(i int) bool) {
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++ // the escaped byte; continuation bytes are never ASCII
		case c == '"':
			inQuote = !inQuote
		case !inQuote:
			if !fn(i) {
				return
			}
		}
	}
}

// unquote returns a local part in Postfix's internal form: quotes removed,
// escapes resolved. Control characters are refused, and so are blanks
// outside quotes and an unterminated quote or escape.
func unquote(s string) (string, error) {
	var b strings.Builder
	b.Grow(len(s))
	inQuote := false
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"':
			inQuote = !inQuote
			i++
			continue
		case c == '\\':
			i++
			if i >= len(s) {
				return "", errUnterminated
			}
		case !inQuote && (c == ' ' || c == '\t'):
			return "", errBadLocal
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || (isControl(r) && r != '\t') || (!inQuote && unicode.IsSpace(r)) {
			return "", errBadLocal
		}
		b.WriteRune(r)
		i += size
	}
	if inQuote {
		return "", errUnterminated
	}
	return b.String(), nil
}

// Internal converts an address in Postfix's internal form (unquoted, as
// the policy delegation protocol's recipient= and sender= carry it: the
// domain is after the last '@') to the external form that ParseRoute
// reads, quoting the local part when it needs it. An address without '@'
// is only quoted; a source route is kept; an empty part is left as it is,
// for ParseRoute to refuse.
func Internal(s string) string {
	if strings.HasPrefix(s, "@") {
		if c := strings.IndexByte(s, ':'); c > 0 {
			return s[:c+1] + Internal(s[c+1:])
		}
	}
	i := strings.LastIndexByte(s, '@')
	switch {
	case s == "" || i == 0 || i == len(s)-1:
		return s
	case i < 0:
		return quoteLocal(s)
	}
	return quoteLocal(s[:i]) + s[i:]
}
