package milter

import (
	"testing"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/policy"
)

// BenchmarkMessagePerConnection is Postfix's pattern for one message per
// SMTP session: connect, negotiate, MAIL, two RCPTs, DATA, quit.
func BenchmarkMessagePerConnection(b *testing.B) {
	_, addr := startServer(b, newGate(b, detect.Knowledge{Protected: []string{"mil"}}, policy.Config{}))
	b.ReportAllocs()
	for b.Loop() {
		c := dial(b, addr)
		c.negotiate()
		c.mail("a@army.mil", "Q1")
		c.rcpt("c@army.mil")
		c.rcpt("d@army.ml")
		c.data()
		c.send(cmdQuit, nil)
		c.nc.Close()
	}
}

// BenchmarkMessageOnOpenConnection: the same message on a connection kept
// open (a busy SMTP session, or -d in smtp-source).
func BenchmarkMessageOnOpenConnection(b *testing.B) {
	_, addr := startServer(b, newGate(b, detect.Knowledge{Protected: []string{"mil"}}, policy.Config{}))
	c := dial(b, addr)
	c.negotiate()
	b.ReportAllocs()
	for b.Loop() {
		c.mail("a@army.mil", "Q1")
		c.rcpt("c@army.mil")
		c.rcpt("d@army.ml")
		c.data()
	}
}
