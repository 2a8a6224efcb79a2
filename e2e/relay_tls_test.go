package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/stray-mail/stray/internal/postfixtest"
)

// pki writes PEM certificates for the relay's TLS tests into a directory
// Postfix's processes can read.
type pki struct {
	t      *testing.T
	dir    string
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir, err := os.MkdirTemp("", "stray-pki-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &pki{t: t, dir: dir}
	p.caKey, p.caCert = p.make("ca", nil, true, 1)
	return p
}

// make creates a key and a certificate (signed by the CA unless it is the
// CA, or self-signed when selfSigned) with serial and DNS names, writes
// NAME.pem and NAME.key, and returns them.
func (p *pki) make(name string, names []string, isCA bool, serial int64) (*ecdsa.PrivateKey, *x509.Certificate) {
	return p.makeSigned(name, names, isCA, serial, false)
}

func (p *pki) makeSigned(name string, names []string, isCA bool, serial int64, selfSigned bool) (*ecdsa.PrivateKey, *x509.Certificate) {
	t := p.t
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), DNSNames: names,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign|x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = nil
	}
	parent, signer := tmpl, key
	if !isCA && !selfSigned {
		parent, signer = p.caCert, p.caKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeMode(t, p.path(name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o644)
	writeMode(t, p.path(name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	c, _ := x509.ParseCertificate(der)
	return key, c
}

func (p *pki) path(name string) string { return filepath.Join(p.dir, name) }

func writeMode(t *testing.T, path string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, mode)
}

// A real Postfix outside relay.allow relays through stray only when it
// presents an allowed client certificate (smtp_tls_cert_file); one with a
// certificate of the wrong name, or none, is refused at MAIL with 550 5.7.1
// and bounces (issue 13).
func TestRelayAllowsAPostfixOutsideTheRangesByItsClientCertificate(t *testing.T) {
	p := newPKI(t)
	p.make("relay", []string{"relay.test"}, false, 2)
	p.make("sender", []string{"sender.mail.example.net"}, false, 3)
	p.make("stranger", []string{"stranger.example.net"}, false, 4)
	hop := startRefusingHop(t, "")
	// 127.0.0.1, where the Postfixes connect from, is outside --allow.
	r := startRelay(t, hop.Addr, milConfig, nil, "--allow", "192.0.2.0/24", "--allow-cert", "*.mail.example.net",
		"--client-ca", p.path("ca.pem"), "--tls-cert", p.path("relay.pem"), "--tls-key", p.path("relay.key"), "--require-tls")
	sender := func(cert string) *postfixtest.Postfix {
		extra := map[string]string{
			"relayhost":               "[127.0.0.1]:" + r.Addr[strings.LastIndexByte(r.Addr, ':')+1:],
			"smtp_tls_security_level": "encrypt",
			"smtp_tls_loglevel":       "1",
		}
		if cert != "" {
			extra["smtp_tls_cert_file"], extra["smtp_tls_key_file"] = p.path(cert+".pem"), p.path(cert+".key")
		}
		return postfixtest.Start(t, postfixtest.Options{Extra: extra})
	}
	allowed, stranger, none := sender("sender"), sender("stranger"), sender("")
	for name, pf := range map[string]*postfixtest.Postfix{"allowed": allowed, "stranger": stranger, "none": none} {
		if _, data, err := postfixtest.Send(pf.SMTP, "a@army.mil", []string{name + "@army.mil", "b@army.ml"}, relayMsg); err != nil || data.Code != 250 {
			t.Fatalf("%s: send: %v %v", name, data, err)
		}
	}
	// The allowed Postfix's message, and its bounce for the typo (to
	// a@army.mil, through the relay too).
	if got := hop.WaitRecipients(2, 30*time.Second); !contains(got, "allowed@army.mil") || bounceFor(hop.Messages(), "a@army.mil") == "" {
		t.Fatalf("next hop got %v, want allowed@army.mil and the bounce to a@army.mil", got)
	}
	if !allowed.WaitLog("did you mean b@army.mil", 20*time.Second) {
		t.Errorf("the allowed Postfix did not hear the typo's refusal:\n%s", allowed.Log())
	}
	for name, pf := range map[string]*postfixtest.Postfix{"stranger": stranger, "none": none} {
		if !pf.WaitLog("550 5.7.1", 20*time.Second) || !strings.Contains(pf.Log(), "TLS connection established") {
			t.Errorf("%s: no TLS, or no 550 5.7.1 at MAIL:\n%s", name, pf.Log())
		}
	}
	time.Sleep(500 * time.Millisecond)
	if got := hop.Recipients(); contains(got, "stranger@army.mil") || contains(got, "none@army.mil") || len(got) != 2 {
		t.Errorf("relayed for a client without an allowed certificate: %v", got)
	}
	if log := r.log.String(); !strings.Contains(log, "client allowed by its certificate") || !strings.Contains(log, "stranger.example.net") {
		t.Errorf("the relay's log lacks the certificate decisions:\n%s", log)
	}
}

// servedSerial is the serial of the certificate the relay presents after
// STARTTLS.
func servedSerial(t *testing.T, addr string) int64 {
	t.Helper()
	c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer c.Close()
	if err := c.Noop(); err != nil {
		t.Fatalf("NOOP: %v", err)
	}
	cs, _ := c.TLSConnectionState()
	return cs.PeerCertificates[0].SerialNumber.Int64()
}

// SIGHUP makes `stray relay` serve a renewed certificate, even one whose
// file time did not change; after a broken renewal it logs and keeps
// serving the running one (issue 13).
func TestRelayReloadsItsCertificateOnSIGHUPAndKeepsItWhenTheNewFilesAreBroken(t *testing.T) {
	p := newPKI(t)
	p.make("relay", []string{"relay.test"}, false, 10)
	fi, _ := os.Stat(p.path("relay.pem"))
	hop := startRefusingHop(t, "")
	r := startRelay(t, hop.Addr, milConfig, nil, "--tls-cert", p.path("relay.pem"), "--tls-key", p.path("relay.key"))
	if s := servedSerial(t, r.Addr); s != 10 {
		t.Fatalf("serial %d, want 10", s)
	}
	p.make("relay", []string{"relay.test"}, false, 11)
	os.Chtimes(p.path("relay.pem"), fi.ModTime(), fi.ModTime())
	r.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for servedSerial(t, r.Addr) != 11 {
		if time.Now().After(deadline) {
			t.Fatalf("still serving the old certificate after SIGHUP:\n%s", r.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Broken: a certificate whose key is elsewhere (the key file still
	// holds the previous key).
	key, _ := os.ReadFile(p.path("relay.key"))
	p.make("relay", []string{"relay.test"}, false, 12)
	writeMode(t, p.path("relay.key"), key, 0o644)
	r.cmd.Process.Signal(syscall.SIGHUP)
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(r.log.String(), "cannot reload; keeping the running one") {
		if time.Now().After(deadline) {
			t.Fatalf("no log of the failed reload:\n%s", r.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(1100 * time.Millisecond) // the file check too has seen it
	if s := servedSerial(t, r.Addr); s != 11 {
		t.Fatalf("serial %d after a broken renewal, want 11 (the running one)", s)
	}
	if err := r.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the relay died: %v", err)
	}
}

// relayMail opens a session to the relay at addr (over STARTTLS with cert
// when cert is set) and returns the error of MAIL, or of the connection
// when the relay refused it.
func relayMail(addr string, cert *tls.Certificate) error {
	var c *smtp.Client
	var err error
	if cert != nil {
		c, err = smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{*cert}})
	} else {
		c, err = smtp.Dial(addr)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return err
	}
	return c.Mail("a@army.mil", nil)
}

// SIGHUP makes `stray relay` re-read who may relay from its config: a
// Microsoft 365 style certificate name added to relay.allow_certs lets
// that client relay from outside relay.allow without a restart; a config
// that does not load keeps the running rules (issue 13).
func TestRelayReloadsItsAllowRulesOnSIGHUPAndKeepsThemWhenTheConfigIsBroken(t *testing.T) {
	p := newPKI(t)
	p.make("relay", []string{"relay.test"}, false, 30)
	p.make("sender", []string{"sender.mail.example.net"}, false, 31)
	p.make("stranger", []string{"stranger.example.net"}, false, 32)
	pair := func(name string) *tls.Certificate {
		c, err := tls.LoadX509KeyPair(p.path(name+".pem"), p.path(name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		return &c
	}
	sender, stranger := pair("sender"), pair("stranger")
	hop := postfixtest.StartSink(t)
	section := func(allow, allowCerts string) string {
		return "relay:\n  allow: " + allow + "\n  allow_certs: " + allowCerts + "\n  client_ca: " + p.path("ca.pem") +
			"\n  tls_cert: " + p.path("relay.pem") + "\n  tls_key: " + p.path("relay.key") + "\n"
	}
	// 127.0.0.1, where the clients connect from, is outside relay.allow.
	first := section("[192.0.2.0/24]", "[]")
	r := startRelay(t, hop.Addr, milConfig+first, nil)
	if err := relayMail(r.Addr, sender); err == nil || !strings.Contains(err.Error(), "554") {
		t.Fatalf("before the reload: %v, want 554 at connect", err)
	}
	body, err := os.ReadFile(r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	hup := func(sec, logged string) {
		t.Helper()
		n := strings.Count(r.log.String(), logged)
		writeFile(t, r.cfg, strings.Replace(string(body), first, sec, 1))
		r.cmd.Process.Signal(syscall.SIGHUP)
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(r.log.String(), logged) == n {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log after SIGHUP:\n%s", logged, r.log.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	hup(section("[192.0.2.0/24]", "[\"*.mail.example.net\"]"), `what="relay allow rules"`)
	if err := relayMail(r.Addr, sender); err != nil {
		t.Errorf("the certificate name added to relay.allow_certs: MAIL: %v", err)
	}
	for name, cert := range map[string]*tls.Certificate{"another name": stranger, "no certificate": nil} {
		if err := relayMail(r.Addr, cert); err == nil || !strings.Contains(err.Error(), "550") {
			t.Errorf("%s after the reload: MAIL: %v, want 550", name, err)
		}
	}
	hup(section("[10.0.0.0/33]", "[]"), "reload failed; keeping the running configuration")
	if err := relayMail(r.Addr, sender); err != nil {
		t.Errorf("after a broken config, the allowed certificate: MAIL: %v", err)
	}
	if err := r.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the relay died: %v", err)
	}
}

// BDAT (CHUNKING) from a client, with a real Postfix as the next hop: the
// message arrives intact, byte for byte after the relay's Received field
// (issue 13).
func TestRelayBDATThroughARealPostfixNextHop(t *testing.T) {
	pf := postfixtest.Start(t, postfixtest.Options{})
	r := startRelay(t, pf.SMTP, milConfig, nil)
	nc, err := net.DialTimeout("tcp", r.Addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	// Chunks cut mid-line, a line starting with a dot (no stuffing in
	// BDAT), 8-bit text, and a large middle chunk.
	// Message-Id and Date are there, so that the next hop adds none.
	part1 := "From: a@army.mil\r\nTo: c@army.mil\r\nMessage-Id: <bdat-1@army.mil>\r\nDate: Mon, 30 Nov 2026 07:00:00 +0000\r\n" +
		"Subject: chunked =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\n\r\nfirst"
	part2 := " half of a line\r\n.a line with a leading dot\r\n..and two\r\ngrüße\r\n" + strings.Repeat(strings.Repeat("y", 70)+"\r\n", 20000)
	part3 := "last line\r\n"
	io.WriteString(nc, "EHLO client.test\r\n")
	io.WriteString(nc, "MAIL FROM:<a@army.mil> BODY=8BITMIME\r\nRCPT TO:<c@army.mil>\r\nRCPT TO:<b@army.ml>\r\n")
	io.WriteString(nc, "BDAT "+strconv.Itoa(len(part1))+"\r\n"+part1)
	io.WriteString(nc, "BDAT "+strconv.Itoa(len(part2))+"\r\n"+part2)
	io.WriteString(nc, "BDAT "+strconv.Itoa(len(part3))+" LAST\r\n"+part3)
	io.WriteString(nc, "QUIT\r\n")
	b, _ := io.ReadAll(nc)
	replies := string(b)
	if !strings.Contains(replies, "CHUNKING") || strings.Count(replies, "\n250 ") < 6 || !strings.Contains(replies, "did you mean b@army.mil") {
		t.Fatalf("replies:\n%s", replies)
	}
	got := pf.Sink.WaitRecipients(1, 30*time.Second)
	if len(got) != 1 || got[0] != "c@army.mil" {
		t.Fatalf("the next hop Postfix delivered to %v, want c@army.mil\n%s", got, pf.Log())
	}
	data := string(pf.Sink.Messages()[0].Data)
	if !strings.HasSuffix(data, part1+part2+part3) {
		i := strings.Index(data, "From: a@army.mil")
		t.Fatalf("message changed on the way (%d bytes, want the %d sent at the end); starts:\n%.600s", len(data), len(part1+part2+part3), data[max(i, 0):])
	}
	if !strings.Contains(data, "(stray relay) with ESMTP") {
		t.Errorf("no Received field of the relay:\n%.1000s", data)
	}
}

// lineHop is a next hop that records the command lines it is sent, as
// they are on the wire, and accepts everything (DSN and SMTPUTF8 offered).
type lineHop struct {
	Addr  string
	mu    sync.Mutex
	lines []string
	msgs  int
}

func startLineHop(t *testing.T) *lineHop {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &lineHop{Addr: l.Addr().String()}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go h.serve(c)
		}
	}()
	return h
}

func (h *lineHop) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(c)
	io.WriteString(c, "220 line-hop ESMTP\r\n")
	for {
		s, err := r.ReadString('\n')
		if err != nil {
			return
		}
		h.mu.Lock()
		h.lines = append(h.lines, strings.TrimRight(s, "\r\n"))
		h.mu.Unlock()
		switch v := strings.ToUpper(strings.Fields(s + " x")[0]); v {
		case "EHLO":
			io.WriteString(c, "250-line-hop\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 DSN\r\n")
		case "DATA":
			io.WriteString(c, "354 go ahead\r\n")
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			h.mu.Lock()
			h.msgs++
			h.mu.Unlock()
			io.WriteString(c, "250 2.0.0 queued\r\n")
		case "QUIT":
			io.WriteString(c, "221 bye\r\n")
			return
		default:
			io.WriteString(c, "250 2.0.0 ok\r\n")
		}
	}
}

func (h *lineHop) wait(msgs int, timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for {
		h.mu.Lock()
		n, lines := h.msgs, append([]string(nil), h.lines...)
		h.mu.Unlock()
		if n >= msgs || time.Now().After(deadline) {
			return lines
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// With DSN on (the default), a real sending Postfix's DSN parameters for
// an internationalised recipient are taken (its ORCPT=rfc822;j+C3+B6rg@…
// used to get go-smtp's 501), and RET, ENVID, NOTIFY and ORCPT reach a
// real Postfix next hop and, through it, the MTA after it (issue 13).
func TestRelayDSNParametersOfAUTF8RecipientReachTheNextHopsThroughRealPostfixes(t *testing.T) {
	final := startLineHop(t)
	next := postfixtest.Start(t, postfixtest.Options{Extra: map[string]string{
		"relayhost": "[127.0.0.1]:" + final.Addr[strings.LastIndexByte(final.Addr, ':')+1:],
	}})
	p := newPKI(t)
	p.make("relay", []string{"relay.test"}, false, 20)
	r := startRelay(t, next.SMTP, milConfig, nil, "--tls-cert", p.path("relay.pem"), "--tls-key", p.path("relay.key"))
	sender := postfixtest.Start(t, postfixtest.Options{Extra: map[string]string{
		"relayhost":               "[127.0.0.1]:" + r.Addr[strings.LastIndexByte(r.Addr, ':')+1:],
		"smtp_tls_security_level": "encrypt", // the fix works inside TLS
		"smtp_tls_loglevel":       "1",
	}})
	c, err := postfixtest.Dial(sender.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, cmd := range []string{"EHLO client.test", "MAIL FROM:<a@army.mil> SMTPUTF8 RET=HDRS ENVID=dsn-test+2B1",
		"RCPT TO:<jörg@bücher.de> NOTIFY=SUCCESS,FAILURE", "RCPT TO:<c@army.mil> NOTIFY=NEVER ORCPT=rfc822;orig+2Bc@army.mil"} {
		if rep, err := c.Cmd("%s", cmd); err != nil || rep.Code != 250 {
			t.Fatalf("%s: %v %v", cmd, rep, err)
		}
	}
	if rep, err := c.Data(relayMsg); err != nil || rep.Code != 250 {
		t.Fatalf("data: %v %v", rep, err)
	}
	lines := final.wait(1, 60*time.Second)
	all := strings.Join(lines, "\n")
	var mail, rcptJ, rcptC string
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "MAIL FROM:<a@army.mil>"):
			mail = l
		case strings.HasPrefix(l, "RCPT TO:<jörg@bücher.de>"):
			rcptJ = l
		case strings.HasPrefix(l, "RCPT TO:<c@army.mil>"):
			rcptC = l
		}
	}
	t.Logf("after the relay and a Postfix:\n%s\n%s\n%s", mail, rcptJ, rcptC)
	if !strings.Contains(mail, "RET=HDRS") || !strings.Contains(mail, "ENVID=dsn-test+2B1") {
		t.Errorf("MAIL after two hops: %q\n%s", mail, all)
	}
	if !strings.Contains(rcptJ, "NOTIFY=SUCCESS,FAILURE") || !strings.Contains(rcptJ, "ORCPT=") || !orcptIs(rcptJ, "jörg@bücher.de") {
		t.Errorf("RCPT of jörg@bücher.de after two hops: %q\n%s", rcptJ, all)
	}
	if !strings.Contains(rcptC, "NOTIFY=NEVER") || !orcptIs(rcptC, "orig+c@army.mil") {
		t.Errorf("RCPT of c@army.mil after two hops: %q\n%s", rcptC, all)
	}
	if strings.Contains(sender.Log(), "status=bounced") || !strings.Contains(sender.Log(), "TLS connection established") {
		t.Errorf("the sending Postfix:\n%s", sender.Log())
	}
	if l := r.log.String(); !strings.Contains(l, "ORCPT with a UTF-8 address given its RFC 6533 type") {
		t.Errorf("the relay did not fix the ORCPT:\n%s", l)
	}
}

// An ENVID is xtext of printable ASCII (RFC 3461, section 4.4; RFC 6533
// gives UTF-8 a type for ORCPT only, none for ENVID), also with SMTPUTF8.
// Postfix 3.7 refuses UTF-8 in it, raw or as +HH octets, with 501 and
// never sends one (its sendmail -V drops such an id); the relay refuses
// the same with 501 naming ENVID, and passes an ASCII one, \x{E9} and all,
// through a real Postfix next hop unchanged (issue 13).
func TestRelayENVIDUnderSMTPUTF8IsWhatPostfixAcceptsAndReachesTheNextHopsUnchanged(t *testing.T) {
	final := startLineHop(t)
	next := postfixtest.Start(t, postfixtest.Options{Extra: map[string]string{
		"relayhost": "[127.0.0.1]:" + final.Addr[strings.LastIndexByte(final.Addr, ':')+1:],
	}})
	r := startRelay(t, next.SMTP, milConfig, nil, "--next-hop-tls", "none")
	for _, addr := range []string{next.SMTP, r.Addr} {
		c, err := postfixtest.Dial(addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Cmd("EHLO client.test")
		for _, envid := range []string{"caf\u00e9-1", "caf+C3+A9-2"} {
			rep, err := c.Cmd("MAIL FROM:<a@army.mil> SMTPUTF8 ENVID=%s", envid)
			if err != nil || rep.Code != 501 || !strings.Contains(rep.Text, "ENVID") {
				t.Errorf("%s: ENVID=%s: %v %v, want 501 naming ENVID", addr, envid, rep, err)
			}
		}
		c.Close()
	}
	c, err := postfixtest.Dial(r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, cmd := range []string{"EHLO client.test", `MAIL FROM:<a@army.mil> SMTPUTF8 ENVID=caf\x{E9}+2B3`, "RCPT TO:<c@army.mil>"} {
		if rep, err := c.Cmd("%s", cmd); err != nil || rep.Code != 250 {
			t.Fatalf("%s: %v %v", cmd, rep, err)
		}
	}
	if rep, err := c.Data(relayMsg); err != nil || rep.Code != 250 {
		t.Fatalf("data: %v %v", rep, err)
	}
	var mail string
	for _, l := range final.wait(1, 60*time.Second) {
		if strings.HasPrefix(l, "MAIL FROM:<a@army.mil>") {
			mail = l
		}
	}
	if !strings.Contains(mail, ` ENVID=caf\x{E9}+2B3`) || !strings.Contains(mail, " SMTPUTF8") {
		t.Errorf("MAIL after the relay and a Postfix: %q, want ENVID=caf\\x{E9}+2B3 and SMTPUTF8", mail)
	}
}

// orcptIs reports whether a RCPT line's ORCPT parameter is addr, in any of
// the forms of RFC 3461 and RFC 6533.
func orcptIs(line, addr string) bool {
	for _, f := range strings.Fields(line) {
		v, ok := strings.CutPrefix(f, "ORCPT=")
		if !ok {
			continue
		}
		typ, val, _ := strings.Cut(v, ";")
		var dec strings.Builder
		for i := 0; i < len(val); i++ {
			switch {
			case val[i] == '+' && i+2 < len(val):
				b, err := strconv.ParseUint(val[i+1:i+3], 16, 8)
				if err != nil {
					return false
				}
				dec.WriteByte(byte(b))
				i += 2
			case strings.EqualFold(typ, "utf-8") && strings.HasPrefix(val[i:], `\x{`):
				j := strings.IndexByte(val[i:], '}')
				r, err := strconv.ParseUint(val[i+3:i+j], 16, 32)
				if j < 0 || err != nil {
					return false
				}
				dec.WriteRune(rune(r))
				i += j
			default:
				dec.WriteByte(val[i])
			}
		}
		return dec.String() == addr
	}
	return false
}

// TestPerfRelayDSNConnOverhead: the relay with DSN on (each connection
// through smtpConn, which reads commands and passes content) against the
// same binary with relay.dsn: false, alternating rounds (and which goes
// first) in one run, in front of smtp-sink. STRAY_PERF_RELAY_DSN=N
// messages of 2 KB per round (N/20 of 1 MB); STRAY_PERF_ROUNDS rounds
// (default 5). Reports medians and the on/off ratio.
func TestPerfRelayDSNConnOverhead(t *testing.T) {
	n := perfEnabled(t, "STRAY_PERF_RELAY_DSN")
	if n <= 0 {
		n = 2000
	}
	rounds, _ := strconv.Atoi(os.Getenv("STRAY_PERF_ROUNDS"))
	if rounds <= 0 {
		rounds = 5
	}
	sink := startSmtpSink(t)
	cfg := milConfig + "log:\n  level: warn\n"
	on := startRelay(t, sink, cfg, nil, "--next-hop-tls", "none")
	off := startRelay(t, sink, cfg+"relay:\n  dsn: false\n", nil, "--next-hop-tls", "none")
	source := func(addr string, msgs, size int) float64 {
		start := time.Now()
		out, err := exec.Command("smtp-source", "-s", "8", "-m", strconv.Itoa(msgs), "-l", strconv.Itoa(size),
			"-f", "a@army.mil", "-t", "c@army.mil", addr).CombinedOutput()
		if err != nil {
			t.Fatalf("smtp-source: %v\n%s", err, out)
		}
		return float64(msgs) / time.Since(start).Seconds()
	}
	for _, v := range []struct {
		name       string
		msgs, size int
	}{{"2 KB", n, 2048}, {"1 MB", max(n/20, 10), 1 << 20}} {
		var a, b, ratios []float64
		for round := 0; round < rounds; round++ {
			var x, y float64
			if round%2 == 0 {
				x = source(off.Addr, v.msgs, v.size)
				y = source(on.Addr, v.msgs, v.size)
			} else {
				y = source(on.Addr, v.msgs, v.size)
				x = source(off.Addr, v.msgs, v.size)
			}
			a, b, ratios = append(a, x), append(b, y), append(ratios, y/x)
			t.Logf("%s round %d: dsn off %.0f msg/s, dsn on %.0f msg/s, ratio %.3f", v.name, round, x, y, y/x)
		}
		t.Logf("%s messages (smtp-source -s 8 -m %d, %d rounds): median dsn off %.0f msg/s, dsn on %.0f msg/s; median ratio on/off %.3f",
			v.name, v.msgs, rounds, median(a), median(b), median(ratios))
	}
}
