// Package realip tells the address of the client behind an HTTP request,
// for rate limits and the event log. It believes X-Forwarded-For only when
// the immediate peer is a configured trusted proxy, and then takes the
// right-most address in it that is not a trusted proxy: the one the
// outermost trusted proxy saw. Entries left of it can be forged by the
// client and are never used.
package realip

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// maxHops bounds the X-Forwarded-For entries looked at, right to left.
const maxHops = 32

// From returns the client address of r: its peer (r.RemoteAddr), or, when
// the peer is in trusted, the right-most X-Forwarded-For address that is
// not. A trusted peer without a usable header is the client itself. The
// zero Addr means the peer address could not be read.
func From(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := Peer(r)
	if !peer.IsValid() || !contains(trusted, peer) {
		return peer
	}
	return Forwarded(r.Header.Values("X-Forwarded-For"), peer, trusted)
}

// Peer is the immediate peer's address (r.RemoteAddr), IPv4-mapped
// addresses unmapped; zero when unreadable.
func Peer(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

// Forwarded walks X-Forwarded-For values (several headers are one list)
// from the right, skipping trusted proxies, and returns the first address
// that is not one. An unparsable entry ends the walk: what lies left of it
// cannot be trusted, so the last trusted hop (or peer) is the answer.
func Forwarded(values []string, peer netip.Addr, trusted []netip.Prefix) netip.Addr {
	client := peer
	hops := 0
	for i := len(values) - 1; i >= 0; i-- {
		rest := values[i]
		for rest != "" {
			var entry string
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				entry, rest = rest[j+1:], rest[:j]
			} else {
				entry, rest = rest, ""
			}
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			hops++
			if hops > maxHops {
				return client
			}
			a, ok := parseHop(entry)
			if !ok {
				return client
			}
			client = a
			if !contains(trusted, a) {
				return a
			}
		}
	}
	return client
}

// parseHop reads one X-Forwarded-For entry: an address, possibly with a
// port ("192.0.2.1:4711", "[2001:db8::1]:4711").
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a.Unmap().WithZone(""), true
		}
	}
	return netip.Addr{}, false
}

func contains(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Key is a rate-limit key for a client address: the address itself for
// IPv4, its /64 for IPv6 (one subscriber usually holds a whole /64, so
// per-address keys would give one client 2^64 allowances).
func Key(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
