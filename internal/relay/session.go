package relay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/hold"
	"github.com/stray-mail/stray/internal/policy"
)

// session is one client session and its session to the next hop.
type session struct {
	s   *Server
	c   *smtp.Conn
	id  uint64
	log *slog.Logger
	gs  *gate.Session

	inRange bool // the client is in Allow; else it needs an allowed certificate
	certOK  bool // its certificate was checked and allowed (this TLS session)

	next  *smtp.Client // nil until the first MAIL, and after a failure
	inTxn bool         // MAIL was sent to the next hop
	from  string
	mail  *smtp.MailOptions
	sent  []string // recipients the next hop accepted
	held  bool     // some recipient is held
}

// Errors the relay answers on its own.
var (
	errNextHopDown = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1}, Message: "next hop unavailable; try again later"}
	errNextHopLost = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "connection to the next hop lost; try again later"}
	errTLSRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "must issue a STARTTLS command first"}
	errStore       = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "cannot store the message for confirmation; try again later"}
	errTooBigHold  = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "message too large to hold for confirmation"}
)

// nextErr is the answer for an error from the next hop: its own reply
// verbatim, or a temporary failure when the connection failed.
func (x *session) nextErr(what string, err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		x.log.Info("next hop refused", "cmd", what, "code", se.Code, "reply", se.Message)
		return se
	}
	x.log.Warn("next hop failed", "cmd", what, "err", err)
	x.dropNext()
	return errNextHopLost
}

// dropNext closes the connection to the next hop without ending what is in
// progress: an unfinished DATA is then discarded by the next hop.
func (x *session) dropNext() {
	if x.next != nil {
		x.next.Close()
		x.next = nil
	}
	x.inTxn = false
}

func (x *session) dial() error {
	s := x.s
	d := net.Dialer{Timeout: orDur(s.DialTimeout, 30*time.Second)}
	fail := func(msg string, err error) error {
		x.log.Warn(msg, "next_hop", s.NextHop, "err", err)
		return errNextHopDown
	}
	conn, err := d.Dial("tcp", s.NextHop)
	if err != nil {
		return fail("cannot reach the next hop", err)
	}
	c := smtp.NewClient(conn)
	if err := c.Hello(s.Domain); err != nil {
		c.Close()
		return fail("next hop refused the session", err)
	}
	offers, _ := c.Extension("STARTTLS")
	if !offers && s.NextHopTLS == TLSRequired {
		c.Close()
		return fail("next hop does not offer STARTTLS", errors.New("next_hop_tls is required"))
	}
	if offers && s.NextHopTLS != TLSNone {
		// go-smtp's client starts TLS only on a fresh connection.
		c.Close()
		if conn, err = d.Dial("tcp", s.NextHop); err != nil {
			return fail("cannot reach the next hop", err)
		}
		cfg := s.NextHopTLSConfig
		if cfg == nil {
			host, _, _ := net.SplitHostPort(s.NextHop)
			cfg = &tls.Config{ServerName: host}
		}
		if c, err = smtp.NewClientStartTLS(conn, cfg); err != nil {
			return fail("STARTTLS to the next hop failed", err)
		}
	}
	c.CommandTimeout = orDur(s.CommandTimeout, 5*time.Minute)
	c.SubmissionTimeout = c.CommandTimeout + 2*time.Minute
	x.next = c
	return nil
}

func (x *session) Mail(from string, opts *smtp.MailOptions) error {
	if err := x.mayRelay(); err != nil {
		return err
	}
	if x.s.RequireTLS {
		if _, ok := x.tlsState(); !ok {
			return errTLSRequired
		}
	}
	x.resetTxn()
	x.gs.Mail(from)
	kept := false
	if x.next == nil {
		if x.next = x.s.takeNext(); x.next != nil {
			kept = true
		} else if err := x.dial(); err != nil {
			return err
		}
	}
	o := passMail(opts)
	err := x.next.Mail(from, o)
	var se *smtp.SMTPError
	if err != nil && kept && !errors.As(err, &se) {
		// A kept session the next hop closed meanwhile: a fresh one.
		x.dropNext()
		if err := x.dial(); err != nil {
			return err
		}
		err = x.next.Mail(from, o)
	}
	if err != nil {
		return x.nextErr("MAIL", err)
	}
	x.inTxn, x.from, x.mail = true, from, o
	return nil
}

// passMail is what the relay passes on of MAIL's parameters: SIZE, BODY,
// SMTPUTF8, REQUIRETLS and the DSN ones (RET, ENVID); AUTH= stays here.
func passMail(o *smtp.MailOptions) *smtp.MailOptions {
	if o == nil {
		return nil
	}
	return &smtp.MailOptions{Body: o.Body, Size: o.Size, RequireTLS: o.RequireTLS, UTF8: o.UTF8, Return: o.Return, EnvelopeID: o.EnvelopeID}
}

func (x *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	r := x.gs.Rcpt(to)
	if r.Reply != nil {
		return &smtp.SMTPError{Code: r.Reply.Code, EnhancedCode: enhanced(r.Reply.Enhanced), Message: r.Reply.Text}
	}
	if r.Decision.Action == policy.Hold {
		if x.s.Holder == nil {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 2}, Message: gate.Describe(r.Decision.Finding) + " (held mail needs a store: refused)"}
		}
		x.held = true
		return nil // accepted here; never given to the next hop
	}
	if x.next == nil {
		return errNextHopLost
	}
	if err := x.next.Rcpt(to, passRcpt(opts)); err != nil {
		return x.nextErr("RCPT", err)
	}
	x.sent = append(x.sent, to)
	return nil
}

// passRcpt passes DSN's NOTIFY and ORCPT on.
func passRcpt(o *smtp.RcptOptions) *smtp.RcptOptions {
	if o == nil {
		return nil
	}
	return &smtp.RcptOptions{Notify: o.Notify, OriginalRecipientType: o.OriginalRecipientType, OriginalRecipient: o.OriginalRecipient}
}

func enhanced(s string) smtp.EnhancedCode {
	var e smtp.EnhancedCode
	if _, err := fmt.Sscanf(s, "%d.%d.%d", &e[0], &e[1], &e[2]); err != nil {
		return smtp.EnhancedCodeNotSet
	}
	return e
}

func (x *session) Data(r io.Reader) error {
	br := bufio.NewReaderSize(r, 32<<10)
	head, err := ReadHead(br, MaxHeaderBytes, strings.ToLower(gate.ReleaseHeader))
	if err != nil {
		return x.abort("reading the header", err)
	}
	if head.Hops >= x.s.MaxHops {
		x.log.Warn("too many hops; refused as a mail loop", "hops", head.Hops)
		x.gs.Reset()
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 4, 6}, Message: fmt.Sprintf("too many hops (%d Received fields); mail loop?", head.Hops)}
	}
	for _, v := range head.Fields[strings.ToLower(gate.ReleaseHeader)] {
		x.gs.Header(gate.ReleaseHeader, v)
	}
	end := x.gs.End(x.s.ctx)
	// Recipients held at RCPT but released by a valid release header go to
	// the next hop after all.
	for _, rc := range end.Released {
		if x.next == nil {
			return errNextHopLost
		}
		if err := x.next.Rcpt(rc, nil); err != nil {
			return x.nextErr("RCPT", err)
		}
		x.sent = append(x.sent, rc)
	}
	var prefix bytes.Buffer
	prefix.WriteString(x.received())
	for _, h := range end.Headers {
		prefix.WriteString(h.Name + ": " + h.Value + "\r\n")
	}
	prefix.Write(head.Raw)

	var keep *bytes.Buffer // the whole message, when something is held
	if end.Hold != "" {
		keep = &bytes.Buffer{}
		keep.Write(prefix.Bytes())
	}
	if len(x.sent) == 0 {
		// Everything accepted is held: the next hop gets nothing.
		if keep == nil {
			return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "no valid recipients"}
		}
		if _, err := io.Copy(keep, io.LimitReader(br, int64(x.s.MaxHoldSize)+1)); err != nil {
			return x.abort("reading the message", err)
		}
		if keep.Len() > x.s.MaxHoldSize {
			return errTooBigHold
		}
		if x.next != nil {
			if err := x.next.Reset(); err != nil {
				x.dropNext()
			}
			x.inTxn = false
		}
		id, err := x.hold(end, keep.Bytes())
		if err != nil {
			return err
		}
		x.notify(id)
		return nil
	}
	if x.next == nil {
		return errNextHopLost
	}
	w, err := x.next.Data()
	if err != nil {
		return x.nextErr("DATA", err)
	}
	var dst io.Writer = w
	if keep != nil {
		dst = io.MultiWriter(w, &limitWriter{b: keep, max: x.s.MaxHoldSize})
	}
	if _, err := dst.Write(prefix.Bytes()); err != nil {
		return x.abort("writing to the next hop", err)
	}
	if _, err := io.Copy(dst, br); err != nil {
		return x.abort("streaming the message", err)
	}
	id := ""
	if keep != nil {
		if keep.Len() > x.s.MaxHoldSize {
			x.dropNext()
			return errTooBigHold
		}
		// The store commits before the next hop is told the message is
		// complete: if the store fails, the next hop never gets the end
		// of the message and the client retries the whole of it.
		if id, err = x.hold(end, keep.Bytes()); err != nil {
			x.dropNext()
			return err
		}
	}
	crashPoint("before-next-hop-end")
	err = w.Close()
	x.inTxn = false
	if err != nil {
		if id != "" {
			// The client will retry (or bounce) the whole message: the
			// held copy must not wait for confirmation twice.
			if derr := x.s.Holder.Discard(context.Background(), id, "relay"); derr != nil {
				x.log.Error("cannot discard the held copy of a refused message", "id", id, "err", derr)
			}
		}
		return x.nextErr("end of DATA", err)
	}
	x.log.Info("relayed", "rcpts", len(x.sent), "held", len(end.HeldRecipients))
	if id != "" {
		x.notify(id)
	}
	return nil
}

// abort ends a message the relay could not finish: the next hop is
// disconnected mid-DATA (so it discards the message) and the client hears
// the reason (its own read error, e.g. too large, or a temporary failure).
func (x *session) abort(what string, err error) error {
	x.dropNext()
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se
	}
	x.log.Warn("message not relayed", "while", what, "err", err)
	return errNextHopLost
}

// hold stores a message with held recipients.
func (x *session) hold(end gate.End, raw []byte) (string, error) {
	sender := x.gs.Sender()
	if sender == "" {
		sender = strings.Trim(x.from, "<>")
	}
	req := hold.NewRequest(fmt.Sprintf("relay-%d-%d", x.id, time.Now().UnixNano()), sender, raw, end.HeldRecipients)
	ctx, cancel := context.WithTimeout(x.s.ctx, 20*time.Second)
	defer cancel()
	id, err := x.s.Holder.Hold(ctx, req)
	if err != nil {
		x.log.Error("cannot store the held message", "err", err)
		return "", errStore
	}
	x.log.Info("held", "id", id, "held", len(req.Held))
	return id, nil
}

// notify tells the sender about a held message, in the background: a
// failure is retried by the holder's sweep.
func (x *session) notify(id string) {
	h, log := x.s.Holder, x.log
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := h.Notify(ctx, id); err != nil {
			log.Error("notification failed; it will be retried", "id", id, "err", err)
		}
	}()
}

// received is the Received field the relay adds.
func (x *session) received() string {
	client := "unknown"
	if ta, ok := x.c.Conn().RemoteAddr().(*net.TCPAddr); ok {
		client = ta.IP.String()
	}
	proto := "ESMTP"
	if _, ok := x.tlsState(); ok {
		proto = "ESMTPS"
	}
	return fmt.Sprintf("Received: from %s ([%s])\r\n\tby %s (stray relay) with %s id %x-%d;\r\n\t%s\r\n",
		sanitize(x.c.Hostname()), client, x.s.Domain, proto, x.id, time.Now().UnixNano()%1e6, time.Now().Format(time.RFC1123Z))
}

// sanitize keeps a client-supplied name safe inside a header field.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r > 0x20 && r < 0x7f && r != '(' && r != ')' && r != ';' {
			b.WriteRune(r)
		}
		if b.Len() >= 255 {
			break
		}
	}
	if b.Len() == 0 {
		return "unknown"
	}
	return b.String()
}

// resetTxn abandons the transaction in progress at the next hop.
func (x *session) resetTxn() {
	if x.inTxn && x.next != nil {
		if err := x.next.Reset(); err != nil {
			x.dropNext()
		}
	}
	x.inTxn, x.from, x.mail, x.sent, x.held = false, "", nil, x.sent[:0], false
}

func (x *session) Reset() {
	x.resetTxn()
	x.gs.Reset()
}

func (x *session) Logout() error {
	if x.next != nil {
		x.resetTxn()
		if x.next != nil {
			x.s.keepNext(x.next)
			x.next = nil
		}
	}
	return nil
}

// limitWriter writes into b up to max bytes and then one more, so that
// "too large" shows, and discards the rest.
type limitWriter struct {
	b   *bytes.Buffer
	max int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if room := l.max + 1 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// crashPoint kills the process with SIGKILL when STRAY_TEST_CRASH_AT names
// this point (as the milter's): the crash tests die at an exact moment.
func crashPoint(name string) {
	if v := os.Getenv("STRAY_TEST_CRASH_AT"); v != "" && v == name {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}

// hostname is the default name of the relay.
func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}
