package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// batch10 is a typical 10-recipient compose form: some typos, mostly not.
var batch10 = []string{
	"b@army.ml", "j@gmial.com", "ok@ymail.com", "Jo Smith <jo@army.mil>", "k@gmаil.com",
	"sales@example.com", "p@hotmial.con", "q@outlook.com", "r@uscompany.com", "s@yahoo.co.uk",
}

func batchBody(tb testing.TB) []byte {
	b, err := json.Marshal(CheckRequest{Sender: "a@army.mil", Recipients: batch10})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// BenchmarkCheck10 is one 10-recipient request through the handler,
// in-process (no network): authentication from the cache, rate limit,
// decoding, ten checks and policy decisions, encoding.
func BenchmarkCheck10(b *testing.B) {
	fx := newFixture(b, func(c *Config) { c.Rate, c.Burst = 1e9, 1<<30 })
	body := batchBody(b)
	auth := "Bearer " + fx.token
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := httptest.NewRequest("POST", "/api/v1/check", bytes.NewReader(body))
			r.Header.Set("Authorization", auth)
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			fx.h.ServeHTTP(w, r)
			if w.Code != 200 {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
}

// TestCheckLatencyOverLoopback measures 10-recipient requests over a real
// HTTP connection on loopback, one keep-alive client, one request at a
// time: the latency a compose form sees, minus the network. It asserts a
// generous bound only; `make api-latency` runs it with more requests
// (STRAY_API_REQUESTS) and prints the percentiles.
func TestCheckLatencyOverLoopback(t *testing.T) {
	n := 2000
	if s := os.Getenv("STRAY_API_REQUESTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 100 {
			t.Fatalf("STRAY_API_REQUESTS=%q: want a number ≥ 100", s)
		}
	}
	// Production limits, except the per-token rate, which one client
	// sending back to back would exceed by design.
	fx := newFixture(t, func(c *Config) { c.Rate, c.Burst = 1e9, 1<<30; c.Now = nil })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: fx.h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	url := "http://" + l.Addr().String() + "/api/v1/check"
	body := batchBody(t)
	one := func() time.Duration {
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+fx.token)
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("status %d, %v", resp.StatusCode, err)
		}
		return d
	}
	for i := 0; i < 200; i++ { // warm up: connection, caches
		one()
	}
	lat := make([]time.Duration, n)
	start := time.Now()
	for i := range lat {
		lat[i] = one()
	}
	total := time.Since(start)
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
	t.Logf("%d requests of %d recipients over loopback, one keep-alive connection: p50 %v  p99 %v  p99.9 %v  max %v  (%.0f req/s)",
		n, len(batch10), pct(0.50), pct(0.99), pct(0.999), lat[len(lat)-1], float64(n)/total.Seconds())
	if p99 := pct(0.99); p99 > 50*time.Millisecond {
		t.Errorf("p99 %v, want < 50ms (the target is 5 ms)", p99)
	}
}
