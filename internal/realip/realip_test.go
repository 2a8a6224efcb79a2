package realip

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func prefixes(ss ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}

func TestFromBelievesForwardedForOnlyFromATrustedPeer(t *testing.T) {
	t.Parallel()
	trusted := prefixes("127.0.0.1/32", "10.0.0.0/8", "::1/128")
	for _, tc := range []struct {
		name   string
		peer   string
		xff    []string
		expect string
	}{
		{"untrusted peer, no header", "192.0.2.7:5000", nil, "192.0.2.7"},
		{"forged header from an untrusted peer is ignored", "192.0.2.7:5000", []string{"198.51.100.1"}, "192.0.2.7"},
		{"trusted proxy names the client", "127.0.0.1:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"right-most untrusted entry wins over a forged left one", "127.0.0.1:5000", []string{"203.0.113.9, 198.51.100.1"}, "198.51.100.1"},
		{"trusted hops are skipped", "127.0.0.1:5000", []string{"203.0.113.9, 198.51.100.1, 10.1.2.3"}, "198.51.100.1"},
		{"several headers are one list", "127.0.0.1:5000", []string{"203.0.113.9", "198.51.100.1, 10.1.2.3"}, "198.51.100.1"},
		{"entry with a port", "127.0.0.1:5000", []string{"198.51.100.1:4711"}, "198.51.100.1"},
		{"bracketed IPv6 with a port", "127.0.0.1:5000", []string{"[2001:db8::1]:4711"}, "2001:db8::1"},
		{"IPv4-mapped peer is trusted", "[::ffff:127.0.0.1]:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"IPv6 loopback proxy", "[::1]:5000", []string{"2001:db8::5"}, "2001:db8::5"},
		{"trusted peer without a header is the client", "127.0.0.1:5000", nil, "127.0.0.1"},
		{"only trusted hops: the left-most of them", "127.0.0.1:5000", []string{"10.9.9.9, 10.1.1.1"}, "10.9.9.9"},
		{"garbage stops the walk at the last trusted hop", "127.0.0.1:5000", []string{"198.51.100.1, unknown, 10.1.1.1"}, "10.1.1.1"},
		{"empty entries are skipped", "127.0.0.1:5000", []string{" , 198.51.100.1 ,"}, "198.51.100.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/h/x/release", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := From(r, trusted); got.String() != tc.expect {
				t.Errorf("From = %v, want %s", got, tc.expect)
			}
		})
	}
}

func TestFromWithoutTrustedProxiesIsThePeer(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "127.0.0.1:5000"
	r.Header.Set("X-Forwarded-For", "198.51.100.1")
	if got := From(r, nil); got.String() != "127.0.0.1" {
		t.Errorf("From = %v, want the peer", got)
	}
}

func TestKeyGroupsAnIPv6SubscriberByItsSlash64(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ a, b string }{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9"},
	} {
		if Key(netip.MustParseAddr(tc.a)) != Key(netip.MustParseAddr(tc.b)) {
			t.Errorf("%s and %s have different keys", tc.a, tc.b)
		}
	}
	if Key(netip.MustParseAddr("192.0.2.1")) == Key(netip.MustParseAddr("192.0.2.2")) {
		t.Error("two IPv4 addresses share a key")
	}
	if Key(netip.MustParseAddr("2001:db8:1:2::1")) == Key(netip.MustParseAddr("2001:db8:1:3::1")) {
		t.Error("two /64s share a key")
	}
}

func FuzzForwarded(f *testing.F) {
	f.Add("203.0.113.9, 198.51.100.1, 10.1.2.3", "127.0.0.1")
	f.Add("[2001:db8::1]:4711,unknown", "::1")
	f.Add(",,,", "10.0.0.1")
	trusted := prefixes("127.0.0.0/8", "10.0.0.0/8", "::1/128")
	f.Fuzz(func(t *testing.T, xff, peer string) {
		p, err := netip.ParseAddr(peer)
		if err != nil {
			return
		}
		got := Forwarded([]string{xff}, p, trusted)
		if !got.IsValid() {
			t.Fatalf("Forwarded(%q, %v) is no address", xff, p)
		}
		if got != p && got.Zone() != "" {
			t.Fatalf("zone kept: %v", got)
		}
	})
}
