package milter

import (
	"bytes"
	"log/slog"
	"regexp"
	"sync"
	"testing"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/gate/gatetest"
	"github.com/stray-mail/stray/internal/policy"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestDecisionLogLinesNameTheMilterConnectionAndItsClient(t *testing.T) {
	t.Parallel()
	var buf lockedBuffer
	g := newGate(t, detect.Knowledge{Protected: []string{"mil"}}, policy.Config{})
	// The connection's logger is the one the gate logs decisions with.
	sessions := connLogSessions{g: g, log: slog.New(slog.NewTextHandler(&buf, nil))}
	s := &Server{Sessions: sessions}
	addr := gatetest.Serve(t, s)
	c := dial(t, addr)
	c.negotiate()
	c.mail("a@army.mil", "Q1")
	if code, _ := c.rcpt("b@army.ml"); code != respReplyCode {
		t.Fatalf("army.ml: %q", code)
	}
	c.rcpt("c@army.mil")
	c.data()
	line := regexp.MustCompile(`(?m)^.*msg=decision.*rcpt=b@army.ml.*$`).FindString(buf.String())
	if !regexp.MustCompile(`^time=\S+ level=INFO msg=decision frontend=milter conn=\d+ client=127\.0\.0\.1:\d+ queue_id=Q1 sender=a@army.mil rcpt=b@army.ml verdict=block `).MatchString(line) {
		t.Errorf("decision line %q\nlog:\n%s", line, buf.String())
	}
	// A clean recipient is logged at debug: not at all here.
	if bytes.Contains([]byte(buf.String()), []byte("rcpt=c@army.mil")) {
		t.Errorf("a clean recipient logged at info:\n%s", buf.String())
	}
}

// connLogSessions hand the gate's sessions the connection's logger, as
// GateSessions does, with the gate logging to log.
type connLogSessions struct {
	g   *gate.Gate
	log *slog.Logger
}

func (s connLogSessions) NewSession(log *slog.Logger) Session { return s.g.NewSession("milter", log) }
func (s connLogSessions) Logger() *slog.Logger                { return s.log }
