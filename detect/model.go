package detect

import (
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"golang.org/x/net/publicsuffix"

	"github.com/stray-mail/stray/internal/address"
	"github.com/stray-mail/stray/internal/knowledge"
)

// The error model beyond one slip (see docs/detection.md, "The error
// model"). A candidate explanation of a typed domain T as a slip of an
// intended domain D is weighed as a posterior against the explanation that
// T is itself where the sender meant to write:
//
//	posterior = L(T|D)·π(D) / (L(T|D)·π(D) + ρ(T))
//
// L is the product of the slips' likelihoods (slip.go) times the factors
// below, π is D's prior (provider tier, correspondent count, protected) and
// ρ is the prior that T is a real destination.
const (
	// twoSlipFactor is how much rarer a word with two slips is than one
	// with one: Damerau (1964, "A technique for computer detection and
	// correction of spelling errors", CACM 7(3)) found over 80 % of
	// misspellings to be a single insertion, omission, substitution or
	// transposition, so two slips are about 0.2/0.8 = 0.25 as likely.
	twoSlipFactor = 0.25
	// otherTLDFactor is the likelihood that a sender writes a provider's
	// name under another generic TLD (hotmail.net, gmail.org): an
	// engineering estimate, below any one keyboard slip, not a measured
	// rate. Together with a slip in the name it is still far likelier than
	// a stranger's domain being meant.
	otherTLDFactor = 0.3
	// suffixSlip is the likelihood of a suffix typed twice or glued to the
	// name (gmail.com.com, gmailcom.com), as likely as an omitted letter:
	// form autocompletion appends ".com" to what was typed.
	suffixSlip = 0.6
	// realDestination is ρ for a well-formed name under a real TLD: how
	// likely it is that a name no list knows, close to a giant provider, is
	// nevertheless the one meant. Short names are different: every two- and
	// three-letter .com is registered and most belong to someone people
	// write to (gm.com, General Motors), so they get shortNameReal.
	realDestination = 0.05
)

// firstLetterFactor: people rarely get the first letter of a word wrong.
// Pollock and Zamora (1983, "Collection and characterization of spelling
// errors in scientific and scholarly text", JASIS 34(1)) found it wrong in
// about 7 % of misspellings, where a slip falling anywhere in a name of five
// to seven letters would hit it 15-20 % of the time: about a third as
// likely. An arbitrary letter (below arbitrarySlip, neither a neighbouring
// key nor a common spelling slip) in first place is not taken for a slip
// of a giant at all: wahoo.com is a company, not a yahoo.com typo.
const (
	firstLetterFactor = 0.35
	arbitrarySlip     = 0.19
)

// shortNameReal is the real-destination prior ρ of a registrable label of n
// letters: 0.7 for one or two letters, 0.3 for three, else 0.
func shortNameReal(n int) float64 {
	switch {
	case n <= 2:
		return 0.7
	case n == 3:
		return 0.3
	}
	return 0
}

// genericTLDs are the generic TLDs people write out of habit in place of a
// provider's own.
var genericTLDs = map[string]bool{"com": true, "net": true, "org": true, "info": true, "biz": true}

// brand is a giant provider's distinctive name and its main mail domain.
type brand struct {
	label, domain, suffix string
	weight                float64
	family                bool   // runs country domains: brand.xx passes
	letters               uint64 // set of its characters (letterSet)
}

// letterSet is the set of s's characters, folded onto 64 bits: two slips
// remove at most two of the intended name's letters from the typed one, a
// cheap test before the edit distance.
func letterSet(s string) uint64 {
	var m uint64
	for i := 0; i < len(s); i++ {
		m |= 1 << (s[i] & 63)
	}
	return m
}

// minBrandLen is the shortest name given the brand treatment (two slips,
// other TLDs): shorter names (gmx, aol, live) have too many real
// neighbours.
const minBrandLen = 5

// addBrands collects the tier-1 providers' distinctive names, and every
// provider's name: a name that is itself a provider's (ymail, email) is a
// real destination under any TLD, not a slip of a giant's.
func (c *Checker) addBrands() {
	seen := map[string]bool{}
	c.providerNames = map[string]bool{}
	for _, p := range knowledge.Providers() {
		if reg, err := publicsuffix.EffectiveTLDPlusOne(p.Domain); err == nil {
			c.providerNames[reg[:strings.IndexByte(reg, '.')]] = true
		}
		if p.Tier != 1 {
			continue
		}
		i := strings.IndexByte(p.Domain, '.')
		label := p.Domain[:i]
		if len(label) < minBrandLen || seen[label] {
			continue
		}
		seen[label] = true
		c.brands = append(c.brands, brand{label: label, domain: p.Domain, suffix: p.Domain[i+1:], weight: p.Weight(), family: c.families[label], letters: letterSet(label)})
	}
}

func (c *Checker) isBrand(label string) bool {
	for _, b := range c.brands {
		if b.label == label {
			return true
		}
	}
	return false
}

func posterior(l, prior, real float64) float64 {
	if l*prior <= 0 {
		return 0
	}
	return l * prior / (l*prior + real)
}

// brandSlips explains d's registrable name as a giant provider's name with
// up to two slips, under the provider's own suffix (two slips only; one is
// slipsFrom's job) or under another generic TLD (anySuffix: under any real
// suffix, when the typed TLD was broken anyway). Only hold-worthy
// explanations are returned.
func (c *Checker) brandSlips(d string, anySuffix bool) []candidate {
	if len(c.brands) == 0 {
		return nil
	}
	ps, icann := publicsuffix.PublicSuffix(d)
	return c.brandSlipsPS(d, ps, icann, anySuffix)
}

// brandSlipsPS is brandSlips with d's public suffix already known.
func (c *Checker) brandSlipsPS(d, ps string, icann, anySuffix bool) []candidate {
	if len(c.brands) == 0 || !icann || len(d) <= len(ps)+1 {
		return nil
	}
	label := d[:len(d)-len(ps)-1]
	if strings.IndexByte(label, '.') >= 0 {
		return nil // a subdomain: mail.gmial.com is slipsFrom's
	}
	if c.providerNames[label] && !c.isBrand(label) {
		return nil // another provider's name (ymail.net): not a giant's slip
	}
	var out []candidate
	letters := letterSet(label)
	for _, b := range c.brands {
		if abs(len(label)-len(b.label)) > 2 || bits.OnesCount64(b.letters&^letters) > 2 {
			continue
		}
		intended, same := b.domain, ps == b.suffix
		if !same {
			// The brand's listed national domain under the typed
			// suffix (hotmaali.fr → hotmail.fr).
			if id, ok := c.exact[b.label+"."+ps]; ok && c.targets[id].class == classProvider {
				intended, same = b.label+"."+ps, true
			}
		}
		// How the suffix went wrong, if it did: one slip of the brand's
		// own (gmial.co), or another generic TLD (hotmial.net).
		suffixP, suffixWhy := 1.0, Reason{}
		if !same {
			if e, ok := oneEdit(ps, b.suffix); ok {
				sl := c.slips.explainSpelling(ps, b.suffix, e)
				suffixP, suffixWhy = sl.p*twoSlipFactor, Reason{KindTLDConfusion, fmt.Sprintf(".%s is one slip from .%s: mail there is delivered to a stranger", ps, b.suffix)}
			} else if anySuffix || genericTLDs[ps] {
				suffixP, suffixWhy = otherTLDFactor, Reason{KindOtherTLD, fmt.Sprintf("%s is not where %s's mail goes: its domain is %s", d, b.label, intended)}
			} else {
				continue
			}
		}
		var l float64
		var reasons []Reason
		switch {
		case label == b.label:
			if same || suffixWhy.Kind == KindTLDConfusion || !genericTLDs[b.suffix] {
				// The provider itself, a TLD slip (slipsFrom's), or a
				// name whose home is a country TLD: proton.com is a
				// car maker, not proton.me.
				continue
			}
			l = 1
		default:
			if e, ok := oneEdit(label, b.label); ok {
				sl := c.slips.explainSpelling(label, b.label, e)
				l = sl.p
				if e.pos == 0 {
					if sl.p < arbitrarySlip {
						continue // wahoo.com is no yahoo.com
					}
					l *= firstLetterFactor
				}
				reasons = append(reasons, Reason{sl.kind, sl.why})
				break
			}
			p, why := c.twoSlips(label, b.label)
			if p == 0 {
				continue
			}
			l = p * twoSlipFactor
			reasons = append(reasons, Reason{KindTwoSlips, why})
		}
		if !same {
			l *= suffixP
			reasons = append(reasons, suffixWhy)
		}
		score := posterior(l, b.weight, realDestination+shortNameReal(len(label)))
		v := verdictFor(score, false)
		if v < Hold && !(same && len(reasons) == 1 && reasons[0].Kind != KindTwoSlips) {
			continue // only one slip of a giant's own domain may be a mere warning
		}
		if v == OK {
			continue
		}
		reasons = append(reasons, Reason{KindProvider, fmt.Sprintf("%s looks like %s, a popular mail provider", d, intended)})
		out = append(out, candidate{intended: intended, score: score, evidence: l * b.weight, verdict: v, reasons: reasons})
	}
	return out
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// twoSlips returns the likelihood of the likeliest pair of slips turning
// intended into typed, and a sentence, or 0 when they are not exactly two
// edits apart.
func (c *Checker) twoSlips(typed, intended string) (float64, string) {
	if osaDistance(typed, intended, 2) != 2 {
		return 0, ""
	}
	best, bestMid := 0.0, ""
	var bestA, bestB slip
	for _, mid := range oneEditVariants(intended) {
		e2, ok := oneEdit(typed, mid)
		if !ok {
			continue
		}
		e1, _ := oneEdit(mid, intended)
		a := c.slips.explainSpelling(mid, intended, e1)
		b := c.slips.explainSpelling(typed, mid, e2)
		if p := a.p * b.p; p > best {
			best, bestMid, bestA, bestB = p, mid, a, b
		}
	}
	if best == 0 {
		return 0, ""
	}
	return best, fmt.Sprintf("two slips: %s (%s), then %s (%s)", bestMid, bestA.why, typed, bestB.why)
}

// osaDistance is the optimal-string-alignment distance of a and b, or
// limit+1 as soon as it must exceed limit.
func osaDistance(a, b string, limit int) int {
	if abs(len(a)-len(b)) > limit {
		return limit + 1
	}
	var buf [3][32]int
	var rows [3][]int
	for i := range rows {
		if len(b) < len(buf[i]) {
			rows[i] = buf[i][:len(b)+1]
		} else {
			rows[i] = make([]int, len(b)+1)
		}
	}
	prev2, prev, cur := rows[0], rows[1], rows[2]
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			v := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				v = min(v, prev2[j-2]+1)
			}
			cur[j] = v
			rowMin = min(rowMin, v)
		}
		if rowMin > limit {
			return limit + 1
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return min(prev[len(b)], limit+1)
}

// suffixRepairs are d with a doubled or glued-on suffix undone:
// gmail.com.com → gmail.com, gmailcom.com → gmail.com, gmailnet.com →
// gmail.net.
func suffixRepairs(d, ps string) []string {
	var out []string
	tld := tldOf(d)
	if strings.HasSuffix(d, "."+tld+"."+tld) {
		out = append(out, d[:len(d)-len(tld)-1])
	} else if rest := d[:len(d)-len(tld)-1]; genericTLDs[tld] && strings.Contains(rest, ".") {
		// The suffix typed with a slip, then again (gmail.cim.com).
		if prev := tldOf(rest); len(rest) > len(prev)+1 {
			if _, ok := oneEdit(prev, tld); ok {
				out = append(out, rest[:len(rest)-len(prev)]+tld)
			}
		}
	}
	if len(d) <= len(ps)+1 || !genericTLDs[ps] {
		return out // autocompletion appends generic suffixes only
	}
	name := d[:len(d)-len(ps)-1]
	label := name[strings.LastIndexByte(name, '.')+1:]
	for _, t := range gluedTLDs {
		if len(label) >= len(t)+3 && strings.HasSuffix(label, t) {
			out = append(out, name[:len(name)-len(t)]+"."+t)
		}
	}
	return out
}

// retyped reports whether the suffix typed after prev is prev again with
// one slip (mil then ml, com then cm).
func retyped(prev, tld string) bool {
	_, ok := oneEdit(tld, prev)
	return ok
}

// gluedTLDs are the suffixes people glue onto a name without its dot.
var gluedTLDs = []string{"com", "net", "org"}

// repairedSuffix explains d as a target with its suffix doubled or glued on
// (and at most one more slip), or as a whole domain of the organisation or
// a provider with a generic suffix appended (army.mil.com, gmail.com.net:
// autocompletion, or .com typed out of habit), with or without the dot
// before its own suffix (armymil.com).
func (c *Checker) repairedSuffix(d, ps string) []candidate {
	var out []candidate
	repairs := suffixRepairs(d, ps)
	tld := tldOf(d)
	if rest := d[:len(d)-len(tld)-1]; strings.Contains(rest, ".") && !slices.Contains(repairs, rest) && (genericTLDs[tld] || retyped(tldOf(rest), tld)) {
		if c.inProtected(rest) {
			// Outside the protected space only by the appended suffix
			// (army.mil.com, or army.mil.ml: the suffix typed again with a
			// slip): the leak the organisation exists to stop.
			out = append(out, candidate{intended: rest, score: 0.9, verdict: Block, reasons: []Reason{
				{KindDoubledSuffix, fmt.Sprintf("a suffix was appended: %s for %s", d, rest)},
				{KindProtectedLookalike, fmt.Sprintf("%s looks like %s, your own domain, but is outside it: mail there leaks to whoever runs %s", d, rest, registrable(d))}}})
		} else if _, ok := c.exact[rest]; ok && (genericTLDs[tld] || !strings.Contains(ps, ".")) {
			// Not when both suffixes form a registry's own (com.co):
			// falabella.com.co is a company of its own, not a retyped
			// falabella.com.
			repairs = append(repairs, rest)
		}
	}
	// A protected domain written without the dot before its suffix, and a
	// generic suffix typed after it (armymil.com, modgovuk.com).
	if len(d) > len(ps)+1 && genericTLDs[ps] {
		if r, ok := c.glued[d[:len(d)-len(ps)-1]]; ok && !slices.Contains(repairs, r) {
			repairs = append(repairs, r)
		}
	}
	for _, r := range repairs {
		why := Reason{KindDoubledSuffix, fmt.Sprintf("the suffix is doubled or glued to the name: %s for %s", d, r)}
		out = append(out, c.fromRepair(d, r, suffixSlip, why)...)
	}
	return out
}

// fromRepair looks for what a repaired domain r of the typed d means: r
// itself when it is a target or a provider brand's domain, a target one
// slip from r, or a giant provider's name in r. p is the likelihood of the
// repair. A repair that lands on the organisation's own domain is a leak.
func (c *Checker) fromRepair(d, r string, p float64, why Reason) []candidate {
	var out []candidate
	if id, ok := c.exact[r]; ok {
		t := c.targets[id]
		score := posterior(p, t.weight, realDestination)
		v := max(verdictFor(score, false), Warn)
		if t.class == classProtected {
			v = max(verdictFor(score, true), Hold)
		}
		return []candidate{{intended: r, score: score, verdict: v, reasons: []Reason{why, c.targetReason(t, d)}}}
	}
	for _, x := range c.slipsFrom(r, p) {
		if x.score < warnAt*p {
			continue
		}
		x.reasons = append([]Reason{why}, x.reasons...)
		x.score = posterior(x.score, 1, realDestination)
		x.verdict = max(x.verdict, verdictFor(x.score, false))
		out = append(out, x)
	}
	for _, x := range c.brandSlips(r, true) {
		x.reasons = append([]Reason{why}, x.reasons...)
		out = append(out, x)
	}
	return out
}

// dotless explains a domain without any dot (gmailcom) as a target whose
// dot before the TLD was left out.
func (c *Checker) dotless(d string) (candidate, bool) {
	var cands []candidate
	for _, t := range knowledge.PopularTLDs {
		if len(d) < len(t)+2 || !strings.HasSuffix(d, t) {
			continue
		}
		r := d[:len(d)-len(t)] + "." + t
		why := Reason{KindMissingDot, fmt.Sprintf("there is no dot: %s for %s", d, r)}
		if c.trusted(r) {
			score := 0.9
			if id, ok := c.exact[r]; ok {
				score = posterior(1, c.targets[id].weight, realDestination)
			}
			cands = append(cands, candidate{intended: r, score: score, verdict: Hold, reasons: []Reason{why}})
			continue
		}
		for _, x := range c.fromRepair(d, r, 0.75, why) {
			x.verdict = max(x.verdict, Hold)
			cands = append(cands, x)
		}
	}
	if len(cands) == 0 {
		// No TLD at all: a giant's name, or one slip of it (x@gmail).
		for _, b := range c.brands {
			for _, x := range c.brandSlipsPS(d+"."+b.suffix, b.suffix, true, false) {
				x.reasons = append([]Reason{{KindMissingDot, fmt.Sprintf("%s has no top-level domain", d)}}, x.reasons...)
				x.verdict = Hold
				cands = append(cands, x)
			}
			if d == b.label {
				cands = append(cands, candidate{intended: b.domain, score: posterior(truncationSlip, b.weight, realDestination), verdict: Hold,
					reasons: []Reason{{KindMissingDot, fmt.Sprintf("%s has no top-level domain", d)}, {KindProvider, fmt.Sprintf("%s is the name of %s, a popular mail provider", d, b.domain)}}})
			}
		}
	}
	return bestOf(cands)
}

// bestOf picks the strongest candidate: highest verdict, then score.
func bestOf(cands []candidate) (candidate, bool) {
	if len(cands) == 0 {
		return candidate{}, false
	}
	best := cands[0]
	for _, x := range cands[1:] {
		if x.verdict > best.verdict || (x.verdict == best.verdict && x.weight() > best.weight()) {
			best = x
		}
	}
	return best, best.verdict != OK
}

// weight ranks candidates of one verdict: their L·π.
func (x candidate) weight() float64 {
	if x.evidence > 0 {
		return x.evidence
	}
	return x.score
}

// diacritics explains a domain written with accented Latin letters as a
// target written plainly: folded (gmàil → gmail) or spelled out (müller →
// mueller). An exact match is a homoglyph of the target: blocked.
func (c *Checker) diacritics(a address.Address, reasons []Reason) []candidate {
	u := a.UnicodeDomain
	var out []candidate
	for _, f := range []string{knowledge.FoldDiacritics(u), knowledge.SpellDiacritics(u)} {
		if f == u || !isASCII(f) || f == a.Domain {
			continue
		}
		why := Reason{KindDiacritic, fmt.Sprintf("%s is %s with accented letters", u, f)}
		if id, ok := c.exact[f]; ok {
			t := c.targets[id]
			r := append(reasons[:len(reasons):len(reasons)], why, c.targetReason(t, u))
			out = append(out, candidate{intended: t.name, score: 0.95, verdict: Block, reasons: r})
			continue
		}
		for _, x := range c.slipsFrom(f, 0.9) {
			x.reasons = append(append(reasons[:len(reasons):len(reasons)], why), x.reasons...)
			x.verdict = max(x.verdict, Hold)
			out = append(out, x)
		}
	}
	return out
}
