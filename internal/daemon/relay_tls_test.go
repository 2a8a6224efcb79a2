package daemon

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/stray-mail/stray/internal/postfixtest"
)

// relayServes returns the serial number of the certificate the relay at
// addr presents after STARTTLS.
func relayServes(t *testing.T, addr string) int64 {
	t.Helper()
	var serial int64
	c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer c.Close()
	if err := c.Noop(); err != nil {
		t.Fatalf("NOOP over TLS: %v", err)
	}
	if cs, ok := c.TLSConnectionState(); ok {
		serial = cs.PeerCertificates[0].SerialNumber.Int64()
	}
	return serial
}

// The relay's certificate is re-read on SIGHUP (ReloadFiles) even when
// the file's time did not change, and broken files keep the running one
// (issue 13).
func TestRelayCertificateIsReloadedOnHUPAndBrokenFilesKeepTheRunningOne(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "relay.pem"), filepath.Join(dir, "relay.key")
	writeCert(t, cert, key, 1)
	fi, _ := os.Stat(cert)
	addr := fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
	d, stop := runDaemonIn(t, dir, fmt.Sprintf("store: \"\"\nlisten:\n  milter: \"\"\n  policy: \"\"\n  http: \"\"\n  relay: %s\nrelay:\n  next_hop: 127.0.0.1:1\n  tls_cert: relay.pem\n  tls_key: relay.key\n", addr), &lockedLog{})
	defer stop()

	if s := relayServes(t, addr); s != 1 {
		t.Fatalf("serves serial %d, want 1", s)
	}
	// A new certificate with the old file time: only a reload finds it.
	writeCert(t, cert, key, 2)
	os.Chtimes(cert, fi.ModTime(), fi.ModTime())
	time.Sleep(1100 * time.Millisecond) // past the once-a-second file check
	if s := relayServes(t, addr); s != 1 {
		t.Fatalf("before the reload: serial %d, want 1", s)
	}
	if err := d.ReloadFiles(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if s := relayServes(t, addr); s != 2 {
		t.Fatalf("after the reload: serial %d, want 2", s)
	}
	// A key that does not match, then a missing key: refused, logged, and
	// the running certificate stays.
	writeCert(t, cert, filepath.Join(dir, "other.key"), 3)
	if err := d.ReloadFiles(); err == nil {
		t.Error("a certificate with the wrong key was accepted")
	}
	os.Remove(key)
	if err := d.ReloadFiles(); err == nil {
		t.Error("a missing key was accepted")
	}
	os.Chtimes(cert, time.Now().Add(3*time.Second), time.Now().Add(3*time.Second)) // and the file check fails too
	time.Sleep(1100 * time.Millisecond)
	if s := relayServes(t, addr); s != 2 {
		t.Fatalf("after broken files: serial %d, want 2 (the running one)", s)
	}
}

// relay.client_ca is re-read with the certificate; a broken file is
// reported and the running CAs kept.
func TestRelayClientCAIsReloadedWithTheCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeCert(t, filepath.Join(dir, "relay.pem"), filepath.Join(dir, "relay.key"), 1)
	writeCert(t, filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key"), 2)
	addr := fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
	d, stop := runDaemonIn(t, dir, fmt.Sprintf("store: \"\"\nlisten:\n  milter: \"\"\n  policy: \"\"\n  http: \"\"\n  relay: %s\nrelay:\n  next_hop: 127.0.0.1:1\n  tls_cert: relay.pem\n  tls_key: relay.key\n  allow_certs: [mta.example.net]\n  client_ca: ca.pem\n", addr), &lockedLog{})
	defer stop()
	if err := d.ReloadFiles(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("not PEM\n"), 0o644)
	if err := d.ReloadFiles(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("a broken CA file: %v", err)
	}
}
