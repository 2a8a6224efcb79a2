package relay

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/stray-mail/stray/internal/testcert"
)

// selfSigned is a certificate for 127.0.0.1 and localhost.
func selfSigned(t *testing.T) tls.Certificate { return testcert.TLS(t, "localhost") }

func TestStartTLSIsOfferedAndRequiredBeforeMail(t *testing.T) {
	t.Parallel()
	cert := selfSigned(t)
	e := newEnv(t, opts{modify: func(s *Server) {
		s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		s.RequireTLS = true
	}})
	// Plaintext: refused at MAIL.
	c := dial(t, e.relay)
	if r := cmd(t, c, 530, "MAIL FROM:<a@example.com>"); !strings.Contains(r.Text, "STARTTLS") {
		t.Errorf("plaintext MAIL: %q", r.Text)
	}
	// With STARTTLS: relayed, and the Received field says ESMTPS.
	cl, err := smtp.DialStartTLS(e.relay, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.SendMail("a@example.com", []string{"ok@example.org"}, strings.NewReader(body)); err != nil {
		t.Fatalf("over TLS: %v", err)
	}
	m := e.hop.messages()
	if len(m) != 1 || !strings.Contains(m[0].Data, "with ESMTPS") {
		t.Fatalf("next hop got %v", m)
	}
}

func TestNextHopTLSModes(t *testing.T) {
	t.Parallel()
	cert := selfSigned(t)
	withTLS := startNextHopTLS(t, &tls.Config{Certificates: []tls.Certificate{cert}})
	plain := startNextHop(t)
	brokenTLS := startNextHopTLS(t, &tls.Config{}) // offers STARTTLS, has no certificate
	pool := x509.NewCertPool()
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	pool.AddCert(leaf)
	tests := []struct {
		name    string
		hop     *nextHop
		mode    string
		roots   *x509.CertPool
		want    int // reply to end of data (or MAIL when it fails there)
		wantTLS bool
	}{
		{"opportunistic with STARTTLS", withTLS, TLSOpportunistic, pool, 250, true},
		{"opportunistic without", plain, TLSOpportunistic, pool, 250, false},
		// Opportunistic is Postfix's "may": encrypted when offered, never
		// authenticated. A next hop with a self-signed certificate (the
		// local Postfix of a fresh Debian install) must not stall the mail.
		{"opportunistic, certificate not verifiable", withTLS, TLSOpportunistic, nil, 250, true},
		// And, as with "may", a next hop whose TLS handshake fails gets
		// the message in clear on a new connection rather than never.
		{"opportunistic, STARTTLS fails", brokenTLS, TLSOpportunistic, pool, 250, false},
		{"none", withTLS, TLSNone, pool, 250, false},
		{"required without STARTTLS", plain, TLSRequired, pool, 451, false},
		{"required, certificate not trusted", withTLS, TLSRequired, nil, 451, false},
		{"required and verified", withTLS, TLSRequired, pool, 250, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, opts{modify: func(s *Server) {
				s.NextHop, s.NextHopTLS = tc.hop.Addr, tc.mode
				s.NextHopTLSConfig = &tls.Config{RootCAs: tc.roots, ServerName: "127.0.0.1"}
				if tc.roots == nil {
					s.NextHopTLSConfig.RootCAs = x509.NewCertPool()
				}
			}})
			before := len(tc.hop.messages())
			c := dial(t, e.relay)
			r, err := c.Cmd("MAIL FROM:<a@example.com>")
			if err != nil {
				t.Fatal(err)
			}
			if r.Code != 250 {
				if r.Code != tc.want {
					t.Fatalf("MAIL: %q, want %d", r.Text, tc.want)
				}
				return
			}
			cmd(t, c, 250, "RCPT TO:<tls-%d@example.org>", before)
			d, err := c.Data(body)
			if err != nil || d.Code != tc.want {
				t.Fatalf("end of data: %v %v, want %d", d, err, tc.want)
			}
			var got *hopMsg
			for _, m := range tc.hop.messages() {
				if m.To[0] == "tls-"+strconv.Itoa(before)+"@example.org" {
					got = &m
				}
			}
			if got == nil || got.TLS != tc.wantTLS {
				t.Errorf("next hop message %+v, want TLS %v", got, tc.wantTLS)
			}
		})
	}
}

func TestBDATChunksAreRelayed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{})
	nc, err := net.DialTimeout("tcp", e.relay, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	part1 := "Subject: chunked\r\n\r\nfirst "
	part2 := "second\r\n.not stuffed\r\n"
	io.WriteString(nc, "EHLO client.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<ok@example.org>\r\n")
	io.WriteString(nc, "BDAT "+strconv.Itoa(len(part1))+"\r\n"+part1)
	io.WriteString(nc, "BDAT "+strconv.Itoa(len(part2))+" LAST\r\n"+part2)
	io.WriteString(nc, "QUIT\r\n")
	b, _ := io.ReadAll(nc)
	if strings.Count(string(b), "\n250 ") < 5 || !strings.Contains(string(b), "CHUNKING") {
		t.Fatalf("replies:\n%s", b)
	}
	m := e.hop.messages()
	if len(m) != 1 || !strings.HasSuffix(m[0].Data, part1+part2) {
		t.Fatalf("next hop got %+v", m)
	}
}
