package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/postfixtest"
)

// selfSigned writes a self-signed certificate and its key for name.
func selfSigned(t *testing.T, certPath, keyPath, name string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The flags complete the config file before it is checked: certificate
// rules in the file, the certificate itself on the command line, is a
// relay that starts (it failed "needs relay.tls_cert" at start and on
// every SIGHUP, issue 13).
func TestRelayFlagsCompleteTheConfigFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	selfSigned(t, filepath.Join(dir, "relay.pem"), filepath.Join(dir, "relay.key"), "relay.test")
	cfg := filepath.Join(dir, "stray.yaml")
	if err := os.WriteFile(cfg, []byte("store: \"\"\nrelay:\n  allow_certs: [mx.example.com]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := &lockedLog{}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"relay", "--config", cfg, "--listen", addr, "--next-hop", "127.0.0.1:25",
			"--tls-cert", filepath.Join(dir, "relay.pem"), "--tls-key", filepath.Join(dir, "relay.key")},
			Stdio{In: strings.NewReader(""), Out: io.Discard, Err: errs})
	}()
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case code := <-done:
			t.Fatalf("stray relay exited %d:\n%s", code, errs.String())
		default:
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(end) {
			t.Fatalf("stray relay not listening after 10s:\n%s", errs.String())
		}
	}
	cancel()
	if code := <-done; code != ExitOK {
		t.Errorf("exit %d after stop:\n%s", code, errs.String())
	}
}
