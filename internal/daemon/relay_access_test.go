package daemon

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/stray-mail/stray/internal/config"
	"github.com/stray-mail/stray/internal/postfixtest"
)

// mailFrom opens a session to the relay at addr (over TLS with cert when
// cert is set) and returns the session and the error of MAIL, or of the
// connection when the relay refused it.
func mailFrom(t *testing.T, addr string, cert *tls.Certificate) (*smtp.Client, error) {
	t.Helper()
	var c *smtp.Client
	var err error
	if cert != nil {
		c, err = smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{*cert}})
	} else {
		c, err = smtp.Dial(addr)
	}
	if err == nil {
		err = c.Hello("client.test")
	}
	if err != nil {
		if c != nil {
			c.Close()
		}
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, c.Mail("a@army.mil", nil)
}

func is5571(err error) bool {
	var e *smtp.SMTPError
	return errors.As(err, &e) && e.Code == 550 && e.EnhancedCode == smtp.EnhancedCode{5, 7, 1}
}

// The relay's allow rules, relay.allow and relay.allow_certs, are re-read
// with the config on SIGHUP (Reload, then ReloadFiles) and apply to new
// sessions; a session already open keeps the rules it started with, and a
// config that does not load keeps the running rules (issue 13).
func TestRelayAllowRulesAreReloadedOnHUPForNewSessions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeCert(t, filepath.Join(dir, "relay.pem"), filepath.Join(dir, "relay.key"), 1)
	client := writeCert(t, filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key"), 2)
	clientCert, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	pin := sha256.Sum256(client.RawSubjectPublicKeyInfo)
	addr := fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
	hop := postfixtest.StartSink(t)
	config := func(allow, allowCerts string) string {
		return fmt.Sprintf("store: \"\"\nshutdown_timeout: 1s\nlisten:\n  milter: \"\"\n  policy: \"\"\n  http: \"\"\n  relay: %s\n"+
			"relay:\n  next_hop: %s\n  tls_cert: relay.pem\n  tls_key: relay.key\n  allow: %s\n  allow_certs: %s\n", addr, hop.Addr, allow, allowCerts)
	}
	logs := &lockedLog{}
	d, stop := runDaemonIn(t, dir, config("[192.0.2.0/24]", "[]"), logs)
	defer stop()
	hup := func(body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "stray.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		d.Reload(t.Context())
		d.ReloadFiles()
	}
	if _, err := mailFrom(t, addr, nil); err == nil || !strings.Contains(err.Error(), "554") {
		t.Fatalf("loopback outside relay.allow: %v, want 554 at connect", err)
	}

	// A client network added.
	hup(config("[192.0.2.0/24, 127.0.0.0/8]", "[]"))
	open, err := mailFrom(t, addr, nil)
	if err != nil {
		t.Fatalf("loopback added to relay.allow: MAIL: %v", err)
	}
	open.Reset()

	// The network removed, a client certificate allowed instead.
	hup(config("[192.0.2.0/24]", "[\"sha256:"+hex.EncodeToString(pin[:])+"\"]"))
	if _, err := mailFrom(t, addr, nil); !is5571(err) {
		t.Errorf("loopback removed from relay.allow, no certificate: MAIL: %v, want 550 5.7.1", err)
	}
	if _, err := mailFrom(t, addr, &clientCert); err != nil {
		t.Errorf("a pinned client certificate added to relay.allow_certs: MAIL: %v", err)
	}
	if err := open.Mail("a@army.mil", nil); err != nil {
		t.Errorf("a session opened before the reload lost its rules: MAIL: %v", err)
	}

	// A config that does not load: the running rules stay.
	hup(config("[10.0.0.0/33]", "[]"))
	if !strings.Contains(logs.String(), "reload failed") {
		t.Errorf("a broken config was not reported:\n%s", logs)
	}
	if _, err := mailFrom(t, addr, &clientCert); err != nil {
		t.Errorf("after a broken config, the pinned certificate: MAIL: %v", err)
	}
	if _, err := mailFrom(t, addr, nil); !is5571(err) {
		t.Errorf("after a broken config, no certificate: MAIL: %v, want 550 5.7.1", err)
	}
}

// stray relay's flags complete the config file before it is checked, at
// start and at every reload: relay.allow_certs in the file with the
// certificate given only by --tls-cert and --tls-key is a whole relay
// section, not a file that fails "needs relay.tls_cert" on each SIGHUP.
func TestFlagsOverrideTheConfigBeforeItIsChecked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeCert(t, filepath.Join(dir, "relay.pem"), filepath.Join(dir, "relay.key"), 1)
	cfg := filepath.Join(dir, "stray.yaml")
	body := "store: \"\"\nrelay:\n  next_hop: 127.0.0.1:25\n  allow_certs: [mx.example.com]\n"
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(cfg, nil); err == nil || !strings.Contains(err.Error(), "needs relay.tls_cert") {
		t.Fatalf("the file alone: %v, want needs relay.tls_cert", err)
	}
	flags := func(c *config.Config) {
		c.Relay.TLSCert, c.Relay.TLSKey = filepath.Join(dir, "relay.pem"), filepath.Join(dir, "relay.key")
	}
	d, err := New(t.Context(), Options{ConfigPath: cfg, Override: flags})
	if err != nil {
		t.Fatalf("with the flags: %v", err)
	}
	defer d.Close()
	if err := d.Reload(t.Context()); err != nil {
		t.Errorf("reload with the flags: %v", err)
	}
	if got := d.Config().Relay.TLSCert; got != filepath.Join(dir, "relay.pem") {
		t.Errorf("after reload relay.tls_cert is %q: the flag was lost", got)
	}
}

// An allow rule in the file that opens a lookalike of a protected domain is
// logged at start, once: a reload that changes nothing (the learned
// correspondents are refreshed every few minutes) does not repeat it.
func TestAllowRuleForAProtectedLookalikeIsLoggedAtStartOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logs := &lockedLog{}
	d, stop := runDaemonIn(t, dir, fmt.Sprintf("store: \"\"\nlisten:\n  milter: \"\"\n  http: \"\"\n  policy: 127.0.0.1:%d\n", postfixtest.FreePort(t))+"detect:\n  protect: [mil]\npolicy:\n  allow: [army.ml, partner.example.com]\n", logs)
	defer stop()
	d.Reload(t.Context())
	if n := strings.Count(logs.String(), "an allow rule opens a lookalike"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), `rule="policy.allow: \"army.ml\" lets mail through to a lookalike of army.mil"`) || strings.Contains(logs.String(), "partner.example.com\\\" lets") {
		t.Errorf("log:\n%s", logs.String())
	}
}
