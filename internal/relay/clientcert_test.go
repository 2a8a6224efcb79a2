package relay

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/stray-mail/stray/internal/relay/clientcert"
)

// testCA is a certificate authority for client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// issue makes a client certificate for names, valid from nb to na, with
// the given extended key usages (nil: clientAuth); ca nil: self-signed.
func (ca *testCA) issue(t *testing.T, nb, na time.Time, eku []x509.ExtKeyUsage, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if eku == nil {
		eku = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "client"}, NotBefore: nb, NotAfter: na,
		DNSNames: names, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: eku}
	parent, signer := tmpl, any(key)
	if ca != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

var outside = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")} // the tests' 127.0.0.1 is not in it

// sendWithCert sends one message to the relay over STARTTLS presenting
// cert (none when empty) and returns the error of MAIL, or of the rest.
func sendWithCert(t *testing.T, addr string, cert *tls.Certificate, rcpt string) error {
	t.Helper()
	cfg := &tls.Config{InsecureSkipVerify: true}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	c, err := smtp.DialStartTLS(addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("a@example.com", nil); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return fmt.Errorf("rcpt: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	w.Write([]byte(body))
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of data: %w", err)
	}
	return c.Quit()
}

func is5571(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code == 550 && se.EnhancedCode == smtp.EnhancedCode{5, 7, 1}
}

func TestClientOutsideTheRangesRelaysOnlyWithAnAllowedVerifiedCertificate(t *testing.T) {
	t.Parallel()
	// DSN on: smtpConn does STARTTLS; off: go-smtp does.
	for _, dsn := range []bool{true, false} {
		t.Run(fmt.Sprintf("dsn=%v", dsn), func(t *testing.T) {
			t.Parallel()
			testClientCertificates(t, dsn)
		})
	}
}

func testClientCertificates(t *testing.T, dsn bool) {
	ca, other := newTestCA(t, "client CA"), newTestCA(t, "another CA")
	now := time.Now()
	valid := func(ca *testCA, names ...string) tls.Certificate {
		return ca.issue(t, now.Add(-time.Hour), now.Add(time.Hour), nil, names...)
	}
	good := valid(ca, "mta.example.net")
	pinned := (*testCA)(nil).issue(t, now.Add(-time.Hour), now.Add(time.Hour), nil, "whatever.test")
	fp := sha256.Sum256(pinned.Leaf.RawSubjectPublicKeyInfo)
	rules, err := clientcert.Parse([]string{"MTA.example.net", "*.mail.example.net", fmt.Sprintf("sha256:%X", fp)})
	if err != nil {
		t.Fatal(err)
	}
	rules.Roots = ca.pool()
	e := newEnv(t, opts{modify: func(s *Server) {
		s.TLS = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
		s.Allow, s.AllowCerts, s.DSN = outside, rules, dsn
	}})
	tests := []struct {
		name string
		cert *tls.Certificate
		ok   bool
	}{
		{"allowed name, trusted CA", &good, true},
		{"server certificate (serverAuth only) for an allowed name", ptr(ca.issue(t, now.Add(-time.Hour), now.Add(time.Hour), []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, "mta.example.net")), true},
		{"one label under an allowed wildcard", ptr(valid(ca, "x.mail.example.net")), true},
		{"the literal wildcard name", ptr(valid(ca, "*.mail.example.net")), true},
		{"pinned key, self-signed", &pinned, true},
		{"no certificate", nil, false},
		{"wrong CA", ptr(valid(other, "mta.example.net")), false},
		{"expired", ptr(ca.issue(t, now.Add(-48*time.Hour), now.Add(-time.Hour), nil, "mta.example.net")), false},
		{"not yet valid", ptr(ca.issue(t, now.Add(time.Hour), now.Add(48*time.Hour), nil, "mta.example.net")), false},
		{"wrong name", ptr(valid(ca, "other.example.net")), false},
		{"name only in the common name", ptr(valid(ca)), false},
		{"two labels under the wildcard", ptr(valid(ca, "a.b.mail.example.net")), false},
		{"the wildcard's own base name", ptr(valid(ca, "mail.example.net")), false},
		{"a certificate wildcard does not meet an exact rule", ptr(valid(ca, "*.example.net")), false},
		{"self-signed, not pinned", ptr((*testCA)(nil).issue(t, now.Add(-time.Hour), now.Add(time.Hour), nil, "mta.example.net")), false},
		{"code-signing only", ptr(ca.issue(t, now.Add(-time.Hour), now.Add(time.Hour), []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}, "mta.example.net")), false},
	}
	for i, tc := range tests {
		rcpt := fmt.Sprintf("cert-%d@example.org", i)
		err := sendWithCert(t, e.relay, tc.cert, rcpt)
		if tc.ok && err != nil {
			t.Errorf("%s: refused: %v", tc.name, err)
		}
		if !tc.ok && !is5571(err) {
			t.Errorf("%s: got %v, want 550 5.7.1 at MAIL", tc.name, err)
		}
		delivered := false
		for _, m := range e.hop.messages() {
			delivered = delivered || m.To[0] == rcpt
		}
		if delivered != tc.ok {
			t.Errorf("%s: reached the next hop: %v", tc.name, delivered)
		}
	}
	// Without STARTTLS: the greeting is 220 (the client may need it to
	// start TLS), MAIL is refused.
	c := dial(t, e.relay)
	if r := cmd(t, c, 550, "MAIL FROM:<a@example.com>"); !strings.Contains(r.Text, "5.7.1") {
		t.Errorf("plaintext MAIL: %q", r.Text)
	}
	cmd(t, c, 502, "RCPT TO:<x@example.org>") // go-smtp: no MAIL yet
}

func ptr[T any](v T) *T { return &v }

func TestClientInTheRangesRelaysWhateverCertificateItPresents(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "client CA")
	rules, _ := clientcert.Parse([]string{"mta.example.net"})
	rules.Roots = ca.pool()
	e := newEnv(t, opts{modify: func(s *Server) {
		s.TLS = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
		s.AllowCerts = rules // Allow: loopback, the tests' client
	}})
	self := (*testCA)(nil).issue(t, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour), nil, "expired.test")
	for _, cert := range []*tls.Certificate{nil, &self} {
		if err := sendWithCert(t, e.relay, cert, "in-range@example.org"); err != nil {
			t.Errorf("client in range with certificate %v: %v", cert != nil, err)
		}
	}
	c := dial(t, e.relay)
	cmd(t, c, 250, "MAIL FROM:<a@example.com>")
}

func TestClientOutsideTheRangesIsRefusedAtConnectWithoutCertificateRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{modify: func(s *Server) {
		s.TLS = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
		s.Allow = outside
	}})
	if b := greeting(t, e.relay); !strings.HasPrefix(b, "554 5.7.1") {
		t.Errorf("greeting %q, want 554 5.7.1", b)
	}
}

// greeting is all the relay at addr says to a new connection before it
// closes it (or within 5 s).
func greeting(t *testing.T, addr string) string {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(nc)
	return string(b)
}

// New roots (relay.client_ca re-read on SIGHUP, SetAccess) apply to the
// next session: a certificate of the new CA passes, one of the old no
// longer.
func TestNewClientRootsApplyToTheNextSession(t *testing.T) {
	t.Parallel()
	oldCA, newCA := newTestCA(t, "old CA"), newTestCA(t, "new CA")
	now := time.Now()
	oldCert := oldCA.issue(t, now.Add(-time.Hour), now.Add(time.Hour), nil, "mta.example.net")
	newCert := newCA.issue(t, now.Add(-time.Hour), now.Add(time.Hour), nil, "mta.example.net")
	rules, _ := clientcert.Parse([]string{"mta.example.net"})
	rules.Roots = oldCA.pool()
	var srv *Server
	e := newEnv(t, opts{modify: func(s *Server) {
		s.TLS = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
		s.Allow, s.AllowCerts, s.DSN = outside, rules, true
		srv = s
	}})
	if err := sendWithCert(t, e.relay, &oldCert, "old-1@example.org"); err != nil {
		t.Fatalf("old CA before: %v", err)
	}
	if err := sendWithCert(t, e.relay, &newCert, "new-1@example.org"); !is5571(err) {
		t.Fatalf("new CA before: %v", err)
	}
	rules.Roots = newCA.pool()
	if err := srv.SetAccess(outside, rules); err != nil {
		t.Fatal(err)
	}
	if err := sendWithCert(t, e.relay, &newCert, "new-2@example.org"); err != nil {
		t.Fatalf("new CA after: %v", err)
	}
	if err := sendWithCert(t, e.relay, &oldCert, "old-2@example.org"); !is5571(err) {
		t.Fatalf("old CA after: %v", err)
	}
}

// SetAccess (relay.allow and relay.allow_certs re-read on SIGHUP) applies
// to the sessions that start after it: certificate rules added to a relay
// started without any make the handshake ask for a certificate, and a
// session already open keeps the rules it started with. Certificate rules
// need TLS.
func TestSetAccessAppliesToNewSessionsOnly(t *testing.T) {
	t.Parallel()
	for _, dsn := range []bool{true, false} {
		t.Run(fmt.Sprintf("dsn=%v", dsn), func(t *testing.T) {
			t.Parallel()
			ca := newTestCA(t, "client CA")
			now := time.Now()
			cert := ca.issue(t, now.Add(-time.Hour), now.Add(time.Hour), nil, "mta.example.net")
			rules, _ := clientcert.Parse([]string{"mta.example.net"})
			rules.Roots = ca.pool()
			var srv *Server
			e := newEnv(t, opts{modify: func(s *Server) {
				s.TLS = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
				s.Allow, s.DSN = outside, dsn
				srv = s
			}})
			if err := srv.SetAccess(outside, rules); err != nil {
				t.Fatal(err)
			}
			if err := sendWithCert(t, e.relay, &cert, "added@example.org"); err != nil {
				t.Fatalf("certificate rules added: %v", err)
			}
			old, err := smtp.DialStartTLS(e.relay, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}})
			if err != nil {
				t.Fatal(err)
			}
			defer old.Close()
			if err := old.Mail("a@example.com", nil); err != nil {
				t.Fatalf("MAIL before the rules were removed: %v", err)
			}
			old.Reset()
			if err := srv.SetAccess(outside, clientcert.Rules{}); err != nil {
				t.Fatal(err)
			}
			if b := greeting(t, e.relay); !strings.HasPrefix(b, "554 5.7.1") {
				t.Errorf("a new session after the rules were removed: greeting %q, want 554 5.7.1", b)
			}
			if err := old.Mail("a@example.com", nil); err != nil {
				t.Errorf("a session opened before lost its rules: MAIL: %v", err)
			}
			if err := srv.SetAccess(nil, clientcert.Rules{}); err != nil {
				t.Fatal(err)
			}
			c := dial(t, e.relay)
			cmd(t, c, 250, "MAIL FROM:<a@example.com>") // nil: loopback
		})
	}
	var plain *Server
	newEnv(t, opts{modify: func(s *Server) { plain = s }})
	rules, _ := clientcert.Parse([]string{"mta.example.net"})
	if err := plain.SetAccess(nil, rules); err == nil {
		t.Error("certificate rules were taken by a relay without TLS")
	}
}
