package audit

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/maillog"
)

// LearnOptions shape what Learner counts.
type LearnOptions struct {
	// Since and Until bound the deliveries counted (Since ≤ t < Until).
	Since, Until time.Time
	// MinDeliveries, MinSenders and MinDays (distinct UTC days) drop
	// domains below them from Result (defaults 1, 0 and 0: deliveries
	// whose sender the log lost still count).
	MinDeliveries int64
	MinSenders    int
	MinDays       int
}

// Correspondent is a domain the organisation delivered mail to.
type Correspondent struct {
	Domain     string    `json:"domain"`
	Deliveries int64     `json:"deliveries"`
	Senders    int       `json:"senders"`
	Days       int       `json:"days"` // distinct UTC days with a delivery
	First      time.Time `json:"first"`
	Last       time.Time `json:"last"`
}

type learnCache struct {
	domain  string // normalised; "" when it does not parse
	flagged bool
}

// Learner builds the known-correspondents list from deliveries: every
// delivered recipient domain with how many deliveries, from how many
// distinct senders, on how many distinct UTC days, first and last seen.
// It holds one entry per domain (the list itself) and 8 bytes per
// distinct (domain, sender) and (domain, day) pair, at most maxPairs of
// them. It leaves out deliveries that
// are themselves flagged (a typo delivered a thousand times is still a
// typo: see stray audit), bounces and other mail from the null sender
// (they go back to whoever wrote to us, forged or not), and attempts that
// did not deliver. Not safe for concurrent use.
type Learner struct {
	c       *detect.Checker
	opt     LearnOptions
	cache   map[string]learnCache
	domains map[string]*Correspondent
	// pairs holds a hash of every (domain, sender) and (domain, day)
	// seen, so that distinct senders and days cost 8 bytes each rather
	// than a string.
	pairs map[uint64]struct{}
	seed  maphash.Seed

	// What was left out.
	Flagged        map[string]int64 // flagged domain → deliveries
	NullSender     int64
	Unparsable     int64
	NotDelivered   int64
	Deliveries     int64 // counted
	first, last    time.Time
	flaggedDropped bool
	// Approximate says distinct senders and days are lower bounds: more
	// pairs than maxPairs were seen.
	Approximate bool
}

// maxFlaggedListed bounds the flagged domains Learner remembers by name.
const maxFlaggedListed = 10000

// NewLearner starts learning with the checker's knowledge.
func NewLearner(c *detect.Checker, opt LearnOptions) *Learner {
	if opt.MinDeliveries < 1 {
		opt.MinDeliveries = 1
	}
	return &Learner{c: c, opt: opt, cache: map[string]learnCache{}, domains: map[string]*Correspondent{},
		pairs: map[uint64]struct{}{}, seed: maphash.MakeSeed(), Flagged: map[string]int64{}}
}

// Delivery counts one delivery attempt.
func (l *Learner) Delivery(d *maillog.Delivery) {
	if (!l.opt.Since.IsZero() && d.Time.Before(l.opt.Since)) || (!l.opt.Until.IsZero() && !d.Time.Before(l.opt.Until)) {
		return
	}
	if !d.Delivered() {
		l.NotDelivered++
		return
	}
	if d.SenderKnown && d.From == "" {
		l.NullSender++
		return
	}
	raw := domainPart(d.To)
	e, ok := l.cache[raw]
	if !ok {
		f, err := l.c.Check("postmaster@" + raw)
		if err == nil && raw != "" {
			e = learnCache{domain: f.Domain, flagged: f.Flagged()}
		}
		if len(l.cache) >= maxCache {
			clear(l.cache)
		}
		l.cache[strings.Clone(raw)] = e
	}
	switch {
	case e.domain == "":
		l.Unparsable++
		return
	case e.flagged:
		if _, ok := l.Flagged[e.domain]; ok || len(l.Flagged) < maxFlaggedListed {
			l.Flagged[e.domain]++
		} else {
			l.flaggedDropped = true
		}
		return
	}
	l.Deliveries++
	l.first, l.last = minTime(l.first, d.Time), maxTime(l.last, d.Time)
	c := l.domains[e.domain]
	if c == nil {
		c = &Correspondent{Domain: e.domain, First: d.Time}
		l.domains[e.domain] = c
	}
	c.Deliveries++
	c.First, c.Last = minTime(c.First, d.Time), maxTime(c.Last, d.Time)
	if d.SenderKnown {
		c.Senders += l.firstPair(e.domain, 's', strings.ToLower(d.From), 0)
	}
	c.Days += l.firstPair(e.domain, 'd', "", uint64(d.Time.UTC().Unix()/86400))
}

// firstPair returns 1 the first time it sees (domain, kind, s, n), 0
// after; past maxPairs pairs it returns 0 and says the counts are lower
// bounds. It allocates nothing: it runs for every delivery of a log.
func (l *Learner) firstPair(domain string, kind byte, s string, n uint64) int {
	var h maphash.Hash
	h.SetSeed(l.seed)
	h.WriteString(domain)
	h.WriteByte(kind)
	h.WriteString(s)
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], n)
	h.Write(b[:])
	k := h.Sum64()
	if _, seen := l.pairs[k]; seen {
		return 0
	}
	if len(l.pairs) >= maxPairs {
		l.Approximate = true
		return 0
	}
	l.pairs[k] = struct{}{}
	return 1
}

// Result lists the correspondents, most delivered first.
func (l *Learner) Result() []Correspondent {
	out := make([]Correspondent, 0, len(l.domains))
	for _, c := range l.domains {
		if c.Deliveries >= l.opt.MinDeliveries && c.Senders >= l.opt.MinSenders && c.Days >= l.opt.MinDays {
			out = append(out, *c)
		}
	}
	slices.SortFunc(out, func(x, y Correspondent) int {
		return cmp.Or(cmp.Compare(y.Deliveries, x.Deliveries), cmp.Compare(x.Domain, y.Domain))
	})
	return out
}

// FlaggedTotal is the deliveries left out because they were flagged.
func (l *Learner) FlaggedTotal() int64 {
	var n int64
	for _, c := range l.Flagged {
		n += c
	}
	return n
}

// FlaggedDomains lists the flagged domains left out, most delivered first.
func (l *Learner) FlaggedDomains() []Correspondent {
	out := make([]Correspondent, 0, len(l.Flagged))
	for d, n := range l.Flagged {
		out = append(out, Correspondent{Domain: d, Deliveries: n})
	}
	slices.SortFunc(out, func(x, y Correspondent) int {
		return cmp.Or(cmp.Compare(y.Deliveries, x.Deliveries), cmp.Compare(x.Domain, y.Domain))
	})
	return out
}

// WriteKnown writes correspondents as a known-correspondents file, one
// "DOMAIN COUNT" a line, what detect.ReadKnown and stray check --known
// read; senders and first and last delivery follow as a comment.
// header lines are written first, as comments.
func WriteKnown(w io.Writer, cs []Correspondent, header []string) error {
	bw := bufio.NewWriter(w)
	for _, h := range header {
		fmt.Fprintf(bw, "# %s\n", h)
	}
	fmt.Fprintf(bw, "# DOMAIN DELIVERIES  # distinct senders and UTC days, first and last delivery\n")
	for _, c := range cs {
		fmt.Fprintf(bw, "%s %d  # senders=%d days=%d first=%s last=%s\n", c.Domain, c.Deliveries, c.Senders, c.Days, day(c.First), day(c.Last))
	}
	return bw.Flush()
}

// WriteCorrespondentsJSON writes one JSON object per correspondent.
func WriteCorrespondentsJSON(w io.Writer, cs []Correspondent) error {
	bw := bufio.NewWriter(w)
	for _, c := range cs {
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		bw.Write(b)
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// Summary describes what was learned and left out, for a file header.
func (l *Learner) Summary(kept int) []string {
	out := []string{fmt.Sprintf("%s deliveries to %s domains (%s listed)", thousands(l.Deliveries), thousands(int64(len(l.domains))), thousands(int64(kept)))}
	if !l.first.IsZero() {
		out[0] += fmt.Sprintf(", %s to %s", day(l.first), day(l.last))
	}
	left := fmt.Sprintf("left out: %s deliveries to %s flagged domains", thousands(l.FlaggedTotal()), thousands(int64(len(l.Flagged))))
	if l.flaggedDropped {
		left += " (and more)"
	}
	left += fmt.Sprintf(", %s from the null sender (bounces), %s unparsable", thousands(l.NullSender), thousands(l.Unparsable))
	out = append(out, left)
	if l.Approximate {
		out = append(out, "senders= and days= counts are lower bounds: too many to count them all")
	}
	return out
}
