package scan

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"

	"github.com/stray-mail/stray/permute"
)

// Status is what DNS says about a lookalike.
type Status string

const (
	// Registered: the name exists (it has records, or is delegated).
	Registered Status = "registered"
	// Wildcard: only a wildcard above it answers (*.cm): not registered,
	// but mail to it may still be delivered somewhere.
	Wildcard Status = "wildcard"
	// Unregistered: NXDOMAIN.
	Unregistered Status = "unregistered"
	// Unknown: no usable answer (SERVFAIL, REFUSED, timeouts).
	Unknown Status = "unknown"
)

// Exposed reports whether the lookalike can receive anything: registered or
// answered by a wildcard.
func (s Status) Exposed() bool { return s == Registered || s == Wildcard }

// Target is a domain to protect and its lookalikes.
type Target struct {
	Domain     string
	Candidates []permute.Candidate
}

// Result is what a scan found about one lookalike.
type Result struct {
	Domain     string  `json:"domain"`
	Unicode    string  `json:"unicode"`
	Original   string  `json:"original"`
	Kind       string  `json:"kind"`
	Likelihood float64 `json:"likelihood"`
	Status     Status  `json:"status"`
	// Records, sorted; MX hosts by preference then name, without the
	// trailing dot.
	A    []string `json:"a"`
	AAAA []string `json:"aaaa"`
	MX   []string `json:"mx"`
	NS   []string `json:"ns"`
	// NullMX: the domain says it takes no mail (RFC 7505).
	NullMX bool `json:"null_mx"`
	// AcceptsMail: mail to the domain would be delivered (a usable MX, or
	// an address when there is no MX); nil when that is unknown.
	AcceptsMail *bool `json:"accepts_mail"`
	// SMTP is the answer of its mail server to a random recipient, when
	// probed.
	SMTP *SMTPResult `json:"smtp,omitempty"`
	// Errors lists the lookups that got no usable answer.
	Errors []string `json:"errors,omitempty"`
}

// Scanner resolves lookalikes. Its zero value is not usable; set Resolver.
type Scanner struct {
	Resolver Resolver
	// Concurrency bounds the lookalikes resolved at once (default 32);
	// each has at most three questions in flight.
	Concurrency int
	// SMTP, when set, probes the mail server of every lookalike that
	// accepts mail.
	SMTP *SMTPProber
	// Progress, when set, is called after each lookalike with how many are
	// done out of how many.
	Progress func(done, total int)
	// Logger gets one debug line per failed lookup.
	Logger *slog.Logger

	probeLabel string
	wildcards  sync.Map // parent zone → *wildcardEntry
	hosts      sync.Map // MX host → *hostEntry
}

// DefaultConcurrency is the default number of lookalikes resolved at once.
const DefaultConcurrency = 32

// Scan resolves every candidate of every target, each distinct domain once
// (under the first target that has it), and returns the results in the
// targets' and candidates' order. It stops early only when ctx ends, with
// ctx's error.
func (s *Scanner) Scan(ctx context.Context, targets []Target) ([]Result, error) {
	if s.Resolver == nil {
		return nil, fmt.Errorf("scan: no resolver")
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.probeLabel == "" {
		var b [8]byte
		rand.Read(b[:])
		s.probeLabel = "stray-wildcard-probe-" + hex.EncodeToString(b[:])
	}
	var jobs []Result
	seen := map[string]bool{}
	for _, t := range targets {
		for _, c := range t.Candidates {
			if seen[c.Domain] {
				continue
			}
			seen[c.Domain] = true
			jobs = append(jobs, Result{Domain: c.Domain, Unicode: c.Unicode, Original: t.Domain, Kind: c.Kind, Likelihood: c.Likelihood})
		}
	}
	n := s.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	n = min(n, max(len(jobs), 1))
	var next, done atomic.Int64
	var wg sync.WaitGroup
	// Progress is reported in order, never backwards, although workers
	// finish concurrently.
	var progressMu sync.Mutex
	reported := 0
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(jobs) || ctx.Err() != nil {
					return
				}
				s.resolve(ctx, &jobs[i])
				d := int(done.Add(1))
				if s.Progress != nil {
					progressMu.Lock()
					if d > reported {
						reported = d
						s.Progress(d, len(jobs))
					}
					progressMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return jobs, err
	}
	return jobs, nil
}

// answer is one question's outcome.
type answer struct {
	msg *dns.Msg
	err string // "" when msg is usable (NOERROR or NXDOMAIN)
}

func (s *Scanner) ask(ctx context.Context, name string, qtype uint16) answer {
	m, err := s.Resolver.Query(ctx, name, qtype)
	what := dns.TypeToString[qtype] + " " + name
	switch {
	case err != nil:
		s.Logger.Debug("scan: lookup failed", "query", what, "err", err)
		return answer{err: what + ": " + err.Error()}
	case m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError:
		s.Logger.Debug("scan: lookup failed", "query", what, "rcode", dns.RcodeToString[m.Rcode])
		return answer{err: what + ": " + dns.RcodeToString[m.Rcode]}
	}
	return answer{msg: m}
}

// resolve fills in r. The NS question comes first: NXDOMAIN ends the work
// there (most lookalikes do not exist); otherwise A, AAAA and MX are asked
// together.
func (s *Scanner) resolve(ctx context.Context, r *Result) {
	r.A, r.AAAA, r.MX, r.NS = []string{}, []string{}, []string{}, []string{}
	ns := s.ask(ctx, r.Domain, dns.TypeNS)
	if ns.err != "" {
		r.Status, r.Errors = Unknown, []string{ns.err}
		return
	}
	if ns.msg.Rcode == dns.RcodeNameError {
		r.Status = Unregistered
		return
	}
	r.NS = records(ns.msg, r.Domain, dns.TypeNS)
	var a, aaaa, mx answer
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); a = s.ask(ctx, r.Domain, dns.TypeA) }()
	go func() { defer wg.Done(); aaaa = s.ask(ctx, r.Domain, dns.TypeAAAA) }()
	go func() { defer wg.Done(); mx = s.ask(ctx, r.Domain, dns.TypeMX) }()
	wg.Wait()
	for _, x := range []answer{a, aaaa, mx} {
		if x.err != "" {
			r.Errors = append(r.Errors, x.err)
		}
	}
	if a.msg != nil {
		r.A = records(a.msg, "", dns.TypeA)
	}
	if aaaa.msg != nil {
		r.AAAA = records(aaaa.msg, "", dns.TypeAAAA)
	}
	if mx.msg != nil {
		r.MX, r.NullMX = mxHosts(mx.msg)
	}
	r.Status = Registered
	if len(r.NS) == 0 && s.answeredByWildcard(ctx, r) {
		r.Status = Wildcard
	}
	r.AcceptsMail = s.acceptsMail(ctx, r, mx)
	if s.SMTP != nil && r.AcceptsMail != nil && *r.AcceptsMail {
		r.SMTP = s.probeSMTP(ctx, r)
	}
}

// records lists the data of the answer's records of type t (owned by owner
// when it is set), sorted, without trailing dots.
func records(m *dns.Msg, owner string, t uint16) []string {
	out := []string{}
	for _, rr := range m.Answer {
		if rr.Header().Rrtype != t || (owner != "" && !strings.EqualFold(strings.TrimSuffix(rr.Header().Name, "."), owner)) {
			continue
		}
		var v string
		switch x := rr.(type) {
		case *dns.A:
			v = x.A.String()
		case *dns.AAAA:
			v = x.AAAA.String()
		case *dns.NS:
			v = strings.ToLower(strings.TrimSuffix(x.Ns, "."))
		}
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// mxHosts lists the MX hosts by preference, and reports a null MX (a
// single MX of "." — RFC 7505).
func mxHosts(m *dns.Msg) (hosts []string, null bool) {
	var mxs []*dns.MX
	for _, rr := range m.Answer {
		if x, ok := rr.(*dns.MX); ok {
			mxs = append(mxs, x)
		}
	}
	if len(mxs) == 1 && mxs[0].Mx == "." {
		return []string{}, true
	}
	slices.SortFunc(mxs, func(a, b *dns.MX) int {
		if a.Preference != b.Preference {
			return int(a.Preference) - int(b.Preference)
		}
		return strings.Compare(a.Mx, b.Mx)
	})
	hosts = []string{}
	for _, x := range mxs {
		h := strings.ToLower(strings.TrimSuffix(x.Mx, "."))
		if h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts, false
}

// wildcardEntry is what a random name below a zone resolves to.
type wildcardEntry struct {
	once      sync.Once
	wild      bool
	a, aaaa   []string
	mx        []string
	probeFail bool
}

// answeredByWildcard reports whether r's answers are what a random name
// beside it gets: a wildcard in its parent zone (as .cm has had), not a
// registration. A delegated name (NS records of its own) never is.
func (s *Scanner) answeredByWildcard(ctx context.Context, r *Result) bool {
	i := strings.IndexByte(r.Domain, '.')
	if i < 0 {
		return false
	}
	parent := r.Domain[i+1:]
	v, _ := s.wildcards.LoadOrStore(parent, &wildcardEntry{})
	e := v.(*wildcardEntry)
	e.once.Do(func() {
		probe := s.probeLabel + "." + parent
		var a, aaaa, mx answer
		var wg sync.WaitGroup
		wg.Add(3)
		go func() { defer wg.Done(); a = s.ask(ctx, probe, dns.TypeA) }()
		go func() { defer wg.Done(); aaaa = s.ask(ctx, probe, dns.TypeAAAA) }()
		go func() { defer wg.Done(); mx = s.ask(ctx, probe, dns.TypeMX) }()
		wg.Wait()
		if a.err != "" || aaaa.err != "" || mx.err != "" {
			e.probeFail = true
			return
		}
		e.a, e.aaaa = records(a.msg, "", dns.TypeA), records(aaaa.msg, "", dns.TypeAAAA)
		e.mx, _ = mxHosts(mx.msg)
		e.wild = a.msg.Rcode == dns.RcodeSuccess && len(e.a)+len(e.aaaa)+len(e.mx) > 0
	})
	if !e.wild {
		return false
	}
	return slices.Equal(e.a, r.A) && slices.Equal(e.aaaa, r.AAAA) && slices.Equal(e.mx, r.MX)
}

// hostEntry caches the addresses of one MX host.
type hostEntry struct {
	once  sync.Once
	addrs []string
	known bool // false when the lookups failed
}

// hostAddrs resolves an MX host's A and AAAA records once per scan: parked
// lookalikes share a few mail servers.
func (s *Scanner) hostAddrs(ctx context.Context, host string) ([]string, bool) {
	v, _ := s.hosts.LoadOrStore(host, &hostEntry{})
	e := v.(*hostEntry)
	e.once.Do(func() {
		a := s.ask(ctx, host, dns.TypeA)
		aaaa := s.ask(ctx, host, dns.TypeAAAA)
		if a.msg != nil {
			e.addrs = append(e.addrs, records(a.msg, "", dns.TypeA)...)
		}
		if aaaa.msg != nil {
			e.addrs = append(e.addrs, records(aaaa.msg, "", dns.TypeAAAA)...)
		}
		e.known = len(e.addrs) > 0 || (a.err == "" && aaaa.err == "")
	})
	return e.addrs, e.known
}

// maxMXHosts bounds the MX hosts looked up per lookalike.
const maxMXHosts = 4

// acceptsMail decides whether mail to r would be delivered: a null MX
// refuses it; otherwise an MX host with an address takes it; without MX
// records the domain's own address does (RFC 5321 §5.1). nil: unknown.
func (s *Scanner) acceptsMail(ctx context.Context, r *Result, mx answer) *bool {
	yes, no := true, false
	switch {
	case r.NullMX:
		return &no
	case mx.err != "":
		return nil
	case len(r.MX) == 0:
		if len(r.A)+len(r.AAAA) > 0 {
			return &yes
		}
		return &no
	}
	unknown := false
	for _, h := range r.MX[:min(len(r.MX), maxMXHosts)] {
		addrs, known := s.hostAddrs(ctx, h)
		if len(addrs) > 0 {
			return &yes
		}
		if !known {
			unknown = true
			r.Errors = append(r.Errors, "A/AAAA "+h+": no answer")
		}
	}
	if unknown {
		return nil
	}
	return &no
}

// mailHosts lists where mail for r goes, in order: its MX hosts' addresses,
// or its own when it has no MX.
func (s *Scanner) mailHosts(ctx context.Context, r *Result) (host string, addrs []string) {
	if len(r.MX) == 0 {
		return r.Domain, append(slices.Clone(r.A), r.AAAA...)
	}
	for _, h := range r.MX[:min(len(r.MX), maxMXHosts)] {
		if a, _ := s.hostAddrs(ctx, h); len(a) > 0 {
			return h, a
		}
	}
	return "", nil
}

// ErrNoSuchDomain is CheckResolves' answer for a domain the resolver says
// does not exist (NXDOMAIN).
var ErrNoSuchDomain = errors.New("the resolver says it does not exist (NXDOMAIN)")

// CheckResolves asks the resolver about a scanned domain itself, before its
// lookalikes. A resolver that answers NXDOMAIN for everything (a broken
// forwarder, a filtering resolver, a wrong --resolver) would otherwise make
// every lookalike "unregistered" and the scan look clean. It returns nil
// when the name exists (any NOERROR answer, with or without NS records: a
// name such as us.example.com need not be delegated), an error wrapping
// ErrNoSuchDomain on NXDOMAIN, and another error when there is no usable
// answer (SERVFAIL, REFUSED, a timeout).
func (s *Scanner) CheckResolves(ctx context.Context, domain string) error {
	if s.Resolver == nil {
		return fmt.Errorf("scan: no resolver")
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	a := s.ask(ctx, domain, dns.TypeNS)
	switch {
	case a.err != "":
		return fmt.Errorf("scan: %s: no usable answer (%s)", domain, a.err)
	case a.msg.Rcode == dns.RcodeNameError:
		return fmt.Errorf("scan: %s: %w", domain, ErrNoSuchDomain)
	}
	return nil
}
