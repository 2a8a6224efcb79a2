package hold

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"testing"
)

// linkHolder is a Holder for the link pages alone.
func linkHolder(t *testing.T) *Holder {
	t.Helper()
	st := openTestStore(t)
	key, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "key"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	return New(Config{Node: "test"}, st, signer, slog.New(slog.DiscardHandler), nil)
}

// linkStatus fetches a link page as peer, with X-Forwarded-For xff.
func linkStatus(h http.Handler, peer, xff string) int {
	r := httptest.NewRequest("GET", "/h/0123/release?e=1&s=x", nil)
	r.RemoteAddr = peer
	if xff != "" {
		r.Header.Set("X-Forwarded-For", xff)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code
}

func TestLinkPagesRateLimitTheSenderBehindATrustedProxy(t *testing.T) {
	t.Parallel()
	h := linkHolder(t).HandlerBehind([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
	const proxy = "127.0.0.1:40000"
	for i := 0; i < 30; i++ {
		if c := linkStatus(h, proxy, "198.51.100.1"); c == http.StatusTooManyRequests {
			t.Fatalf("request %d of the first sender refused", i+1)
		}
	}
	if c := linkStatus(h, proxy, "198.51.100.1"); c != http.StatusTooManyRequests {
		t.Fatalf("31st request of one sender: %d, want 429", c)
	}
	if c := linkStatus(h, proxy, "203.0.113.5"); c == http.StatusTooManyRequests {
		t.Fatal("another sender behind the same proxy was refused")
	}
	// The forged left-most entry does not give the first sender a new key.
	if c := linkStatus(h, proxy, "192.0.2.99, 198.51.100.1"); c != http.StatusTooManyRequests {
		t.Fatalf("a forged X-Forwarded-For entry escaped the limit: %d", c)
	}
}

func TestLinkPagesIgnoreForwardedForFromAnUntrustedPeer(t *testing.T) {
	t.Parallel()
	for _, trusted := range [][]netip.Prefix{nil, {netip.MustParsePrefix("10.0.0.0/8")}} {
		h := linkHolder(t).HandlerBehind(trusted)
		const peer = "127.0.0.2:40000"
		for i := 0; i < 30; i++ {
			linkStatus(h, peer, "198.51.100."+string(rune('0'+i%10)))
		}
		if c := linkStatus(h, peer, "203.0.113.77"); c != http.StatusTooManyRequests {
			t.Fatalf("trusted %v: a forged X-Forwarded-For bought a fresh allowance: %d", trusted, c)
		}
	}
}
