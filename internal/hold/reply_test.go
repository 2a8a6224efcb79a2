package hold

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/postfixtest"
	"github.com/stray-mail/stray/internal/store"
)

// replySetup is a held message, its notification, and a running reply
// listener: a real store, real SMTP on loopback, a real sink for
// notifications and re-injected mail.
type replySetup struct {
	h     *Holder
	st    store.Store
	sink  *postfixtest.Sink
	addr  string // the reply listener
	id    string // the held message
	token string // the reply address the notification carried
}

var replyToRE = regexp.MustCompile(`(?m)^Reply-To: <([^>]+)>\r?$`)

// startReplySetup holds alice@example.org's message to x@gmial.com, sends
// the notification to the sink, and starts a reply listener with the given
// options.
func startReplySetup(t *testing.T, o ReplyOptions) *replySetup {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key := make([]byte, 32)
	rand.Read(key)
	signer, err := NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	sink := postfixtest.StartSink(t)
	h := New(Config{Node: "test", BaseURL: "http://127.0.0.1:1", NotifySMTP: sink.Addr, NotifyFrom: "stray@example.org",
		ReinjectSMTP: sink.Addr, ReplyDomain: "reply.example.org"}, st, signer, slog.New(slog.DiscardHandler), nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rs := h.NewReplyServer(o)
	go rs.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rs.Shutdown(ctx)
	})
	r := &replySetup{h: h, st: st, sink: sink, addr: l.Addr().String()}
	r.id, r.token = r.hold(t, "From: alice@example.org\r\nTo: x@gmial.com\r\nSubject: figures\r\n\r\nhello\r\n")
	return r
}

// hold holds another message of alice@example.org's to x@gmial.com with
// the given content, notifies her, and returns its id and the reply
// address her notification carried.
func (r *replySetup) hold(t *testing.T, raw string) (id, token string) {
	t.Helper()
	ctx := context.Background()
	id, err := r.h.Hold(ctx, Request{QueueID: "Q1", Sender: "alice@example.org",
		Held: []store.Recipient{{Address: "x@gmial.com", Verdict: "hold", Intended: "gmail.com", Suggestion: "x@gmail.com"}},
		Raw:  []byte(raw)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.h.Notify(ctx, id); err != nil {
		t.Fatal(err)
	}
	for _, msg := range r.sink.Messages() {
		if !strings.Contains(string(msg.Data), "X-Stray-Held: "+id+"\r\n") {
			continue
		}
		m := replyToRE.FindSubmatch(msg.Data)
		if m == nil {
			t.Fatalf("notification without a Reply-To:\n%s", msg.Data)
		}
		return id, string(m[1])
	}
	t.Fatalf("no notification for %s", id)
	return "", ""
}

func (r *replySetup) state(t *testing.T) store.State { return r.stateOf(t, r.id) }

func (r *replySetup) stateOf(t *testing.T, id string) store.State {
	t.Helper()
	m, err := r.st.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return m.State
}

const sendReply = "From: alice@example.org\r\nSubject: Re: Held\r\n\r\nSend\r\n\r\n> Your message ...\r\n"

// greetingFrom connects to addr from the loopback address src and returns
// the server's first reply line, and whether the server then closed the
// connection without another word.
func greetingFrom(t *testing.T, src, addr string) (greeting string, closed bool) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the greeting: %v", err)
	}
	fmt.Fprintf(c, "EHLO mta.example.org\r\n")
	more, err := br.ReadString('\n')
	return strings.TrimSpace(line), more == "" && err != nil
}

func TestReplyFromAClientOutsideReplyClientsIsRefusedAtConnect(t *testing.T) {
	t.Parallel()
	only1 := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	r := startReplySetup(t, ReplyOptions{Clients: only1})
	for _, tc := range []struct {
		name, src, want string
		closed          bool
	}{
		{"the organisation's MTA is greeted", "127.0.0.1", "220 ", false},
		{"another host is refused", "127.0.0.2", "554 5.7.1 ", true},
		{"yet another host is refused", "127.0.0.53", "554 5.7.1 ", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, closed := greetingFrom(t, tc.src, r.addr)
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("greeting from %s: %q, want %q...", tc.src, got, tc.want)
			}
			if closed != tc.closed {
				t.Errorf("connection from %s closed after the greeting: %v, want %v", tc.src, closed, tc.closed)
			}
		})
	}
	if got := r.state(t); got != store.StateHeld {
		t.Errorf("state %s after refused connections, want held", got)
	}
}

func TestReplyClientsDefaultToLoopbackOnly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.4.5.6", true},
		{"::1", true},
		{"::ffff:127.0.0.1", true},
		{"10.0.0.1", false},
		{"192.0.2.7", false},
		{"2001:db8::1", false},
	} {
		if got := clientAllowed(nil, netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("default clients, %s allowed: %v, want %v", tc.addr, got, tc.want)
		}
	}
}

func TestReplyWithoutTheTokenIsRefusedEvenFromTheSendersAddress(t *testing.T) {
	t.Parallel()
	r := startReplySetup(t, ReplyOptions{})
	local, domain, _ := strings.Cut(r.token, "@")
	parts := strings.Split(local, "-")
	if len(parts) != 4 {
		t.Fatalf("token %q: want r-ID-EXPIRY-SIG", r.token)
	}
	id, exp, sig := parts[1], parts[2], parts[3]
	flip := func(s string) string { // the last digit changed
		c := byte('0')
		if s[len(s)-1] == '0' {
			c = '1'
		}
		return s[:len(s)-1] + string(c)
	}
	other := r.h.signer.ReplyAddress(strings.Repeat("0", 32), time.Now().Add(time.Hour), domain)
	otherSig := strings.Split(strings.Split(other, "@")[0], "-")[3]
	for _, tc := range []struct{ name, rcpt string }{
		{"the hold id alone", "r-" + id + "@" + domain},
		{"the hold id and expiry, no signature", "r-" + id + "-" + exp + "@" + domain},
		{"a wrong signature", "r-" + id + "-" + exp + "-" + flip(sig) + "@" + domain},
		{"another hold's signature", "r-" + id + "-" + exp + "-" + otherSig + "@" + domain},
		{"a later expiry", "r-" + id + "-" + flip(exp) + "-" + sig + "@" + domain},
		{"a short signature", "r-" + id + "-" + exp + "-" + sig[:8] + "@" + domain},
		{"postmaster", "postmaster@" + domain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rcpt, data, err := postfixtest.Send(r.addr, "alice@example.org", []string{tc.rcpt}, sendReply)
			if err != nil {
				t.Fatal(err)
			}
			if len(rcpt) != 1 || rcpt[0].Code != 550 || data.Code != 0 {
				t.Errorf("RCPT %s: %v, data %v; want 550 and no DATA", tc.rcpt, rcpt, data)
			}
		})
	}
	if got := r.state(t); got != store.StateHeld {
		t.Errorf("state %s, want held", got)
	}
	if n := len(r.sink.Messages()); n != 1 {
		t.Errorf("the sink got %d messages, want only the notification", n)
	}
}

func TestReplyThatIsNotTheSendersOwnAnswerIsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, from, msg string
		wantMail        int // the reply to MAIL FROM (250: go on to DATA)
	}{
		{"a bounce (null sender)", "", sendReply, 550},
		{"someone else's address", "mallory@example.net", sendReply, 250},
		{"an auto-reply", "alice@example.org", "From: alice@example.org\r\nAuto-Submitted: auto-replied\r\nSubject: Out of office\r\n\r\nYes, I am away until Monday.\r\n", 250},
		{"an auto-generated message", "alice@example.org", "From: alice@example.org\r\nAuto-Submitted: auto-generated (vacation)\r\n\r\nSend\r\n", 250},
		{"a bulk message", "alice@example.org", "From: alice@example.org\r\nPrecedence: bulk\r\n\r\nSend\r\n", 250},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := startReplySetup(t, ReplyOptions{})
			c, err := postfixtest.Dial(r.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if rp, err := c.Cmd("EHLO mta.example.org"); err != nil || rp.Code != 250 {
				t.Fatalf("EHLO: %v %v", rp, err)
			}
			rp, err := c.Cmd("MAIL FROM:<%s>", tc.from)
			if err != nil || rp.Code != tc.wantMail {
				t.Fatalf("MAIL FROM:<%s>: %v %v, want %d", tc.from, rp, err, tc.wantMail)
			}
			if rp.Code == 250 {
				if rp, err := c.Cmd("RCPT TO:<%s>", r.token); err != nil || rp.Code != 250 {
					t.Fatalf("RCPT: %v %v", rp, err)
				}
				rp, err = c.Data(tc.msg)
				if err != nil || rp.Code != 550 || !strings.Contains(rp.Text, "5.7.1") {
					t.Fatalf("DATA: %v %v, want 550 5.7.1", rp, err)
				}
			} else if !strings.Contains(rp.Text, "5.7.1") {
				t.Errorf("MAIL: %q, want 5.7.1", rp.Text)
			}
			if got := r.state(t); got != store.StateHeld {
				t.Errorf("state %s, want held", got)
			}
		})
	}
}

func TestSendersReplyWithTheTokenReleasesTheMessageOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		want       store.State
		wantRcpt   string
	}{
		{"send", "Send\r\n", store.StateReleased, "x@gmial.com"},
		{"fix", "fix please\r\n", store.StateReleased, "x@gmail.com"},
		{"cancel", "Cancel.\r\n", store.StateDiscarded, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := startReplySetup(t, ReplyOptions{Clients: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
			msg := "From: alice@example.org\r\nSubject: Re: Held\r\nAuto-Submitted: no\r\n\r\n" + tc.body
			// The MTA may hand the address over in another case.
			rcpt, data, err := postfixtest.Send(r.addr, "Alice@Example.org", []string{strings.ToUpper(r.token)}, msg)
			if err != nil || len(rcpt) != 1 || rcpt[0].Code != 250 || data.Code != 250 {
				t.Fatalf("reply: %v %v %v", rcpt, data, err)
			}
			if got := r.state(t); got != tc.want {
				t.Errorf("state %s, want %s", got, tc.want)
			}
			// A second answer changes nothing.
			if _, data, err := postfixtest.Send(r.addr, "alice@example.org", []string{r.token}, "\r\nSend\r\n"); err != nil || data.Code != 250 {
				t.Fatalf("second reply: %v %v", data, err)
			}
			var got []string
			for _, m := range r.sink.Messages()[1:] {
				got = append(got, m.To...)
			}
			want := []string(nil)
			if tc.wantRcpt != "" {
				want = []string{tc.wantRcpt}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("delivered to %v, want %v", got, want)
			}
			evs, err := r.st.Events(context.Background(), store.EventFilter{MessageID: r.id})
			if err != nil {
				t.Fatal(err)
			}
			actor := ""
			for _, e := range evs {
				if e.Kind == "released" || e.Kind == "released-fixed" || e.Kind == "discarded" {
					actor = e.Actor
				}
			}
			if actor != "sender-reply:127.0.0.1" {
				t.Errorf("actor %q, want sender-reply:127.0.0.1", actor)
			}
		})
	}
}

// TestReplyThroughPostfixReleasesTheMessage: the legitimate path end to
// end: the sender's reply goes to the organisation's Postfix, which routes
// the reply domain to the listener (transport_maps), and the message is
// released.
func TestReplyThroughPostfixReleasesTheMessage(t *testing.T) {
	t.Parallel()
	postfixtest.Require(t)
	r := startReplySetup(t, ReplyOptions{})
	pf := postfixtest.Start(t, postfixtest.Options{Extra: map[string]string{
		"transport_maps": "inline:{reply.example.org=smtp:[" + strings.Replace(r.addr, ":", "]:", 1) + "}",
	}})
	rcpt, data, err := postfixtest.Send(pf.SMTP, "alice@example.org", []string{r.token}, sendReply)
	if err != nil || rcpt[0].Code != 250 || data.Code != 250 {
		t.Fatalf("reply to Postfix: %v %v %v", rcpt, data, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for r.state(t) != store.StateReleased && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if got := r.state(t); got != store.StateReleased {
		t.Fatalf("state %s, want released; postfix log:\n%s", got, pf.Log())
	}
	if got := r.sink.WaitRecipients(2, 10*time.Second); fmt.Sprint(got) != "[alice@example.org x@gmial.com]" {
		t.Errorf("sink recipients %v, want the notification and the release", got)
	}
}

// FuzzReply feeds the reply listener's parsers: a reply address is
// accepted only when it is exactly one the signer made, and no input makes
// the address, action or header parsing panic.
func FuzzReply(f *testing.F) {
	s := testSigner(f)
	now := time.Unix(1_800_000_000, 0)
	good := s.ReplyAddress("0123456789abcdef0123456789abcdef", now.Add(time.Hour), "reply.example.org")
	f.Add(good, "From: a@b\r\n\r\nSend\r\n")
	f.Add("r-x-1-2@d", "Auto-Submitted: auto-replied\r\n\r\nyes\r\n")
	f.Add("r--"+strings.Repeat("9", 20)+"-@", "\r\n\r\n> quoted\r\nCANCEL.\r\n")
	f.Add("R-0123456789ABCDEF0123456789ABCDEF-1800003600-00@x", "Precedence: bulk\r\nAuto-Submitted: ;(\r\n\r\n")
	f.Add("", "Received: from pc (pc [10.0.0.7])\r\n\t(Authenticated sender: alice@example.org)\r\n\tby mx\r\n\r\nSend\r\n")
	f.Fuzz(func(t *testing.T, addr, msg string) {
		if id, err := s.VerifyReplyAddress(addr, now); err == nil {
			local := strings.ToLower(addr)
			if i := strings.LastIndexByte(local, '@'); i >= 0 {
				local = local[:i]
			}
			exp := strings.Split(local, "-")[2]
			e, _ := strconv.ParseInt(exp, 10, 64)
			want := s.ReplyAddress(id, time.Unix(e, 0), "d")
			if strings.TrimSuffix(want, "@d") != local {
				t.Fatalf("accepted %q as %q, but the signer makes %q", addr, id, want)
			}
		}
		if login, ok := submittedBy([]byte(msg)); ok && (login == "" || strings.ContainsAny(login, " \t\r\n()")) {
			t.Fatalf("submittedBy(%q) = %q", msg, login)
		}
		replyAction(strings.NewReader(msg))
		if m, err := mail.ReadMessage(strings.NewReader(msg)); err == nil {
			automatic(m.Header)
		}
	})
}

// startDovecotAuth serves Dovecot's authentication protocol (the one
// Postfix speaks with smtpd_sasl_type = dovecot) on loopback, with PLAIN
// against users (login → password). It returns its address.
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
	c.SetDeadline(time.Now().Add(time.Minute))
	fmt.Fprintf(c, "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nSPID\t1\nCUID\t1\nCOOKIE\t0123456789abcdef0123456789abcdef\nDONE\n")
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if f[0] != "AUTH" || len(f) < 3 {
			continue
		}
		id, resp := f[1], ""
		for _, p := range f[3:] {
			if v, ok := strings.CutPrefix(p, "resp="); ok {
				resp = v
			}
		}
		raw, _ := base64.StdEncoding.DecodeString(resp)
		parts := strings.Split(string(raw), "\x00")
		if len(parts) == 3 && f[2] == "PLAIN" && users[parts[1]] != "" && users[parts[1]] == parts[2] {
			fmt.Fprintf(c, "OK\t%s\tuser=%s\n", id, parts[1])
		} else {
			fmt.Fprintf(c, "FAIL\t%s\n", id)
		}
	}
}

func TestSubmittedByReadsOnlyTheTopmostReceivedOfTheMTA(t *testing.T) {
	t.Parallel()
	const by = "\tby mx.example.org (Postfix) with ESMTPSA id 4AB\r\n\tfor <r-x@reply.example.org>; Mon, 30 Nov 2026 04:38:28 +0000 (UTC)\r\n"
	for _, tc := range []struct {
		name, head string
		want       string // the login ("" none)
	}{
		{"authenticated submission", "Received: from pc.example.org (pc.example.org [10.0.0.7])\r\n\t(Authenticated sender: alice@example.org)\r\n" + by, "alice@example.org"},
		{"a bare login, with TLS details", "Received: from pc (pc.example.org [10.0.0.7])\r\n\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\r\n\t key-exchange X25519 server-signature RSA-PSS (2048 bits))\r\n\t(No client certificate requested)\r\n\t(Authenticated sender: alice)\r\n" + by, "alice"},
		{"the name in any case", "RECEIVED: from pc (pc [10.0.0.7])\r\n\t(Authenticated sender: Alice)\r\n" + by, "Alice"},
		{"unauthenticated, a forged one below", "Received: from evil (evil [10.9.9.9])\r\n" + by + "Received: from pc (pc [10.0.0.7])\r\n\t(Authenticated sender: alice@example.org)\r\n" + by, ""},
		{"the text inside the from clause", "Received: from x(Authenticated sender: alice) (evil [10.9.9.9])\r\n" + by, ""},
		{"the text on the by line", "Received: from evil (evil [10.9.9.9]) by mx (Authenticated sender: alice)\r\n" + by, ""},
		{"a second sender on the line", "Received: from evil (evil [10.9.9.9])\r\n\t(Authenticated sender: alice) (x)\r\n" + by, ""},
		{"no Received", "From: alice@example.org\r\n", ""},
		{"after the header", "Subject: x\r\n\r\nReceived: from pc (pc [10.0.0.7])\r\n\t(Authenticated sender: alice)\r\n", ""},
		{"bare line feeds", strings.ReplaceAll("Received: from pc (pc [10.0.0.7])\r\n\t(Authenticated sender: alice)\r\n"+by, "\r\n", "\n"), "alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := submittedBy([]byte(tc.head + "Subject: Re: Held\r\n\r\nSend\r\n"))
			if got != tc.want || ok != (tc.want != "") {
				t.Errorf("submittedBy = %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}

// TestReplyRequiringAuthenticationIsBoundToTheSendersLogin: with
// RequireAuth, a reply through a real Postfix acts only when Postfix
// authenticated its sender (smtpd_sasl_authenticated_header) with the held
// message's sender address as the login.
func TestReplyRequiringAuthenticationIsBoundToTheSendersLogin(t *testing.T) {
	t.Parallel()
	postfixtest.Require(t)
	r := startReplySetup(t, ReplyOptions{RequireAuth: true})
	users := map[string]string{"alice@example.org": "pw-a", "alice": "pw-a2", "bob@example.org": "pw-b"}
	auth := startDovecotAuth(t, users)
	pf := postfixtest.Start(t, postfixtest.Options{Extra: map[string]string{
		"transport_maps":                  "inline:{reply.example.org=smtp:[" + strings.Replace(r.addr, ":", "]:", 1) + "}",
		"smtpd_sasl_auth_enable":          "yes",
		"smtpd_sasl_type":                 "dovecot",
		"smtpd_sasl_path":                 "inet:" + auth,
		"smtpd_sasl_authenticated_header": "yes",
	}})
	forged := "Received: from pc (pc [10.0.0.7])\r\n\t(Authenticated sender: alice@example.org)\r\n\tby mx.example.org (Postfix) with ESMTPSA id 4AB\r\n"
	for _, tc := range []struct {
		name    string
		login   string // "" unauthenticated
		forge   bool   // the reply carries a forged Received of its own
		release bool
	}{
		{"the sender's address as login", "alice@example.org", false, true},
		{"unauthenticated, from the MTA's own network", "", false, false},
		{"unauthenticated, with a forged Received", "", true, false},
		{"another login claiming the sender", "bob@example.org", false, false},
		{"a login that is not the sender's address", "alice", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, token := r.hold(t, "From: alice@example.org\r\nSubject: "+tc.name+"\r\n\r\nfigures\r\n")
			c, err := postfixtest.Dial(pf.SMTP)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if rp, err := c.Cmd("EHLO pc.example.org"); err != nil || rp.Code != 250 {
				t.Fatalf("EHLO: %v %v", rp, err)
			}
			if tc.login != "" {
				cred := base64.StdEncoding.EncodeToString([]byte("\x00" + tc.login + "\x00" + users[tc.login]))
				if rp, err := c.Cmd("AUTH PLAIN %s", cred); err != nil || rp.Code != 235 {
					t.Fatalf("AUTH: %v %v", rp, err)
				}
			}
			msg := sendReply
			if tc.forge {
				msg = forged + msg
			}
			for _, cmd := range []string{"MAIL FROM:<alice@example.org>", "RCPT TO:<" + token + ">"} {
				if rp, err := c.Cmd("%s", cmd); err != nil || rp.Code != 250 {
					t.Fatalf("%s: %v %v", cmd, rp, err)
				}
			}
			if rp, err := c.Data(msg); err != nil || rp.Code != 250 {
				t.Fatalf("DATA: %v %v", rp, err)
			}
			// Postfix delivers to the listener, or bounces when it refuses.
			want, outcome := store.StateReleased, "status=sent"
			if !tc.release {
				want, outcome = store.StateHeld, "5.7.1"
			}
			deadline := time.Now().Add(30 * time.Second)
			for !strings.Contains(pf.Log(), token) && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			var line string
			for _, l := range strings.Split(pf.Log(), "\n") {
				if strings.Contains(l, "to=<"+token+">") {
					line = l
				}
			}
			if !strings.Contains(line, outcome) {
				t.Errorf("postfix: %q, want %s", line, outcome)
			}
			if got := r.stateOf(t, id); got != want {
				t.Errorf("state %s, want %s", got, want)
			}
		})
	}
}

// TestDocumentedPostfixRulesKeepTheReplyDomainForAuthenticatedSubmission
// runs the restriction docs/hold.md gives (as a texthash table, which needs
// no postmap): a client on mynetworks that has not logged in cannot even
// address the reply domain, a logged-in sender can, and other mail from
// mynetworks still flows.
func TestDocumentedPostfixRulesKeepTheReplyDomainForAuthenticatedSubmission(t *testing.T) {
	t.Parallel()
	postfixtest.Require(t)
	table := filepath.Join(t.TempDir(), "stray_reply")
	if err := os.WriteFile(table, []byte("reply.example.org   permit_sasl_authenticated, reject\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(table), 0o755)
	users := map[string]string{"alice@example.org": "pw-a"}
	pf := postfixtest.Start(t, postfixtest.Options{Extra: map[string]string{
		"smtpd_sasl_auth_enable":       "yes",
		"smtpd_sasl_type":              "dovecot",
		"smtpd_sasl_path":              "inet:" + startDovecotAuth(t, users),
		"smtpd_recipient_restrictions": "check_recipient_access texthash:" + table + ", permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
		"transport_maps":               "inline:{reply.example.org=discard:}",
	}})
	for _, tc := range []struct {
		name  string
		login bool
		rcpt  string
		want  int
	}{
		{"mynetworks without login, to the reply domain", false, "r-x@reply.example.org", 554},
		{"mynetworks without login, elsewhere", false, "bob@example.net", 250},
		{"logged in, to the reply domain", true, "r-x@reply.example.org", 250},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := postfixtest.Dial(pf.SMTP)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if rp, err := c.Cmd("EHLO pc.example.org"); err != nil || rp.Code != 250 {
				t.Fatalf("EHLO: %v %v", rp, err)
			}
			if tc.login {
				cred := base64.StdEncoding.EncodeToString([]byte("\x00alice@example.org\x00pw-a"))
				if rp, err := c.Cmd("AUTH PLAIN %s", cred); err != nil || rp.Code != 235 {
					t.Fatalf("AUTH: %v %v", rp, err)
				}
			}
			if rp, err := c.Cmd("MAIL FROM:<alice@example.org>"); err != nil || rp.Code != 250 {
				t.Fatalf("MAIL: %v %v", rp, err)
			}
			if rp, err := c.Cmd("RCPT TO:<%s>", tc.rcpt); err != nil || rp.Code != tc.want {
				t.Errorf("RCPT TO:<%s>: %v %v, want %d", tc.rcpt, rp, err, tc.want)
			}
		})
	}
}
