package detect

import "strings"

// CoversProtectedLookalike reports whether letting mail through to domain
// (with suffix, to domain and everything under it) would open a lookalike
// of a protected domain, and names the protected domain it imitates. An
// allow rule for such a domain re-opens the leak stray exists to stop, so
// the dashboard asks for an explicit confirmation first.
func (c *Checker) CoversProtectedLookalike(domain string, suffix bool) (intended string, ok bool) {
	d, err := NormalizeDomain(domain)
	if err != nil || c.inProtected(d) {
		return "", false
	}
	if strings.Contains(d, ".") {
		if f, err := c.Check("postmaster@" + d); err == nil && f.Verdict != OK && f.Intended != "" &&
			(c.inProtected(f.Intended) || findingHas(f, KindProtectedLookalike)) {
			return f.Intended, true
		}
	}
	if !suffix {
		return "", false
	}
	// A suffix that is, or holds, a lookalike: .ml (of mil), .com (holds
	// exmaple.com when example.com is protected).
	for _, t := range c.targets {
		if t.class == classProtected && strings.HasSuffix(t.name, "."+d) {
			return t.name, true
		}
	}
	for v, ps := range c.variants {
		if v == d || strings.HasSuffix(v, "."+d) {
			return ps[0], true
		}
	}
	return "", false
}

func findingHas(f Finding, kind string) bool {
	for _, r := range f.Reasons {
		if r.Kind == kind {
			return true
		}
	}
	return false
}
