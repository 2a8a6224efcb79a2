package permute

import (
	"strings"
	"sync"

	"golang.org/x/net/publicsuffix"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/knowledge"
)

// tlds caches the TLDs known to exist. There are about 1,500; answers that a
// string is no TLD are not kept, since those are unbounded.
var tlds sync.Map

// tldExists reports whether tld is in the root zone: the ICANN section of
// the Public Suffix List holds every IANA TLD. It probes below the TLD since
// wildcard rules (*.np) do not list the TLD itself.
func tldExists(tld string) bool {
	if _, ok := tlds.Load(tld); ok {
		return true
	}
	if tld == "" || strings.Contains(tld, ".") {
		return false
	}
	if _, icann := publicsuffix.PublicSuffix("stray-probe." + tld); !icann {
		return false
	}
	tlds.Store(tld, true)
	return true
}

// isPublicSuffix reports whether s is an ICANN public suffix (co.uk, ac.uk).
func isPublicSuffix(s string) bool {
	ps, icann := publicsuffix.PublicSuffix("stray-probe." + s)
	return icann && ps == s
}

// tldNeighbourCache maps a TLD to its real neighbours (map[string]float64).
var tldNeighbourCache sync.Map

// tldNeighbours lists the real TLDs one or two slips from tld with the
// likelihood of the likeliest way there: a single slip as detect.Slip
// scores it, two slips as the product of theirs (kept from minTwoSlipTLD
// up), and at least tldConfusionLikelihood for the classic confusions.
// Only existing TLDs are kept, so the result is bounded by the root zone.
func tldNeighbours(tld string) map[string]float64 {
	if v, ok := tldNeighbourCache.Load(tld); ok {
		return v.(map[string]float64)
	}
	best := map[string]float64{}
	keep := func(t string, p float64) {
		if t != tld && p > best[t] {
			best[t] = p
		}
	}
	for _, v1 := range letterEdits(tld) {
		_, p1, ok := detect.Slip(v1, tld)
		if !ok {
			continue
		}
		if tldExists(v1) {
			keep(v1, p1)
		}
		for _, v2 := range letterEdits(v1) {
			if v2 == tld || !tldExists(v2) {
				continue
			}
			if _, p2, ok := detect.Slip(v2, v1); ok && p1*p2 >= minTwoSlipTLD {
				keep(v2, p1*p2)
			}
		}
	}
	for t := range best {
		if isConfusion(tld, t) {
			best[t] = max(best[t], tldConfusionLikelihood)
		}
	}
	for _, t := range knownConfusions(tld) {
		if _, ok := best[t]; !ok && tldExists(t) {
			best[t] = tldConfusionLikelihood
		}
	}
	v, _ := tldNeighbourCache.LoadOrStore(tld, best)
	return v.(map[string]float64)
}

// knownConfusions returns the classic confusions of tld that are real TLDs.
func knownConfusions(tld string) []string {
	var out []string
	for _, t := range knowledge.TLDConfusions[tld] {
		if tldExists(t) {
			out = append(out, t)
		}
	}
	return out
}

// letterEdits lists every string one edit (omission, transposition,
// substitution, insertion over a-z) from s, non-empty, with repeats.
func letterEdits(s string) []string {
	const abc = "abcdefghijklmnopqrstuvwxyz"
	var out []string
	for i := 0; i <= len(s); i++ {
		if i < len(s) {
			if len(s) > 1 {
				out = append(out, s[:i]+s[i+1:])
			}
			if i+1 < len(s) && s[i] != s[i+1] {
				out = append(out, s[:i]+s[i+1:i+2]+s[i:i+1]+s[i+2:])
			}
		}
		for j := 0; j < len(abc); j++ {
			out = append(out, s[:i]+abc[j:j+1]+s[i:])
			if i < len(s) && s[i] != abc[j] {
				out = append(out, s[:i]+abc[j:j+1]+s[i+1:])
			}
		}
	}
	return out
}

// tldSwaps puts the name under every real TLD one or two slips from its own
// (army.ml, army.il, army.mit for army.mil; gmail.co, .cm, .om for
// gmail.com). dnstwist never does this unless handed a TLD list.
func (g *gen) tldSwaps() {
	if !isASCII(g.tld) || strings.HasPrefix(g.tld, "xn--") {
		return
	}
	base := g.uni[:strings.LastIndexByte(g.uni, '.')+1]
	for t, p := range tldNeighbours(g.tld) {
		g.add(base+t, KindTLDSwap, p)
	}
}

// dots handles the dot between a name and its TLD being lost: the name
// then gets a TLD of its own (armymil.com, army-mil.com for army.mil). Dots
// added, dropped or shifted inside the string are edits.
func (g *gen) dots() {
	i := strings.IndexByte(g.uni, '.')
	if i < 0 || strings.Count(g.uni, ".") != 1 {
		return
	}
	joined := g.uni[:i] + g.uni[i+1:]
	hyphen := g.uni[:i] + "-" + g.uni[i+1:]
	_, pj, okj := slip(joined, g.uni)
	_, ph, okh := slip(hyphen, g.uni)
	for _, a := range appendTLDs {
		if okj {
			g.add(joined+"."+a.tld, KindMissingDot, pj*a.w)
		}
		if okh {
			g.add(hyphen+"."+a.tld, KindHyphenation, ph*a.w)
		}
	}
}

// secondLevels are second-level labels that registries commonly use under
// a country TLD. Only those that are public suffixes under the domain's
// TLD (co.uk, ac.uk, org.uk…) are used.
var secondLevels = []string{
	"ac", "biz", "co", "com", "edu", "firm", "gen", "go", "gob", "gov", "gv", "in", "info", "int", "ltd",
	"me", "mil", "ne", "net", "nhs", "nic", "nom", "or", "org", "plc", "police", "sch",
}

// secondLevel swaps the second level of a two-level public suffix for its
// siblings (example.ac.uk, example.org.uk for example.co.uk) and drops it
// where the TLD registers directly (example.uk).
func (g *gen) secondLevel() {
	dot := strings.IndexByte(g.ps, '.')
	if dot < 0 || strings.Count(g.ps, ".") != 1 {
		return
	}
	sl, tld := g.ps[:dot], g.ps[dot+1:]
	uniName := g.uniLabel(g.name)
	prefix := g.uniPrefix()
	for _, l := range secondLevels {
		if l == sl || !isPublicSuffix(l+"."+tld) {
			continue
		}
		p := secondLevelLikelihood
		if _, ps, ok := detect.Slip(l, sl); ok {
			p = max(p, ps)
		}
		g.add(prefix+uniName+"."+l+"."+tld, KindSecondLevel, p)
	}
	g.add(prefix+uniName+"."+tld, KindSecondLevel, bareTLDLikelihood)
}

// uniLabel is the Unicode form of one A-label.
func (g *gen) uniLabel(a string) string {
	if u, err := lookup.ToUnicode(a); err == nil {
		return u
	}
	return a
}

// uniPrefix is the Unicode form of the labels left of the registrable
// domain, with a trailing dot ("" when there are none).
func (g *gen) uniPrefix() string {
	if len(g.orig) == len(g.reg) {
		return ""
	}
	return g.uniLabel(g.orig[:len(g.orig)-len(g.reg)-1]) + "."
}
