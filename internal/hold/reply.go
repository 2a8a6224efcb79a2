package hold

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// Reply addresses let a sender answer a notification by replying, for mail
// clients that cannot open links: the notification's Reply-To is
// r-ID-EXPIRY-SIG@DOMAIN (a signed token, 62 characters of local part), the
// MTA routes DOMAIN to stray's reply listener, and the first word of the
// reply — send, fix or cancel — acts, when the reply comes from the
// message's own sender.

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
	if len(sig) != 16 || s.mac("reply", id, e)[:16] != sig {
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

// ReplyServer is the SMTP listener for replies. It accepts mail only for
// valid reply addresses, so it relays nothing.
type ReplyServer struct {
	h   *Holder
	srv *smtp.Server
}

// NewReplyServer makes the reply listener's server.
func (h *Holder) NewReplyServer() *ReplyServer {
	rs := &ReplyServer{h: h}
	s := smtp.NewServer(replyBackend{h})
	s.Domain = h.cfg.ReplyDomain
	s.ReadTimeout = time.Minute
	s.WriteTimeout = time.Minute
	s.MaxMessageBytes = 1 << 20
	s.MaxRecipients = 5
	s.EnableSMTPUTF8 = true
	rs.srv = s
	return rs
}

// Serve accepts connections on l.
func (rs *ReplyServer) Serve(l net.Listener) error {
	err := rs.srv.Serve(l)
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops the listener.
func (rs *ReplyServer) Shutdown(ctx context.Context) error { return rs.srv.Shutdown(ctx) }

type replyBackend struct{ h *Holder }

func (b replyBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &replySession{h: b.h, client: c.Conn().RemoteAddr().String()}, nil
}

type replySession struct {
	h      *Holder
	client string
	from   string
	ids    []string
}

func (s *replySession) AuthPlain(string, string) error { return smtp.ErrAuthUnsupported }
func (s *replySession) Mail(from string, _ *smtp.MailOptions) error {
	s.from, s.ids = from, nil
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
			s.h.log.Warn("reply from someone else than the sender ignored", "id", id, "from", s.from)
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "only the sender of the held message can answer"}
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
