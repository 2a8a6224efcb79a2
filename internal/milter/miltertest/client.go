// Package miltertest is an MTA-side milter client for tests and load
// generators: it negotiates like Postfix and sends MAIL, RCPT, DATA and end
// of message, returning the milter's replies.
package miltertest

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"time"

	"github.com/stray-mail/stray/internal/milter"
)

// Client is one milter connection, as one Postfix smtpd process holds.
type Client struct {
	nc net.Conn
	r  *bufio.Reader
}

// Dial connects and negotiates protocol version 6, offering every action and
// step as Postfix 3.7 does.
func Dial(addr string, timeout time.Duration) (*Client, error) {
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	c := &Client{nc: nc, r: bufio.NewReader(nc)}
	var o [12]byte
	binary.BigEndian.PutUint32(o[0:], 6)
	binary.BigEndian.PutUint32(o[4:], 0x1ff)
	binary.BigEndian.PutUint32(o[8:], 0x1fffff)
	if _, err := c.roundTrip('O', o[:]); err != nil {
		nc.Close()
		return nil, fmt.Errorf("negotiation: %w", err)
	}
	return c, nil
}

// Close closes the connection.
func (c *Client) Close() error {
	milter.WritePacket(c.nc, 'Q', nil)
	return c.nc.Close()
}

func (c *Client) roundTrip(code byte, data []byte) (milter.Packet, error) {
	c.nc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := milter.WritePacket(c.nc, code, data); err != nil {
		return milter.Packet{}, err
	}
	return milter.ReadPacket(c.r)
}

func nul(s string) []byte { return append([]byte(s), 0) }

// Mail sends the queue id macro and MAIL FROM.
func (c *Client) Mail(from, queueID string) error {
	if err := milter.WritePacket(c.nc, 'D', append([]byte{'M'}, append(nul("i"), nul(queueID)...)...)); err != nil {
		return err
	}
	// Negotiated as Postfix does: the milter does not answer MAIL.
	return milter.WritePacket(c.nc, 'M', nul("<"+from+">"))
}

// Rcpt sends RCPT TO and returns the reply code ('c' continue, 'y' reply
// with text) and text.
func (c *Client) Rcpt(to string) (byte, string, error) {
	p, err := c.roundTrip('R', nul("<"+to+">"))
	return p.Code, string(p.Data), err
}

// Data sends DATA and returns the reply code ('a': accepted, content not
// needed; 'c': the milter wants the end of message).
func (c *Client) Data() (byte, error) {
	p, err := c.roundTrip('T', nil)
	return p.Code, err
}

// EOM sends end of message and returns every reply up to the final one.
func (c *Client) EOM() ([]milter.Packet, error) {
	c.nc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := milter.WritePacket(c.nc, 'E', nil); err != nil {
		return nil, err
	}
	var out []milter.Packet
	for {
		p, err := milter.ReadPacket(c.r)
		if err != nil {
			return out, err
		}
		out = append(out, p)
		switch p.Code {
		case 'a', 'c', 't', 'r', 'd', 'y':
			return out, nil
		}
	}
}
