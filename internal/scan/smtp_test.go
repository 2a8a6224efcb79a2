package scan

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stray-mail/stray/permute"
)

// smtpSink is a minimal SMTP server on 127.0.0.1 that records the
// commands it gets and accepts RCPT TO only when catchAll is set.
type smtpSink struct {
	ln       net.Listener
	catchAll bool
	mu       sync.Mutex
	commands []string
	wg       sync.WaitGroup
}

func startSMTPSink(t *testing.T, catchAll bool) *smtpSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpSink{ln: ln, catchAll: catchAll}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *smtpSink) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *smtpSink) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	reply := func(l string) { c.Write([]byte(l + "\r\n")) }
	reply("220 sink.test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		s.mu.Lock()
		s.commands = append(s.commands, cmd)
		s.mu.Unlock()
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			reply("250-sink.test")
			reply("250 8BITMIME")
		case strings.HasPrefix(cmd, "MAIL FROM:"), strings.HasPrefix(cmd, "RSET"):
			reply("250 2.0.0 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			if s.catchAll {
				reply("250 2.1.5 ok")
			} else {
				reply("550 5.1.1 no such user")
			}
		case strings.HasPrefix(cmd, "QUIT"):
			reply("221 bye")
			return
		default:
			reply("502 5.5.2 not here")
		}
	}
}

func (s *smtpSink) saw() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

// The probe asks RCPT TO for a random local part and never sends DATA; a
// server that takes it is a catch-all. Loopback only.
func TestSMTPProbeFindsCatchAllsWithoutSendingData(t *testing.T) {
	t.Parallel()
	for _, catchAll := range []bool{true, false} {
		t.Run("catchall="+strconv.FormatBool(catchAll), func(t *testing.T) {
			t.Parallel()
			sink := startSMTPSink(t, catchAll)
			srv := startZone(t, "army.ml. NS ns.loop.example.\narmy.ml. MX 10 mx.loop.example.\nmx.loop.example. A 127.0.0.1\n")
			s := &Scanner{
				Resolver: resolverFor(t, srv, time.Second),
				SMTP:     &SMTPProber{Port: sink.port(), Timeout: 2 * time.Second, Helo: "scan.test"},
			}
			res, err := s.Scan(context.Background(), []Target{{Domain: "army.mil", Candidates: []permute.Candidate{{Domain: "army.ml"}}}})
			if err != nil {
				t.Fatal(err)
			}
			p := res[0].SMTP
			if p == nil || p.Error != "" || p.Accepted != catchAll || p.Host != "mx.loop.example" || p.Addr != "127.0.0.1" {
				t.Fatalf("probe: %+v", p)
			}
			if !catchAll && !strings.HasPrefix(p.Reply, "550") {
				t.Errorf("reply %q, want the 550", p.Reply)
			}
			var rcpt bool
			for _, c := range sink.saw() {
				if strings.HasPrefix(c, "DATA") {
					t.Errorf("DATA sent: %v", sink.saw())
				}
				if strings.HasPrefix(c, "RCPT TO:<STRAY-PROBE-") && strings.HasSuffix(c, "@ARMY.ML>") {
					rcpt = true
				}
			}
			if !rcpt {
				t.Errorf("no RCPT TO of a random local part: %v", sink.saw())
			}
		})
	}
}

func TestSMTPProbeReportsAServerThatIsNotThere(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now
	p := &SMTPProber{Port: port, Timeout: time.Second}
	res := p.Probe(context.Background(), "army.ml", "mx.loop.example", "127.0.0.1")
	if res.Error == "" || res.Accepted {
		t.Errorf("probe of a closed port: %+v", res)
	}
}
