// Package address parses and normalises e-mail addresses (RFC 5321/5322 mailbox syntax, IDNA, SMTPUTF8).
//
// What this package decides: whether a recipient address is syntactically
// usable, and what its canonical parts are. [Parse] accepts a bare address,
// an address in angle brackets, or "Display Name <address>", splits it into
// local part and domain, resolves quoting in the local part, and normalises
// the domain: one trailing dot removed, lower-cased, Unicode converted to
// A-labels (punycode) with IDNA 2008 / UTS #46 lookup mapping, and then
// checked strictly against the letter-digit-hyphen rules and DNS length
// limits. Address literals ([192.0.2.1], [IPv6:2001:db8::1]) are validated
// with net/netip.
//
// [ParseRoute] reads an SMTP envelope recipient the way Postfix routes it:
// source routes stripped, the domain after the last unquoted '@', and, under
// a domain the MTA delivers itself, the percent hack (j%army.ml), bang paths
// (army.ml!j) and quoted '@' ("j@army.ml") followed to the address they
// reach. A gate checks every hop, so that what it judges is where the mail
// goes.
//
// What this package must never do: it performs no DNS or network look-ups
// and makes no judgement about whether a domain is a typo, a homoglyph or
// otherwise suspicious. A domain such as "gmаil.com" (with a Cyrillic а) or
// "xn--gmil-63d.com" is syntactically valid and parses successfully; deciding
// that it is probably a mistake for "gmail.com" is the job of the caller.
// Only syntactically invalid input is an error.
//
// Parse never panics and runs in time linear in the input, which is capped
// at 1024 bytes. Error messages are short and quote at most a small, clipped
// fragment of the input.
package address
