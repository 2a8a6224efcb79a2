package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/postfixtest"
	"github.com/stray-mail/stray/internal/testcert"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with serial n
// to cert and key, and returns it.
func writeCert(t *testing.T, cert, key string, n int64) *x509.Certificate {
	return testcert.Write(t, cert, key, n)
}

// listen.http_tls serves the dashboard, the links and /healthz over TLS
// with HSTS, and a renewed certificate is served without a restart
// (issue 14).
func TestHTTPListenerServesTLSWithHSTSAndPicksUpARenewedCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := writeCert(t, cert, key, 1)
	addr := fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
	cfg := filepath.Join(dir, "stray.yaml")
	body := fmt.Sprintf("store: sqlite:%s\nhold:\n  secret_file: %s\nlisten:\n  milter: \"\"\n  policy: \"\"\n  http: %s\n  http_tls: {cert: cert.pem, key: key.pem}\n",
		filepath.Join(dir, "s.db"), filepath.Join(dir, "k"), addr)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := New(context.Background(), Options{ConfigPath: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Config().Hold.BaseURL; got != "https://"+addr {
		t.Errorf("base_url %q, want https://%s", got, addr)
	}
	if err := d.Start(); err != nil {
		d.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()

	get := func(trusted *x509.Certificate) (*http.Response, error) {
		pool := x509.NewCertPool()
		pool.AddCert(trusted)
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
		return c.Get("https://" + addr + "/healthz")
	}
	resp, err := get(first)
	if err != nil {
		t.Fatalf("https: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Fatalf("https /healthz: %d, HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}
	if resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + addr + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Error("plain http answered on a TLS listener")
	}
	// A renewed certificate: served to new connections without a restart.
	time.Sleep(1100 * time.Millisecond) // file times have a resolution; the files are checked at most once a second
	second := writeCert(t, cert, key, 2)
	future := time.Now().Add(2 * time.Second)
	os.Chtimes(cert, future, future)
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := get(second)
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the renewed certificate is not served: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
