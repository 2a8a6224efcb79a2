package hold

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/stray-mail/stray/internal/store"
)

// Reply addresses let a sender answer a notification by replying, for mail
// clients that cannot open links: the notification's Reply-To is
// r-ID-EXPIRY-SIG@DOMAIN (62 characters of local part), the MTA routes
// DOMAIN to stray's reply listener, and the first word of the reply — send,
// fix or cancel — acts.
//
// A reply acts only when all of these hold:
//   - it comes from the organisation's MTA: the client address is in
//     hold.reply_clients (default loopback); others are refused at connect
//     with 554 5.7.1;
//   - its recipient is the signed reply address of that hold: SIG is an
//     HMAC-SHA256 (hold.secret_file) over the id and the expiry, 64 bits,
//     which only the notification carried, so having received the
//     notification (or a copy of it) is the only way to know it;
//   - its MAIL FROM is the held message's sender (as strong as the MTA's
//     binding of MAIL FROM to the authenticated login,
//     reject_sender_login_mismatch);
//   - it is a person's answer: not a bounce (null sender), not marked
//     Auto-Submitted or Precedence bulk, junk or list;
//   - with hold.reply_require_auth, the MTA authenticated its sender with
//     the held message's sender address as the login (submittedBy).

// DefaultReplyClients are the clients the reply listener accepts when
// hold.reply_clients is empty: this machine only.
func DefaultReplyClients() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

// clientAllowed reports whether a reply may come from a; no clients means
// DefaultReplyClients, never everyone.
func clientAllowed(clients []netip.Prefix, a netip.Addr) bool {
	if len(clients) == 0 {
		clients = DefaultReplyClients()
	}
	a = a.Unmap()
	for _, p := range clients {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ReplyAddress is the signed reply address for a held message.
func (s *Signer) ReplyAddress(id string, exp time.Time, domain string) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	return "r-" + id + "-" + e + "-" + s.mac("reply", id, e)[:16] + "@" + domain
}

// VerifyReplyAddress checks a reply address and returns the message id.
func (s *Signer) VerifyReplyAddress(addr string, now time.Time) (string, error) {
	local := strings.ToLower(addr)
	if i := strings.LastIndexByte(local, '@'); i >= 0 {
		local = local[:i]
	}
	parts := strings.Split(local, "-")
	if len(parts) != 4 || parts[0] != "r" {
		return "", ErrBadSignature
	}
	id, e, sig := parts[1], parts[2], parts[3]
	if len(sig) != 16 || !hmac.Equal([]byte(s.mac("reply", id, e)[:16]), []byte(sig)) {
		return "", ErrBadSignature
	}
	exp, err := strconv.ParseInt(e, 10, 64)
	if err != nil {
		return "", ErrBadSignature
	}
	if now.Unix() > exp {
		return "", ErrExpired
	}
	return id, nil
}

// replyAction reads the action from a reply: the first word of the first
// line of the body that is not quoted, blank or a greeting.
func replyAction(body io.Reader) string {
	sc := bufio.NewScanner(io.LimitReader(body, 64*1024))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, ">") {
			continue
		}
		w := strings.ToLower(strings.Trim(strings.Fields(line)[0], ".,!:;\"'"))
		switch w {
		case "send", "yes", "release":
			return ActionRelease
		case "fix", "suggested", "correct":
			return ActionFix
		case "cancel", "no", "discard":
			return ActionCancel
		}
		return ""
	}
	return ""
}

// automatic reports why a reply is an automatic message rather than a
// person's answer ("" when it is not): RFC 3834 Auto-Submitted other than
// "no", or Precedence bulk, junk or list.
func automatic(h mail.Header) string {
	if v := strings.TrimSpace(h.Get("Auto-Submitted")); v != "" {
		kw := v
		if i := strings.IndexAny(v, ";( \t"); i >= 0 {
			kw = v[:i]
		}
		if kw = strings.ToLower(kw); kw != "no" {
			return "Auto-Submitted: " + kw
		}
	}
	switch p := strings.ToLower(strings.TrimSpace(h.Get("Precedence"))); p {
	case "bulk", "junk", "list":
		return "Precedence: " + p
	}
	return ""
}

// submittedBy returns the login the MTA authenticated a message's sender
// as: the "(Authenticated sender: LOGIN)" line Postfix writes
// (smtpd_sasl_authenticated_header) into its own Received header, which is
// the topmost one. Only a whole continuation line of that first Received
// field counts: the parts of it a client controls (its HELO name, a
// certificate's name) are on other lines or cannot hold a line break, and
// any Received a client wrote itself is below the MTA's.
func submittedBy(raw []byte) (login string, ok bool) {
	inReceived := false
	for _, line := range bytes.Split(raw, []byte("\n")) {
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			return "", false // the end of the header: no login
		}
		if line[0] == ' ' || line[0] == '\t' {
			if !inReceived {
				continue
			}
			rest, ok := bytes.CutPrefix(bytes.TrimLeft(line, " \t"), []byte("(Authenticated sender: "))
			if login, ok2 := bytes.CutSuffix(rest, []byte(")")); ok && ok2 && len(login) > 0 && !bytes.ContainsAny(login, " \t()") {
				return string(login), true
			}
			continue
		}
		if inReceived {
			return "", false // the topmost Received ended without a login
		}
		name, _, _ := bytes.Cut(line, []byte(":"))
		inReceived = strings.EqualFold(string(bytes.TrimSpace(name)), "Received")
	}
	return "", false
}

// replyAuthorised checks, for RequireAuth, that the MTA authenticated the
// reply's sender with the held message's sender address as the login.
// (The held message itself shows no trustworthy login: the MTA does not
// pass its own Received header to the milter, so any there was written by
// the client.)
func replyAuthorised(reply []byte, m *store.Message) (login string, ok bool) {
	login, ok = submittedBy(reply)
	return login, ok && strings.EqualFold(login, m.Sender)
}

// ReplyServer is the SMTP listener for replies. It accepts connections
// only from its clients, and mail only for valid reply addresses, so it
// relays nothing.
type ReplyServer struct {
	h       *Holder
	srv     *smtp.Server
	clients []netip.Prefix
}

// ReplyOptions configure the reply listener.
type ReplyOptions struct {
	// Clients are the addresses of the organisation's MTA
	// (hold.reply_clients); empty means DefaultReplyClients.
	Clients []netip.Prefix
	// RequireAuth (hold.reply_require_auth) accepts a reply only when the
	// MTA authenticated its sender: the topmost Received header, which the
	// MTA wrote, carries "(Authenticated sender: LOGIN)" (Postfix:
	// smtpd_sasl_authenticated_header = yes), and LOGIN is the held
	// message's sender address.
	RequireAuth bool
}

// NewReplyServer makes the reply listener's server.
func (h *Holder) NewReplyServer(o ReplyOptions) *ReplyServer {
	clients := o.Clients
	if len(clients) == 0 {
		clients = DefaultReplyClients()
	}
	rs := &ReplyServer{h: h, clients: clients}
	s := smtp.NewServer(replyBackend{h: h, requireAuth: o.RequireAuth})
	s.Domain = h.cfg.ReplyDomain
	s.ReadTimeout = time.Minute
	s.WriteTimeout = time.Minute
	s.MaxMessageBytes = 1 << 20
	s.MaxRecipients = 5
	s.EnableSMTPUTF8 = true
	rs.srv = s
	return rs
}

// Serve accepts connections on l. A client outside the allowed ones is
// refused at connect: it is greeted with 554 5.7.1 and the connection is
// closed, before any SMTP command is read.
func (rs *ReplyServer) Serve(l net.Listener) error {
	err := rs.srv.Serve(&replyListener{Listener: l, rs: rs})
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops the listener.
func (rs *ReplyServer) Shutdown(ctx context.Context) error { return rs.srv.Shutdown(ctx) }

// replyListener passes on only the connections of allowed clients.
type replyListener struct {
	net.Listener
	rs *ReplyServer
}

func (l *replyListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, perr := netip.ParseAddrPort(c.RemoteAddr().String())
		if perr == nil && clientAllowed(l.rs.clients, ap.Addr()) {
			return c, nil
		}
		go l.rs.refuse(c)
	}
}

// refuse greets a client that may not answer with 554 5.7.1 and hangs up.
func (rs *ReplyServer) refuse(c net.Conn) {
	defer c.Close()
	rs.h.log.Warn("reply from a client outside hold.reply_clients refused", "client", c.RemoteAddr().String())
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "554 5.7.1 %s: replies are accepted only through the organisation's mail server\r\n", rs.h.cfg.ReplyDomain)
}

type replyBackend struct {
	h           *Holder
	requireAuth bool
}

func (b replyBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	client := c.Conn().RemoteAddr().String()
	if ap, err := netip.ParseAddrPort(client); err == nil {
		client = ap.Addr().Unmap().String()
	}
	return &replySession{h: b.h, client: client, requireAuth: b.requireAuth}, nil
}

type replySession struct {
	h           *Holder
	client      string // IP address
	requireAuth bool
	from        string
	ids         []string
}

func (s *replySession) AuthPlain(string, string) error { return smtp.ErrAuthUnsupported }
func (s *replySession) Mail(from string, _ *smtp.MailOptions) error {
	s.from, s.ids = from, nil
	if from == "" {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "a bounce cannot answer a held message"}
	}
	return nil
}

func (s *replySession) Rcpt(to string, _ *smtp.RcptOptions) error {
	id, err := s.h.signer.VerifyReplyAddress(to, s.h.now())
	if err != nil {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such reply address"}
	}
	s.ids = append(s.ids, id)
	return nil
}

func (s *replySession) Data(r io.Reader) error {
	raw, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return err
	}
	var body io.Reader = bytes.NewReader(raw)
	if m, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		if why := automatic(m.Header); why != "" {
			s.h.log.Warn("automatic reply ignored", "client", s.client, "from", s.from, "why", why)
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "an automatic reply cannot answer a held message"}
		}
		body = m.Body
	}
	action := replyAction(body)
	if action == "" {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "start your reply with SEND, FIX or CANCEL"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, id := range s.ids {
		m, err := s.h.store.Get(ctx, id)
		if err != nil {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
		}
		if !strings.EqualFold(m.Sender, s.from) {
			s.h.log.Warn("reply from someone else than the sender ignored", "id", id, "client", s.client, "from", s.from)
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "only the sender of the held message can answer"}
		}
		if s.requireAuth {
			login, ok := replyAuthorised(raw, m)
			if !ok {
				s.h.log.Warn("reply without the sender's authenticated submission ignored", "id", id, "client", s.client, "from", s.from, "login", login)
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "answer from your own mailbox, logged in to the organisation's mail server"}
			}
		}
		actor := "sender-reply:" + s.client
		switch action {
		case ActionRelease:
			err = s.h.Release(ctx, id, actor, false)
		case ActionFix:
			err = s.h.Release(ctx, id, actor, true)
		case ActionCancel:
			err = s.h.Discard(ctx, id, actor)
		}
		if err != nil && !errors.Is(err, ErrNotHeld) {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: fmt.Sprintf("could not %s the message; try again later", action)}
		}
	}
	return nil
}

func (s *replySession) Reset()        { s.from, s.ids = "", nil }
func (s *replySession) Logout() error { return nil }
