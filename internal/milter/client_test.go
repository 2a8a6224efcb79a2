package milter

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/gate/gatetest"
	"github.com/stray-mail/stray/internal/policy"
)

// testClient speaks the MTA side of the protocol, as Postfix does.
type testClient struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
}

func newGate(t testing.TB, k detect.Knowledge, pc policy.Config, opts ...gate.Option) *gate.Gate {
	return gatetest.New(t, k, pc, opts...)
}

// startServer serves the milter on a loopback port.
func startServer(t testing.TB, g *gate.Gate) (*Server, string) {
	t.Helper()
	s := &Server{Sessions: GateSessions(g), IdleTimeout: 5 * time.Second}
	return s, gatetest.Serve(t, s)
}

func dial(t testing.TB, addr string) *testClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { nc.Close() })
	return &testClient{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *testClient) send(code byte, data []byte) {
	c.t.Helper()
	if err := WritePacket(c.nc, code, data); err != nil {
		c.t.Fatal(err)
	}
}

func (c *testClient) recv() Packet {
	c.t.Helper()
	p, err := ReadPacket(c.r)
	if err != nil {
		c.t.Fatalf("reading reply: %v", err)
	}
	return p
}

// negotiate offers what Postfix 3.7 offers and returns the milter's answer.
func (c *testClient) negotiate() optneg {
	c.t.Helper()
	c.send(cmdOptneg, optneg{version: 6, actions: 0x1ff, protocol: 0x1fffff}.bytes())
	p := c.recv()
	if p.Code != respOptneg {
		c.t.Fatalf("optneg reply %q", p.Code)
	}
	o, err := parseOptneg(p.Data)
	if err != nil {
		c.t.Fatal(err)
	}
	return o
}

func (c *testClient) mail(from, queueID string) {
	c.t.Helper()
	c.send(cmdMacro, append([]byte{cmdMail}, nul("{i}", queueID, "{mail_addr}", from)...))
	c.send(cmdMail, nul("<"+from+">")) // negotiated: no reply to MAIL
}

// rcpt returns the reply code and, for 'y', the SMTP reply text.
func (c *testClient) rcpt(to string) (byte, string) {
	c.t.Helper()
	c.send(cmdRcpt, nul("<"+to+">"))
	p := c.recv()
	return p.Code, strings.TrimSuffix(string(p.Data), "\x00")
}

func (c *testClient) data() byte {
	c.t.Helper()
	c.send(cmdData, nil)
	return c.recv().Code
}

// eom returns every packet up to the final continue/accept.
func (c *testClient) eom() []Packet {
	c.t.Helper()
	c.send(cmdEOM, nil)
	var out []Packet
	for {
		p := c.recv()
		out = append(out, p)
		if p.Code == respContinue || p.Code == respAccept || p.Code == respTempfail {
			return out
		}
	}
}
