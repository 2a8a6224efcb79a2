package scan

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"

	"github.com/stray-mail/stray/internal/scan/scantest"
	"github.com/stray-mail/stray/permute"
)

// startZone serves a zone on 127.0.0.1 (random port) for the test.
func startZone(t testing.TB, zone string) *scantest.Server {
	t.Helper()
	srv, err := scantest.Start(zone, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func lookalikesZone(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("testdata/lookalikes.zone")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func resolverFor(t testing.TB, srv *scantest.Server, timeout time.Duration) *DNSResolver {
	t.Helper()
	r, err := NewDNSResolver(srv.Addr, timeout, 1)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func targetsFor(t testing.TB, domains ...string) []Target {
	t.Helper()
	var out []Target
	for _, d := range domains {
		c, err := permute.Generate(d, permute.Options{})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Target{Domain: d, Candidates: c})
	}
	return out
}

func resultsByDomain(rs []Result) map[string]Result {
	m := map[string]Result{}
	for _, r := range rs {
		m[r.Domain] = r
	}
	return m
}

// The coverage target of the issue: every registered lookalike of the typo
// kinds in the zone is found for army.mil, mail.mil and gmail.com, with its
// records and whether it takes mail.
func TestScanFindsEveryRegisteredLookalikeInTheZone(t *testing.T) {
	t.Parallel()
	srv := startZone(t, lookalikesZone(t))
	s := &Scanner{Resolver: resolverFor(t, srv, 500*time.Millisecond), Concurrency: 16}
	res, err := s.Scan(context.Background(), targetsFor(t, "army.mil", "mail.mil", "gmail.com"))
	if err != nil {
		t.Fatal(err)
	}
	got := resultsByDomain(res)
	yes, no := true, false
	for _, tc := range []struct {
		domain  string
		status  Status
		accepts *bool
		mx, ns  []string
	}{
		{"army.ml", Registered, &yes, []string{"mail.army.ml"}, []string{"ns1.army.ml", "ns2.army.ml"}},
		{"army.il", Registered, &yes, nil, []string{"ns.hosting.example"}},
		{"armym.il", Registered, &yes, []string{"mx.parking.example"}, nil},
		{"armymil.com", Registered, &no, nil, nil}, // null MX
		{"army-mil.com", Registered, &yes, nil, nil},
		{"armymil.net", Registered, &no, nil, nil}, // no MX, no address
		{"army.mit", Registered, &yes, nil, nil},
		{"amry.mil", Registered, &yes, nil, nil},
		{"arrny.mil", Registered, &yes, nil, nil},
		{"mail.ml", Registered, &yes, nil, nil},
		{"mail.il", Registered, &yes, nil, nil},
		{"mailmil.com", Registered, &yes, nil, nil},
		{"mial.mil", Registered, &yes, nil, nil},
		{"gmail.cm", Registered, &yes, []string{"mx.gmail.cm"}, []string{"ns1.gmail.cm"}},
		{"gmail.co", Registered, &yes, nil, nil},
		{"gmailc.om", Registered, &yes, nil, nil},
		{"gmai.com", Registered, &no, []string{"mx.nowhere.example"}, nil}, // MX host does not resolve
		{"gamil.com", Registered, &yes, nil, nil},
		{"gmil.com", Registered, &yes, nil, nil},
		{"ggmail.com", Registered, &yes, nil, nil}, // CNAME to a parking host
		{"xn--gmil-63d.com", Registered, &yes, nil, nil},
		{"xn--gml-7cd4q.com", Registered, &yes, nil, nil},
		{"xn--mail-z7b.com", Registered, &yes, nil, nil},
		{"gmail.om", Wildcard, &yes, []string{"mx.wildcard.example"}, nil},
		{"gmail.c.om", Wildcard, &yes, []string{"mx.wildcard.example"}, nil}, // the extra dot lands in .om too
		{"gmial.com", Unknown, nil, nil, nil},                                // SERVFAIL
		{"gmaill.com", Unknown, nil, nil, nil},                               // answers after 3s
	} {
		r, ok := got[tc.domain]
		if !ok {
			t.Errorf("%s was not scanned", tc.domain)
			continue
		}
		if r.Status != tc.status {
			t.Errorf("%s: status %s, want %s (errors %v)", tc.domain, r.Status, tc.status, r.Errors)
		}
		if (r.AcceptsMail == nil) != (tc.accepts == nil) || (r.AcceptsMail != nil && *r.AcceptsMail != *tc.accepts) {
			t.Errorf("%s: accepts_mail %v, want %v", tc.domain, ptr(r.AcceptsMail), ptr(tc.accepts))
		}
		if tc.mx != nil && !slices.Equal(r.MX, tc.mx) {
			t.Errorf("%s: MX %v, want %v", tc.domain, r.MX, tc.mx)
		}
		if tc.ns != nil && !slices.Equal(r.NS, tc.ns) {
			t.Errorf("%s: NS %v, want %v", tc.domain, r.NS, tc.ns)
		}
	}
	if r := got["armymil.com"]; !r.NullMX {
		t.Errorf("armymil.com: null MX not seen: %+v", r)
	}
	if r := got["ggmail.com"]; !slices.Equal(r.A, []string{"192.0.2.54"}) {
		t.Errorf("ggmail.com: A %v through the CNAME", r.A)
	}
	if r := got["army.il"]; !slices.Equal(r.AAAA, []string{"2001:db8::20"}) {
		t.Errorf("army.il: AAAA %v", r.AAAA)
	}
	// Nothing else in the zone is registered: every other candidate is
	// NXDOMAIN.
	exposed := 0
	for _, r := range res {
		if r.Status.Exposed() {
			exposed++
		}
		if r.Status == Unknown && r.Domain != "gmial.com" && r.Domain != "gmaill.com" {
			t.Errorf("%s: unknown: %v", r.Domain, r.Errors)
		}
	}
	if exposed != 25 {
		t.Errorf("%d exposed lookalikes, want the zone's 25", exposed)
	}
}

func ptr(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}

// A lookalike that does not exist costs one question; one that does, four
// (plus its MX hosts' addresses, once per scan).
func TestUnregisteredCandidatesCostOneQuery(t *testing.T) {
	t.Parallel()
	srv := startZone(t, "exists.com. A 192.0.2.1\n")
	s := &Scanner{Resolver: resolverFor(t, srv, time.Second)}
	cands := []permute.Candidate{{Domain: "nope1.com"}, {Domain: "nope2.com"}, {Domain: "nope3.com"}}
	if _, err := s.Scan(context.Background(), []Target{{Domain: "x.com", Candidates: cands}}); err != nil {
		t.Fatal(err)
	}
	if q := srv.Queries(); q != 3 {
		t.Errorf("%d queries for 3 NXDOMAIN names, want 3", q)
	}
}

// A SERVFAIL or a timeout on the first question is unknown, never
// registered, even below a wildcard.
func TestServFailAndTimeoutsAreUnknownNeverRegistered(t *testing.T) {
	t.Parallel()
	srv := startZone(t, `*.cm. A 192.0.2.1
bad.cm. TXT "stray-test:servfail"
slow.cm. TXT "stray-test:delay=2s"
`)
	s := &Scanner{Resolver: resolverFor(t, srv, 150*time.Millisecond)}
	start := time.Now()
	res, err := s.Scan(context.Background(), []Target{{Domain: "x.com", Candidates: []permute.Candidate{{Domain: "bad.cm"}, {Domain: "slow.cm"}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Status != Unknown || r.AcceptsMail != nil || len(r.Errors) == 0 {
			t.Errorf("%s: %s accepts %v errors %v, want unknown with an error", r.Domain, r.Status, ptr(r.AcceptsMail), r.Errors)
		}
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("scan took %v: the timeout did not bound it", el)
	}
}

// A delegated name under a wildcard TLD is registered; a name only the
// wildcard answers for is not.
func TestWildcardAnswersAreToldFromRegistrations(t *testing.T) {
	t.Parallel()
	srv := startZone(t, `*.ws. A 192.0.2.1
*.ws. MX 10 mx.ws-wildcard.example.
mx.ws-wildcard.example. A 192.0.2.2
real.ws. NS ns.real.ws.
real.ws. A 192.0.2.1
real.ws. MX 10 mx.ws-wildcard.example.
own.ws. A 192.0.2.9
`)
	s := &Scanner{Resolver: resolverFor(t, srv, time.Second)}
	res, err := s.Scan(context.Background(), []Target{{Domain: "x.com", Candidates: []permute.Candidate{{Domain: "random.ws"}, {Domain: "real.ws"}, {Domain: "own.ws"}}}})
	if err != nil {
		t.Fatal(err)
	}
	got := resultsByDomain(res)
	for d, want := range map[string]Status{"random.ws": Wildcard, "real.ws": Registered, "own.ws": Registered} {
		if got[d].Status != want {
			t.Errorf("%s: %s, want %s", d, got[d].Status, want)
		}
	}
}

// countingResolver counts questions in flight to check the bound.
type countingResolver struct {
	inner        Resolver
	inFlight     atomic.Int64
	maxSeen      atomic.Int64
	delayPerCall time.Duration
}

func (c *countingResolver) Query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	n := c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	for {
		m := c.maxSeen.Load()
		if n <= m || c.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(c.delayPerCall)
	return c.inner.Query(ctx, name, qtype)
}

func TestConcurrencyIsBounded(t *testing.T) {
	t.Parallel()
	srv := startZone(t, "a.com. A 192.0.2.1\n")
	cr := &countingResolver{inner: resolverFor(t, srv, time.Second), delayPerCall: 5 * time.Millisecond}
	var cands []permute.Candidate
	for i := range 60 {
		cands = append(cands, permute.Candidate{Domain: "n" + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + ".com"})
	}
	var progress atomic.Int64
	s := &Scanner{Resolver: cr, Concurrency: 4, Progress: func(done, total int) { progress.Store(int64(done)) }}
	res, err := s.Scan(context.Background(), []Target{{Domain: "x.com", Candidates: cands}})
	if err != nil {
		t.Fatal(err)
	}
	if m := cr.maxSeen.Load(); m > 4 {
		t.Errorf("%d questions in flight with concurrency 4", m)
	}
	if int(progress.Load()) != len(res) {
		t.Errorf("progress ended at %d of %d", progress.Load(), len(res))
	}
}

func TestScanStopsWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	srv := startZone(t, "a.com. A 192.0.2.1\n")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := &Scanner{Resolver: resolverFor(t, srv, time.Second)}
	if _, err := s.Scan(ctx, targetsFor(t, "gmail.com")); err == nil {
		t.Error("no error from a cancelled scan")
	}
	if q := srv.Queries(); q > DefaultConcurrency {
		t.Errorf("%d queries after cancellation", q)
	}
}

// Each domain is scanned once even when two targets share it.
func TestSharedCandidatesAreScannedOnce(t *testing.T) {
	t.Parallel()
	srv := startZone(t, "")
	s := &Scanner{Resolver: resolverFor(t, srv, time.Second)}
	c := []permute.Candidate{{Domain: "shared.com"}}
	res, err := s.Scan(context.Background(), []Target{{Domain: "a.com", Candidates: c}, {Domain: "b.com", Candidates: c}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Original != "a.com" || srv.Queries() != 1 {
		t.Errorf("got %d results (%+v), %d queries", len(res), res, srv.Queries())
	}
}

func TestNewDNSResolverRejectsBadAddresses(t *testing.T) {
	t.Parallel()
	for _, a := range []string{"", "127.0.0.1", ":53", "127.0.0.1:"} {
		if _, err := NewDNSResolver(a, time.Second, 1); err == nil {
			t.Errorf("%q accepted", a)
		}
	}
}

func TestScantestRefusesNonLoopbackAddresses(t *testing.T) {
	t.Parallel()
	if s, err := scantest.Start("", "0.0.0.0:0"); err == nil {
		s.Close()
		t.Error("listening on 0.0.0.0 allowed")
	}
}

// Issue 11: stray scan generates the accented lookalikes of a domain
// (gmàil.com, gmaíl.com) and finds those that are registered.
func TestScanFindsAccentedLookalikes(t *testing.T) {
	t.Parallel()
	registered := []string{"gmàil.com", "gmaíl.com", "gmáil.com"}
	var zone strings.Builder
	for i, u := range registered {
		a, err := idna.Lookup.ToASCII(u)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&zone, "%s. NS ns.hosting.example.\n%s. A 192.0.2.%d\n", a, a, 70+i)
	}
	srv := startZone(t, zone.String())
	s := &Scanner{Resolver: resolverFor(t, srv, 500*time.Millisecond), Concurrency: 16}
	res, err := s.Scan(context.Background(), targetsFor(t, "gmail.com"))
	if err != nil {
		t.Fatal(err)
	}
	got := resultsByDomain(res)
	exposed := 0
	for _, r := range res {
		if r.Status.Exposed() {
			exposed++
		}
	}
	for _, u := range registered {
		a, _ := idna.Lookup.ToASCII(u)
		r, ok := got[a]
		switch {
		case !ok:
			t.Errorf("%s (%s) was not generated", u, a)
		case r.Status != Registered:
			t.Errorf("%s: status %s, want registered", u, r.Status)
		}
	}
	if exposed != len(registered) {
		t.Errorf("%d exposed lookalikes, want the zone's %d", exposed, len(registered))
	}
	if r, ok := got["xn--gmil-1na.com"]; !ok || r.Kind != permute.KindDiacritic { // gmàil.com's A-label, spelled out
		t.Errorf("gmàil.com is not among the scanned candidates as xn--gmil-1na.com, kind diacritic: %+v", r)
	}
}

// A resolver that says NXDOMAIN for the scanned domain itself cannot be
// trusted about its lookalikes; one that answers NOERROR (even without NS
// records) can; one that fails is an error, but not NXDOMAIN.
func TestCheckResolvesRefusesAResolverThatDeniesTheScannedDomain(t *testing.T) {
	t.Parallel()
	srv := startZone(t, `example.com. NS ns.example.com.
ns.example.com. A 192.0.2.53
us.example.com. A 192.0.2.54
broken.example. TXT "stray-test:servfail"
`)
	s := &Scanner{Resolver: resolverFor(t, srv, 300*time.Millisecond)}
	for _, tc := range []struct {
		domain   string
		wantErr  bool
		nxdomain bool
	}{
		{"example.com", false, false},
		{"us.example.com", false, false},
		{"army.mil", true, true},
		{"broken.example", true, false},
	} {
		err := s.CheckResolves(context.Background(), tc.domain)
		if (err != nil) != tc.wantErr || errors.Is(err, ErrNoSuchDomain) != tc.nxdomain {
			t.Errorf("%s: err %v, want error %v (NXDOMAIN %v)", tc.domain, err, tc.wantErr, tc.nxdomain)
		}
	}
}
