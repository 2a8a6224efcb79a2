package detect

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/net/publicsuffix"

	"github.com/stray-mail/stray/internal/address"
	"github.com/stray-mail/stray/internal/knowledge"
)

// class says where a target domain comes from; it shapes the verdict.
type class uint8

const (
	classProvider class = iota
	classKnown
	classProtected
)

// target is a domain a sender may have meant.
type target struct {
	name   string
	class  class
	weight float64 // prior that a sender meant it, (0,1]
	count  int     // correspondent count (known only)
}

// Checker decides, per recipient, whether its domain is a likely typo of a
// domain the sender meant. It is immutable after New and safe for concurrent
// use.
type Checker struct {
	protected []string         // normalised protected domains and suffixes
	targets   []target         // every domain a sender may mean
	exact     map[string]int32 // target name → id
	index     *deleteIndex     // one-edit neighbourhood of every target
	skeletons map[string]int32 // UTS #39 skeleton → target id
	// variants maps a lookalike suffix of a protected entry (ml for mil,
	// army.ml for army.mil) to the protected entries it imitates.
	variants map[string][]string
	// orgs holds every known and protected domain and their parents below
	// the public suffix: the places the organisation really writes to.
	orgs map[string]bool
	// knownUnder counts, per protected entry, the known domains inside it.
	knownUnder map[string]int
	families   map[string]bool
	deny       map[string]string // registered lookalike → intended
	slips      *slipModel
	tlds       sync.Map // TLDs known to exist → true
	brands     []brand  // giant providers' distinctive names (model.go)
	// providerNames are the registrable names of every provider.
	providerNames map[string]bool
	// glued maps a protected domain with the dot before its public suffix
	// (and the suffix's own dots) dropped to the domain: armymil for
	// army.mil, modgovuk for mod.gov.uk.
	glued map[string]string
}

// New builds a Checker from knowledge. Building is linear in the size of the
// knowledge; checking is independent of it.
func New(k Knowledge) (*Checker, error) {
	c := &Checker{
		exact:      map[string]int32{},
		skeletons:  map[string]int32{},
		variants:   map[string][]string{},
		orgs:       map[string]bool{},
		knownUnder: map[string]int{},
		families:   map[string]bool{},
		glued:      map[string]string{},
		slips:      newSlipModel(),
	}
	for _, p := range k.Protected {
		d, err := NormalizeDomain(p)
		if err != nil {
			return nil, fmt.Errorf("detect: protected %w", err)
		}
		c.protected = append(c.protected, d)
	}
	sort.Strings(c.protected)
	for _, p := range c.protected {
		if strings.Contains(p, ".") {
			c.addTarget(target{name: p, class: classProtected, weight: 1})
		}
	}
	c.deny = make(map[string]string, len(k.Deny))
	for d, intended := range k.Deny {
		c.deny[d] = intended
	}
	known := make([]string, 0, len(k.Known))
	for d := range k.Known {
		known = append(known, d)
	}
	sort.Strings(known) // deterministic ids
	for _, d := range known {
		n := k.Known[d]
		cl := classKnown
		if c.inProtected(d) {
			cl = classProtected
			for _, p := range c.protected {
				if under(d, p) {
					c.knownUnder[p]++
				}
			}
		}
		c.addTarget(target{name: d, class: cl, weight: knownWeight(n), count: n})
	}
	if !k.NoBuiltin {
		for _, p := range knowledge.Providers() {
			c.addTarget(target{name: p.Domain, class: classProvider, weight: p.Weight()})
		}
		for _, f := range knowledge.Families {
			c.families[f] = true
		}
		c.addBrands()
	}
	for _, t := range c.targets {
		if ps, _ := publicsuffix.PublicSuffix(t.name); t.class == classProtected && len(t.name) > len(ps)+1 {
			key := t.name[:len(t.name)-len(ps)-1] + strings.ReplaceAll(ps, ".", "")
			if _, ok := c.glued[key]; !ok {
				c.glued[key] = t.name
			}
		}
	}
	c.index = newDeleteIndex(len(c.targets))
	for id, t := range c.targets {
		c.index.add(t.name, int32(id))
		if t.class != classProvider {
			for _, parent := range orgParents(t.name) {
				c.orgs[parent] = true
			}
		}
	}
	for _, p := range c.protected {
		for _, v := range suffixVariants(p) {
			if !c.inProtected(v) && c.suffixExists(v) {
				c.variants[v] = appendUnique(c.variants[v], p)
			}
		}
	}
	return c, nil
}

func appendUnique(l []string, s string) []string {
	for _, x := range l {
		if x == s {
			return l
		}
	}
	return append(l, s)
}

func knownWeight(count int) float64 {
	if count < 1 {
		count = 1
	}
	return math.Min(1, 0.55+0.15*math.Log10(float64(count)))
}

func (c *Checker) addTarget(t target) {
	if id, ok := c.exact[t.name]; ok {
		old := &c.targets[id]
		if t.class > old.class {
			old.class = t.class
		}
		old.weight = math.Max(old.weight, t.weight)
		old.count += t.count
		return
	}
	id := int32(len(c.targets))
	c.targets = append(c.targets, t)
	c.exact[t.name] = id
	if u, err := domainProfile.ToUnicode(t.name); err == nil {
		sk := knowledge.DomainSkeleton(u)
		if _, dup := c.skeletons[sk]; !dup {
			c.skeletons[sk] = id
		}
	}
}

// under reports whether d is p or a subdomain of p.
func under(d, p string) bool {
	return d == p || (len(d) > len(p) && d[len(d)-len(p)-1] == '.' && strings.HasSuffix(d, p))
}

// Protects reports whether domain (ASCII, lower case) lies in the
// protected space: the organisation's own domains, which its MTA delivers
// or routes itself.
func (c *Checker) Protects(domain string) bool { return c.inProtected(domain) }

// Protected returns the normalised protected domains and suffixes, sorted.
func (c *Checker) Protected() []string { return slices.Clone(c.protected) }

func (c *Checker) inProtected(d string) bool {
	for _, p := range c.protected {
		if under(d, p) {
			return true
		}
	}
	return false
}

// orgParents lists d and its parents that lie above their public suffix.
func orgParents(d string) []string {
	ps, _ := publicsuffix.PublicSuffix(d)
	var out []string
	for {
		if len(d) <= len(ps) {
			return out
		}
		out = append(out, d)
		i := strings.IndexByte(d, '.')
		if i < 0 {
			return out
		}
		d = d[i+1:]
	}
}

// tldExists reports whether tld is a TLD in the root zone (ICANN section of
// the Public Suffix List, which includes every IANA TLD). Answers that a TLD
// exists are cached: there are about 1,500, while garbage is unbounded.
func (c *Checker) tldExists(tld string) bool {
	if _, ok := c.tlds.Load(tld); ok {
		return true
	}
	if tld == "" || strings.Contains(tld, ".") {
		return false
	}
	// Probe below the TLD: wildcard rules (*.np) do not list the TLD itself.
	if _, icann := publicsuffix.PublicSuffix("stray-probe." + tld); !icann {
		return false
	}
	c.tlds.Store(tld, true)
	return true
}

// suffixExists reports whether s's TLD exists.
func (c *Checker) suffixExists(s string) bool {
	return c.tldExists(tldOf(s))
}

const domainAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789-."

// oneEditVariants lists every string one edit away from s over the domain
// alphabet (no empty labels).
func oneEditVariants(s string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(v string) {
		if v == "" || v == s || seen[v] || strings.HasPrefix(v, ".") || strings.HasSuffix(v, ".") || strings.Contains(v, "..") {
			return
		}
		seen[v] = true
		out = append(out, v)
	}
	for i := 0; i <= len(s); i++ {
		if i < len(s) {
			add(s[:i] + s[i+1:])
			if i+1 < len(s) {
				add(s[:i] + string(s[i+1]) + string(s[i]) + s[i+2:])
			}
		}
		for j := 0; j < len(domainAlphabet); j++ {
			ch := string(domainAlphabet[j])
			add(s[:i] + ch + s[i:])
			if i < len(s) {
				add(s[:i] + ch + s[i+1:])
			}
		}
	}
	return out
}

// suffixVariants are the real-looking one-slip lookalikes of a protected
// entry: for "mil", "ml" and "il"; for "army.mil", "army.ml", "armymil.com"
// is not one (that needs a TLD), but "arm.mil" is, when mil is not ours.
func suffixVariants(p string) []string {
	return oneEditVariants(p)
}

// Check parses and checks one recipient address. It returns an error only
// when the address cannot be parsed.
func (c *Checker) Check(addr string) (Finding, error) {
	a, err := address.Parse(addr)
	if err != nil {
		return Finding{Address: strings.TrimSpace(addr)}, err
	}
	return c.CheckAddress(a), nil
}

// CheckAddress checks a parsed recipient.
func (c *Checker) CheckAddress(a address.Address) Finding {
	f := Finding{Address: a.String(), Domain: a.Domain}
	if a.Literal {
		return f
	}
	var best candidate
	var ok bool
	if strings.Contains(a.Domain, ".") {
		best, ok = c.assess(a)
	} else if !c.trusted(a.Domain) {
		best, ok = c.dotless(a.Domain)
	}
	if !ok {
		return f
	}
	f.Verdict = best.verdict
	f.Score = math.Round(best.score*1000) / 1000
	f.Intended = best.intended
	f.Reasons = best.reasons
	if best.intended != "" {
		f.Suggestion = a.WithDomain(best.intended)
	}
	return f
}

// candidate is one explanation of a recipient domain as a mistake.
type candidate struct {
	intended string
	score    float64
	// evidence, when set, is L·π, the unnormalised weight of the
	// explanation that ranks it against the one-slip candidates (whose
	// score is their L·π); score is then its posterior.
	evidence float64
	verdict  Verdict
	reasons  []Reason
}

// trusted reports whether d is a place the sender plausibly means: in the
// protected space, a known or built-in domain or below one, or a provider
// brand's country domain.
func (c *Checker) trusted(d string) bool {
	ok, _ := c.trust(d)
	return ok
}

// trust is trusted, and says whether only the organisation's known
// correspondents vouch for d (d or a parent is a known target, and nothing
// else trusts it). Such trust never covers a lookalike of a protected
// domain: a known file or learning cannot open army.ml; only an allow rule
// can.
func (c *Checker) trust(d string) (trusted, knownOnly bool) {
	if c.inProtected(d) {
		return true, false
	}
	byKnown := false
	for s := d; ; {
		if id, ok := c.exact[s]; ok {
			if c.targets[id].class != classKnown {
				return true, false
			}
			byKnown = true
		}
		i := strings.IndexByte(s, '.')
		if i < 0 {
			break
		}
		s = s[i+1:]
	}
	if c.hasFamilyLabel(d) {
		if reg, err := publicsuffix.EffectiveTLDPlusOne(d); err == nil {
			label := reg[:strings.IndexByte(reg, '.')]
			tld := reg[strings.LastIndexByte(reg, '.')+1:]
			// A brand's country domain; not its name under another generic
			// TLD (outlook.org), which is a slip (model.go, brandSlips).
			if c.families[label] && c.tldExists(tld) && !knowledge.IsConfusionTLD(tld) && !genericTLDs[tld] {
				return true, false
			}
		}
	}
	return byKnown, byKnown
}

// denied is the finding for a recipient at (or below) a registered
// lookalike from the deny list.
func (c *Checker) denied(d, lookalike, intended string) candidate {
	msg := fmt.Sprintf("%s is a registered lookalike that accepts mail", lookalike)
	if intended != "" {
		msg = fmt.Sprintf("%s is a registered lookalike of %s that accepts mail", lookalike, intended)
		intended = d[:len(d)-len(lookalike)] + intended
	}
	return candidate{intended: intended, score: 1, verdict: Block, reasons: []Reason{{KindRegistered, msg}}}
}

// hasFamilyLabel reports whether any label of d is a provider brand.
func (c *Checker) hasFamilyLabel(d string) bool {
	for len(d) > 0 {
		i := strings.IndexByte(d, '.')
		if i < 0 {
			return c.families[d]
		}
		if c.families[d[:i]] {
			return true
		}
		d = d[i+1:]
	}
	return false
}

func (c *Checker) assess(a address.Address) (candidate, bool) {
	d := a.Domain
	if len(c.deny) > 0 && !c.inProtected(d) {
		for s := d; ; {
			if intended, ok := c.deny[s]; ok {
				return c.denied(d, s, intended), true
			}
			i := strings.IndexByte(s, '.')
			if i < 0 {
				break
			}
			s = s[i+1:]
		}
	}
	trusted, knownOnly := c.trust(d)
	if trusted && !knownOnly {
		return candidate{}, false
	}
	var cands []candidate
	// Homoglyphs: the domain looks like a target but is made of other
	// characters.
	if a.UnicodeDomain != d || strings.Contains(d, "xn--") {
		cands = append(cands, c.homoglyphs(a)...)
		var pre []Reason
		if strings.Contains(d, "xn--") {
			pre = append(pre, Reason{KindPunycode, fmt.Sprintf("%s is the punycode form of %s", d, a.UnicodeDomain)})
		}
		cands = append(cands, c.diacritics(a, pre)...)
	} else if id, ok := c.skeletons[knowledge.DomainSkeleton(d)]; ok && c.targets[id].name != d {
		// ASCII lookalikes read the same: rn for m, 0 for o, 1 for l.
		t := c.targets[id]
		cands = append(cands, candidate{intended: t.name, score: 0.95, verdict: Block, reasons: []Reason{
			{KindHomoglyph, fmt.Sprintf("%s reads like %s (letters that look alike: rn/m, 0/o, 1/l)", d, t.name)},
			c.targetReason(t, d)}})
	}
	// One slip from a target, on the domain itself or on a parent
	// (mail.gmial.com).
	ps, icann := publicsuffix.PublicSuffix(d)
	cands = append(cands, c.slipsFromPS(d, ps, 1)...)
	// A giant provider's name with two slips, or under another generic
	// TLD; a suffix doubled or glued on.
	cands = append(cands, c.brandSlipsPS(d, ps, icann, false)...)
	cands = append(cands, c.repairedSuffix(d, ps)...)
	// A TLD that does not exist: mail bounces, but the sender meant
	// something; find it.
	tld := d[strings.LastIndexByte(d, '.')+1:]
	if !c.tldExists(tld) {
		cands = append(cands, c.nonexistentTLD(d, tld)...)
	}
	// A lookalike suffix of a protected entry: army.ml for mil.
	cands = append(cands, c.protectedLookalikes(d)...)
	if knownOnly {
		cands = slices.DeleteFunc(cands, func(x candidate) bool { return !imitatesProtected(x) })
	}
	if len(cands) == 0 {
		return candidate{}, false
	}
	return bestOf(cands)
}

// Verdict thresholds on a candidate's score.
const (
	holdAt  = 0.5
	warnAt  = 0.3
	blockAt = 0.75
)

func verdictFor(score float64, leak bool) Verdict {
	switch {
	case leak && score >= blockAt:
		return Block
	case score >= holdAt:
		return Hold
	case score >= warnAt:
		return Warn
	}
	return OK
}

// targetReason says whose lookalike the domain is.
func (c *Checker) targetReason(t target, typed string) Reason {
	switch t.class {
	case classProtected:
		return Reason{KindProtectedLookalike, fmt.Sprintf("%s looks like %s, your own domain, but is outside it: mail there leaks to whoever runs %s", typed, t.name, registrable(typed))}
	case classKnown:
		return Reason{KindCorrespondent, fmt.Sprintf("%s is new, and looks like %s, which you write to (%d messages)", typed, t.name, t.count)}
	}
	return Reason{KindProvider, fmt.Sprintf("%s looks like %s, a popular mail provider", typed, t.name)}
}

// slipsFrom finds targets one edit from d (and from d's parents, carrying the
// stripped labels over to the intended domain). factor scales the scores.
func (c *Checker) slipsFrom(d string, factor float64) []candidate {
	ps, _ := publicsuffix.PublicSuffix(d)
	return c.slipsFromPS(d, ps, factor)
}

// slipsFromPS is slipsFrom with d's public suffix already known.
func (c *Checker) slipsFromPS(d, ps string, factor float64) []candidate {
	var out []candidate
	prefix := ""
	s := d
	var ids []int32
	for depth := 0; depth < 3; depth++ {
		ids = c.index.lookup(s, ids[:0])
		for i, id := range ids {
			if dupID(ids[:i], id) {
				continue
			}
			t := c.targets[id]
			e, ok := oneEdit(s, t.name)
			if !ok {
				continue
			}
			sl := c.slips.explain(s, t.name, e)
			score := sl.p * t.weight * factor
			if depth > 0 {
				score *= 0.9
			}
			reasons := []Reason{{sl.kind, sl.why}}
			if tr, ok := c.tldSwap(s, t.name); ok {
				reasons = append([]Reason{tr}, reasons...)
				if knowledge.IsConfusionTLD(tldOf(s)) {
					score = math.Max(score, 0.9*t.weight*factor)
				}
			}
			reasons = append(reasons, c.targetReason(t, d))
			leak := t.class == classProtected || (t.class == classProvider && t.weight == 1 && reasons[0].Kind == KindTLDConfusion)
			out = append(out, candidate{
				intended: prefix + t.name,
				score:    score,
				verdict:  verdictFor(score, leak),
				reasons:  reasons,
			})
		}
		i := strings.IndexByte(s, '.')
		if i < 0 {
			break
		}
		parent := s[i+1:]
		if len(parent) <= len(ps) || !strings.Contains(parent, ".") {
			break
		}
		prefix += s[:i+1]
		s = parent
	}
	return out
}

func dupID(seen []int32, id int32) bool {
	for _, x := range seen {
		if x == id {
			return true
		}
	}
	return false
}

// registrable is d's registrable domain (eTLD+1), or d itself.
func registrable(d string) string {
	if r, err := publicsuffix.EffectiveTLDPlusOne(d); err == nil {
		return r
	}
	return d
}

func tldOf(d string) string { return d[strings.LastIndexByte(d, '.')+1:] }

// tldSwap explains a typed domain that differs from the intended one only in
// its TLD, when the typed TLD is a real one: the mail is delivered elsewhere.
func (c *Checker) tldSwap(typed, intended string) (Reason, bool) {
	ti, ii := strings.LastIndexByte(typed, '.'), strings.LastIndexByte(intended, '.')
	if ti < 0 || ii < 0 || typed[:ti] != intended[:ii] {
		return Reason{}, false
	}
	tt := typed[ti+1:]
	if !c.tldExists(tt) {
		return Reason{}, false
	}
	return Reason{KindTLDConfusion, fmt.Sprintf(".%s is a real country or generic TLD one slip from .%s: mail there is delivered to a stranger", tt, intended[ii+1:])}, true
}

// nonexistentTLD corrects a TLD that does not exist towards real ones one
// slip away, then looks for a target (allowing one more slip in the name).
func (c *Checker) nonexistentTLD(d, tld string) []candidate {
	name := d[:len(d)-len(tld)-1]
	why := Reason{KindNonexistentTLD, fmt.Sprintf(".%s is not a top-level domain: the mail cannot be delivered", tld)}
	var out []candidate
	var fallback string
	fallbackRank := math.MaxInt
	for _, fix := range oneEditVariants(tld) {
		if strings.Contains(fix, ".") || !c.tldExists(fix) {
			continue
		}
		fixed := name + "." + fix
		e, _ := oneEdit(tld, fix)
		p := c.slips.explain(tld, fix, e).p
		if c.trusted(fixed) {
			w := unlistedFamilyWeight // a brand's country domain, or below a known one
			if id, ok := c.exact[fixed]; ok {
				w = c.targets[id].weight
			}
			out = append(out, candidate{intended: fixed, score: 0.5 + 0.5*p*w, verdict: Hold, reasons: []Reason{why}})
			continue
		}
		for _, x := range c.slipsFrom(fixed, p) {
			if x.score < warnAt*p {
				continue // a weak second slip: the TLD fix alone explains more
			}
			x.reasons = append([]Reason{why}, x.reasons...)
			x.verdict = max(x.verdict, Hold)
			out = append(out, x)
		}
		if r := popularRank(fix); r < fallbackRank {
			fallback, fallbackRank = fixed, r
		}
	}
	out = append(out, c.tldRepairs(name, tld, why)...)
	if len(out) == 0 {
		out = append(out, candidate{intended: fallback, score: 0.6, verdict: Hold, reasons: []Reason{why}})
	}
	return out
}

// unlistedFamilyWeight is the prior of a provider brand's country domain
// that no list names (outlook.cc): below every listed provider, so that a
// broken TLD is repaired towards the provider's real domain first.
const unlistedFamilyWeight = 0.35

// truncationSlip is the likelihood of a TLD cut short (outlook.c for
// outlook.com): one slip, the sender stopped typing, however many letters
// are left off; as likely as an omitted letter.
const truncationSlip = 0.6

// tldRepairs are the repairs of a nonexistent TLD that are more than one
// edit: a popular TLD cut short (c → com), and a two-part suffix without
// its dot (couk → co.uk), with the name then read as the provider it names.
func (c *Checker) tldRepairs(name, tld string, why Reason) []candidate {
	var out []candidate
	for _, t := range knowledge.PopularTLDs {
		if len(t) <= len(tld)+1 || !strings.HasPrefix(t, tld) {
			continue
		}
		p := truncationSlip
		fixed := name + "." + t
		if id, ok := c.exact[fixed]; ok {
			out = append(out, candidate{intended: fixed, score: 0.5 + 0.5*p*c.targets[id].weight, verdict: Hold, reasons: []Reason{why}})
		}
	}
	for i := 1; i < len(tld); i++ {
		s := tld[:i] + "." + tld[i:]
		if ps, icann := publicsuffix.PublicSuffix("stray-probe." + s); !icann || ps != s {
			continue
		}
		fixed := name + "." + s
		if id, ok := c.exact[fixed]; ok {
			out = append(out, candidate{intended: fixed, score: 0.5 + 0.5*0.75*c.targets[id].weight, verdict: Hold, reasons: []Reason{why}})
			continue
		}
		for _, x := range c.fromRepair(name+"."+tld, fixed, 0.75, Reason{KindMissingDot, fmt.Sprintf(".%s is .%s without its dot", tld, s)}) {
			x.reasons = append([]Reason{why}, x.reasons...)
			x.verdict = max(x.verdict, Hold)
			out = append(out, x)
		}
	}
	return out
}

func popularRank(tld string) int {
	for i, t := range knowledge.PopularTLDs {
		if t == tld {
			return i
		}
	}
	return len(knowledge.PopularTLDs) + len(tld)
}

// protectedLookalikes finds a suffix of d that imitates a protected entry
// (d = X.ml, mil protected → X.mil). The verdict depends on whether the
// organisation knows X.mil: a leak from a place it writes to is a block; a
// domain it has never written to is suspicious only while stray knows
// nothing of the organisation's own hosts.
func (c *Checker) protectedLookalikes(d string) []candidate {
	var out []candidate
	for i := 0; i <= len(d); {
		s := d[i:]
		for _, p := range c.variants[s] {
			intended := d[:i] + p
			cand := candidate{intended: intended}
			e, _ := oneEdit(s, p)
			sl := c.slips.explain(s, p, e)
			tr, swap := c.tldSwap(d, intended)
			switch {
			case c.knownOrg(intended, p):
				cand.score = math.Max(0.95, sl.p)
				cand.verdict = Block
			case c.knownUnder[p] == 0 && swap && knowledge.IsConfusionTLD(tldOf(d)):
				// Nothing is known of the organisation's own hosts, and the
				// TLD is a classic confusion: treat the whole lookalike TLD
				// as hostile, as the DoD did with .ml.
				cand.score = 0.8
				cand.verdict = Block
			case c.knownUnder[p] == 0:
				cand.score = 0.6
				cand.verdict = Hold
			default:
				continue // the organisation knows its hosts, and not this one
			}
			if swap {
				cand.reasons = append(cand.reasons, tr)
			}
			cand.reasons = append(cand.reasons,
				Reason{sl.kind, sl.why},
				Reason{KindProtectedLookalike, fmt.Sprintf("%s looks like %s, inside your own %s, but is outside it: mail there leaks to whoever runs %s", d, intended, p, registrable(d))})
			out = append(out, cand)
		}
		j := strings.IndexByte(s, '.')
		if j < 0 {
			break
		}
		i += j + 1
	}
	return out
}

// imitatesProtected reports whether a candidate explains the recipient as a
// lookalike of the organisation's own (protected) space.
func imitatesProtected(x candidate) bool {
	for _, r := range x.reasons {
		if r.Kind == KindProtectedLookalike {
			return true
		}
	}
	return false
}

// knownOrg reports whether intended, or a parent of it strictly inside the
// protected entry p, is a place the organisation writes to.
func (c *Checker) knownOrg(intended, p string) bool {
	for s := intended; len(s) > len(p) || (s == p && strings.Contains(p, ".")); {
		if c.orgs[s] {
			return true
		}
		i := strings.IndexByte(s, '.')
		if i < 0 {
			return false
		}
		s = s[i+1:]
	}
	return false
}

// homoglyphs matches the domain's UTS #39 skeleton against the targets', and
// flags mixed-script labels that match nothing.
func (c *Checker) homoglyphs(a address.Address) []candidate {
	u := a.UnicodeDomain
	sk := knowledge.DomainSkeleton(u)
	var reasons []Reason
	if strings.Contains(a.Domain, "xn--") {
		reasons = append(reasons, Reason{KindPunycode, fmt.Sprintf("%s is the punycode form of %s", a.Domain, u)})
	}
	if id, ok := c.skeletons[sk]; ok && c.targets[id].name != a.Domain {
		t := c.targets[id]
		r := append(reasons,
			Reason{KindHomoglyph, fmt.Sprintf("%s looks exactly like %s but uses different characters", u, t.name)},
			c.targetReason(t, u))
		return []candidate{{intended: t.name, score: 0.98, verdict: Block, reasons: r}}
	}
	var out []candidate
	if isASCII(sk) && sk != a.Domain {
		// A homoglyph plus a slip: look for the skeleton's neighbours.
		for _, x := range c.slipsFrom(sk, 0.9) {
			x.reasons = append(append(reasons[:len(reasons):len(reasons)],
				Reason{KindHomoglyph, fmt.Sprintf("%s uses characters that look like %s", u, sk)}), x.reasons...)
			x.verdict = max(x.verdict, Hold)
			out = append(out, x)
		}
	}
	for _, label := range strings.Split(u, ".") {
		if knowledge.MixedScript(label) {
			out = append(out, candidate{score: 0.45, verdict: Warn, reasons: append(reasons,
				Reason{KindMixedScript, fmt.Sprintf("the label %q mixes writing systems, a common disguise", label)})})
			break
		}
		if knowledge.WholeScriptConfusable(label) {
			out = append(out, candidate{score: 0.4, verdict: Warn, reasons: append(reasons,
				Reason{KindHomoglyph, fmt.Sprintf("the label %q is written in another script but reads as Latin letters", label)})})
			break
		}
	}
	return out
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
