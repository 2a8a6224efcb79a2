package postfixtest

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"time"
)

// Reply is an SMTP reply: its code and full text.
type Reply struct {
	Code int
	Text string
}

// Client is a minimal SMTP client that reports every reply, so tests can
// check per-recipient answers (net/smtp stops at the first error).
type Client struct {
	nc net.Conn
	r  *bufio.Reader
}

// Dial connects and reads the greeting.
func Dial(addr string) (*Client, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &Client{nc: nc, r: bufio.NewReader(nc)}
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	if r, err := c.read(); err != nil || r.Code != 220 {
		nc.Close()
		return nil, fmt.Errorf("greeting %v: %v", r, err)
	}
	return c, nil
}

func (c *Client) read() (Reply, error) {
	var r Reply
	var text []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return r, err
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 3 {
			return r, fmt.Errorf("short reply %q", line)
		}
		fmt.Sscan(line[:3], &r.Code)
		text = append(text, line)
		if len(line) == 3 || line[3] == ' ' {
			r.Text = strings.Join(text, "\n")
			return r, nil
		}
	}
}

// Cmd sends one command and reads its reply.
func (c *Client) Cmd(format string, args ...any) (Reply, error) {
	if _, err := fmt.Fprintf(c.nc, format+"\r\n", args...); err != nil {
		return Reply{}, err
	}
	return c.read()
}

// Pipeline sends several commands in one write and reads all replies.
func (c *Client) Pipeline(cmds ...string) ([]Reply, error) {
	if _, err := c.nc.Write([]byte(strings.Join(cmds, "\r\n") + "\r\n")); err != nil {
		return nil, err
	}
	out := make([]Reply, 0, len(cmds))
	for range cmds {
		r, err := c.read()
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Data sends DATA, the message (dot-stuffed) and the final dot; it returns
// the reply to the final dot (or to DATA when DATA is refused).
func (c *Client) Data(msg string) (Reply, error) {
	r, err := c.Cmd("DATA")
	if err != nil || r.Code != 354 {
		return r, err
	}
	var b strings.Builder
	for _, line := range strings.Split(strings.ReplaceAll(msg, "\r\n", "\n"), "\n") {
		if strings.HasPrefix(line, ".") {
			b.WriteString(".")
		}
		b.WriteString(line + "\r\n")
	}
	b.WriteString(".\r\n")
	if _, err := c.nc.Write([]byte(b.String())); err != nil {
		return Reply{}, err
	}
	return c.read()
}

// Close sends QUIT and closes.
func (c *Client) Close() {
	c.Cmd("QUIT")
	c.nc.Close()
}

// Send is one whole transaction: EHLO, MAIL, each RCPT, DATA (when any
// recipient was accepted). It returns each RCPT's reply and the reply to the
// end of data (Code 0 when DATA was not reached).
func Send(addr, from string, to []string, msg string) (rcpt []Reply, data Reply, err error) {
	c, err := Dial(addr)
	if err != nil {
		return nil, Reply{}, err
	}
	defer c.Close()
	if r, err := c.Cmd("EHLO client.localdomain"); err != nil || r.Code != 250 {
		return nil, r, fmt.Errorf("EHLO: %v %v", r, err)
	}
	mailArgs := ""
	if needsUTF8(from, to) {
		mailArgs = " SMTPUTF8"
	}
	if r, err := c.Cmd("MAIL FROM:<%s>%s", from, mailArgs); err != nil || r.Code != 250 {
		return nil, r, fmt.Errorf("MAIL: %v %v", r, err)
	}
	ok := false
	for _, t := range to {
		r, err := c.Cmd("RCPT TO:<%s>", t)
		if err != nil {
			return rcpt, Reply{}, err
		}
		rcpt = append(rcpt, r)
		ok = ok || r.Code/100 == 2
	}
	if !ok {
		return rcpt, Reply{}, nil
	}
	data, err = c.Data(msg)
	return rcpt, data, err
}

func needsUTF8(from string, to []string) bool {
	for _, s := range append([]string{from}, to...) {
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 {
				return true
			}
		}
	}
	return false
}
