package scan

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/smtp"
	"net/textproto"
	"strconv"
	"time"
)

// SMTPProber asks a lookalike's mail server whether it would take mail for
// a random recipient: EHLO, MAIL FROM:<>, RCPT TO, then RSET and QUIT. It
// never sends DATA, so no message is ever delivered. A server that accepts
// a random recipient is a catch-all: every mistyped address reaches it.
type SMTPProber struct {
	// Port is the SMTP port (default 25).
	Port int
	// Timeout bounds one whole conversation (default 10s).
	Timeout time.Duration
	// Helo is the name given in EHLO (default "localhost").
	Helo string
	// Dial connects; default a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// SMTPResult is a mail server's answer to a random recipient.
type SMTPResult struct {
	// Host is the MX host (or the domain itself) and Addr the address
	// that answered.
	Host string `json:"host"`
	Addr string `json:"addr"`
	// Accepted: RCPT TO of a random local part got a 2xx reply.
	Accepted bool `json:"accepted"`
	// Reply is the server's reply to RCPT TO ("250 2.1.5 Ok").
	Reply string `json:"reply,omitempty"`
	// Error says why the conversation did not get that far.
	Error string `json:"error,omitempty"`
}

func (s *Scanner) probeSMTP(ctx context.Context, r *Result) *SMTPResult {
	host, addrs := s.mailHosts(ctx, r)
	if len(addrs) == 0 {
		return &SMTPResult{Host: host, Error: "no address to connect to"}
	}
	var last *SMTPResult
	for _, a := range addrs[:min(len(addrs), 2)] {
		res := s.SMTP.Probe(ctx, r.Domain, host, a)
		if res.Error == "" {
			return res
		}
		last = res
	}
	return last
}

// Probe asks the server at addr (an IP address), known as host, whether it
// takes mail for a random recipient at domain.
func (p *SMTPProber) Probe(ctx context.Context, domain, host, addr string) *SMTPResult {
	res := &SMTPResult{Host: host, Addr: addr}
	port, timeout, helo := p.Port, p.Timeout, p.Helo
	if port == 0 {
		port = 25
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if helo == "" {
		helo = "localhost"
	}
	dial := p.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := dial(ctx, "tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer c.Close()
	if err := c.Hello(helo); err != nil {
		res.Error = err.Error()
		return res
	}
	if err := c.Mail(""); err != nil {
		res.Error = err.Error()
		return res
	}
	err = c.Rcpt(randomLocal() + "@" + domain)
	var te *textproto.Error
	switch {
	case err == nil:
		res.Accepted, res.Reply = true, "2xx"
	case errors.As(err, &te):
		res.Reply = strconv.Itoa(te.Code) + " " + te.Msg
	default:
		res.Error = err.Error()
		return res
	}
	c.Reset()
	c.Quit()
	return res
}

// randomLocal is a local part no one has: "stray-probe-" and 12 random hex
// digits.
func randomLocal() string {
	var b [6]byte
	rand.Read(b[:])
	return "stray-probe-" + hex.EncodeToString(b[:])
}
