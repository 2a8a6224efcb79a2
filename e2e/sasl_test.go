package e2e

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/postfixtest"
)

// startDovecotAuth serves the Dovecot authentication protocol (the server
// side Postfix's smtpd_sasl_type = dovecot talks to) on a loopback port,
// with PLAIN and these users. Postfix's own SASL code runs unchanged: the
// SMTP AUTH command, its parsing, and the login it hands to milters
// ({auth_authen}) and policy services (sasl_username).
func startDovecotAuth(t *testing.T, users map[string]string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serveDovecotAuth(c, users)
		}
	}()
	return l.Addr().String()
}

func serveDovecotAuth(c net.Conn, users map[string]string) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	fmt.Fprintf(c, "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nSPID\t1\nCUID\t1\nCOOKIE\t0123456789abcdef0123456789abcdef\nDONE\n")
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Split(strings.TrimRight(line, "\n"), "\t")
		if len(f) < 3 || f[0] != "AUTH" {
			continue // VERSION, CPID
		}
		id, resp := f[1], ""
		for _, p := range f[3:] {
			if v, ok := strings.CutPrefix(p, "resp="); ok {
				resp = v
			}
		}
		b, _ := base64.StdEncoding.DecodeString(resp)
		parts := strings.Split(string(b), "\x00")
		if f[2] == "PLAIN" && len(parts) == 3 && parts[1] != "" && users[parts[1]] == parts[2] {
			fmt.Fprintf(c, "OK\t%s\tuser=%s\n", id, parts[1])
		} else {
			fmt.Fprintf(c, "FAIL\t%s\treason=bad credentials\n", id)
		}
	}
}

// sendAs is one transaction, after AUTH PLAIN as user when user is set. It
// returns the reply to RCPT.
func sendAs(t *testing.T, pf *postfixtest.Postfix, user, pass, from, to string) postfixtest.Reply {
	t.Helper()
	c, err := postfixtest.Dial(pf.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r, err := c.Cmd("EHLO client.localdomain"); err != nil || !strings.Contains(r.Text, "AUTH") {
		t.Fatalf("EHLO: %v %v (no AUTH offered)", r, err)
	}
	if user != "" {
		ir := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
		if r, err := c.Cmd("AUTH PLAIN %s", ir); err != nil || r.Code != 235 {
			t.Fatalf("AUTH as %s: %v %v\n%s", user, r, err, pf.Log())
		}
	}
	if r, err := c.Cmd("MAIL FROM:<%s>", from); err != nil || r.Code != 250 {
		t.Fatalf("MAIL: %v %v", r, err)
	}
	rr, err := c.Cmd("RCPT TO:<%s>", to)
	if err != nil {
		t.Fatal(err)
	}
	if rr.Code == 250 {
		if r, err := c.Data(msg); err != nil || r.Code != 250 {
			t.Fatalf("DATA: %v %v", r, err)
		}
	}
	return rr
}

// The liaison office may write to Mali; its scope must hold for the
// liaison's authenticated login, and never for someone who merely writes
// its address in MAIL FROM.
const liaisonConfig = `detect:
  protect: [mil]
policy:
  scopes:
    - senders: [.liaison.army.mil]
      allow: [.ml]
`

func TestSASLLoginNotMailFromSelectsTheScopeThroughMilter(t *testing.T) {
	s := startStray(t, liaisonConfig)
	saslScopes(t, postfixtest.Options{Milter: s.MilterSpec()})
}

func TestSASLLoginNotMailFromSelectsTheScopeThroughPolicyService(t *testing.T) {
	s := startStray(t, liaisonConfig)
	saslScopes(t, postfixtest.Options{Policy: s.Policy})
}

func saslScopes(t *testing.T, o postfixtest.Options) {
	t.Helper()
	auth := startDovecotAuth(t, map[string]string{"j@liaison.army.mil": "liaison-pw", "mallory@army.mil": "mallory-pw"})
	o.Extra = map[string]string{
		"smtpd_sasl_auth_enable":      "yes",
		"smtpd_sasl_type":             "dovecot",
		"smtpd_sasl_path":             "inet:" + auth,
		"smtpd_sasl_security_options": "noanonymous",
	}
	pf := postfixtest.Start(t, o)
	cases := []struct {
		name, user, pass, from string
		want                   int
	}{
		{"unauthenticated, forged liaison envelope", "", "", "x@liaison.army.mil", 550},
		{"authenticated outside the scope, forged liaison envelope", "mallory@army.mil", "mallory-pw", "x@liaison.army.mil", 550},
		{"authenticated liaison", "j@liaison.army.mil", "liaison-pw", "j@liaison.army.mil", 250},
	}
	for _, c := range cases {
		if r := sendAs(t, pf, c.user, c.pass, c.from, "b@army.ml"); r.Code != c.want {
			t.Errorf("%s: RCPT got %v, want %d", c.name, r, c.want)
		}
	}
	pf.Sink.WaitRecipients(1, 20*time.Second)
	time.Sleep(500 * time.Millisecond)
	if got := pf.Sink.Recipients(); len(got) != 1 || got[0] != "b@army.ml" {
		t.Errorf("delivered %q, want only the liaison's b@army.ml", got)
	}
}
