package milter

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/connserver"
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

// postfixConversation is what Postfix 3.7 sends stray's milter for one
// clean message in its own SMTP session (recorded with strace, rebuilt
// here): option negotiation; then, in one write, the connect and HELO
// macros (the events themselves skipped), the MAIL macros and MAIL (no
// reply), the RCPT macros and RCPT; then DATA's macros and DATA; then two
// aborts and quit. Each element is one write, answered before the next
// except the last.
func postfixConversation() [][]byte {
	var o, env, data, end bytes.Buffer
	WritePacket(&o, cmdOptneg, optneg{version: 6, actions: 0x1ff, protocol: 0x1fffff}.bytes())
	WritePacket(&env, cmdMacro, append([]byte{cmdConnect}, nul("j", "mail.example.org", "{daemon_name}", "mail.example.org",
		"{daemon_addr}", "127.0.0.1", "v", "Postfix 3.7.11", "_", "localhost [127.0.0.1]")...))
	WritePacket(&env, cmdMacro, []byte{cmdHelo})
	WritePacket(&env, cmdMacro, []byte{cmdMail})
	WritePacket(&env, cmdMail, nul("<a@army.mil>"))
	WritePacket(&env, cmdMacro, append([]byte{cmdRcpt}, nul("{rcpt_addr}", "c@army.mil")...))
	WritePacket(&env, cmdRcpt, nul("<c@army.mil>"))
	WritePacket(&data, cmdMacro, append([]byte{cmdData}, nul("i", "4ABD989476")...))
	WritePacket(&data, cmdData, nil)
	WritePacket(&end, cmdAbort, nil)
	WritePacket(&end, cmdAbort, nil)
	WritePacket(&end, cmdQuit, nil)
	return [][]byte{o.Bytes(), env.Bytes(), data.Bytes(), end.Bytes()}
}

// BenchmarkCleanMessagePerConnection is the throughput test's case in
// process: Postfix's conversation for one clean message per SMTP
// session, over loopback TCP and a unix socket, the gate logging at info
// (as in production: a clean recipient logs nothing). The client side is
// a few reads and writes; allocs/op is nearly all the server's.
func BenchmarkCleanMessagePerConnection(b *testing.B) {
	for _, network := range []string{"tcp", "unix"} {
		b.Run(network, func(b *testing.B) {
			g := newGate(b, detect.Knowledge{Protected: []string{"mil"}}, policy.Config{})
			s := &Server{Sessions: connLogSessions{g: g, log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
			var l net.Listener
			var err error
			if network == "unix" {
				l, err = connserver.ListenUnix(filepath.Join(b.TempDir(), "m.sock")) // as the daemon listens
			} else {
				l, err = net.Listen("tcp", "127.0.0.1:0")
			}
			if err != nil {
				b.Fatal(err)
			}
			go s.Serve(l)
			b.Cleanup(func() { s.Shutdown(context.Background()) })
			conv := postfixConversation()
			want := []byte{respOptneg, respContinue, respAccept}
			buf := make([]byte, 512)
			b.ReportAllocs()
			for b.Loop() {
				nc, err := net.Dial(network, l.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				for i, w := range conv {
					if _, err := nc.Write(w); err != nil {
						b.Fatal(err)
					}
					if i == len(conv)-1 {
						break
					}
					n, err := nc.Read(buf)
					if err != nil || n < 5 || buf[4] != want[i] {
						b.Fatalf("reply %d: %q %v, want %q", i, buf[:max(n, 0)], err, want[i])
					}
				}
				// Quit: the server closes.
				if n, err := nc.Read(buf); err != io.EOF {
					b.Fatalf("after quit: %q %v", buf[:n], err)
				}
				nc.Close()
			}
		})
	}
}
