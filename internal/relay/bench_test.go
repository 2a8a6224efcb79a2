package relay

import (
	"testing"

	"github.com/stray-mail/stray/internal/postfixtest"
)

// BenchmarkMessagePerSession relays one 2 kB message per client session
// (connect, EHLO, MAIL, RCPT, DATA, QUIT) to an in-process next hop, DSN
// layer on as by default: the relay's per-message cost with the client and
// the next hop in the same process. Its allocations (-benchmem, or
// -memprofile with the relay's frames) are what the garbage collector
// pays for per message.
func BenchmarkMessagePerSession(b *testing.B) {
	e := newEnv(b, opts{modify: func(s *Server) { s.DSN = true }})
	msg := perfMessage()
	b.ReportAllocs()
	for b.Loop() {
		c, err := postfixtest.Dial(e.relay)
		if err != nil {
			b.Fatal(err)
		}
		if r, err := c.Cmd("EHLO client.test"); err != nil || r.Code != 250 {
			b.Fatalf("EHLO: %v %v", r, err)
		}
		if rs, err := c.Pipeline("MAIL FROM:<a@army.mil>", "RCPT TO:<c@army.mil>"); err != nil || rs[1].Code != 250 {
			b.Fatalf("MAIL, RCPT: %v %v", rs, err)
		}
		if d, err := c.Data(msg); err != nil || d.Code != 250 {
			b.Fatalf("DATA: %v %v", d, err)
		}
		c.Cmd("QUIT")
		c.Close()
	}
}

func perfMessage() string {
	s := "From: a@army.mil\r\nTo: c@army.mil\r\nSubject: probe\r\n\r\n"
	for range 26 {
		s += "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n"
	}
	return s
}
