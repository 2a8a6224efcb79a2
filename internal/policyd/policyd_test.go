package policyd

import (
	"bufio"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/gate/gatetest"
	"github.com/stray-mail/stray/internal/policy"
)

func newGate(t testing.TB, k detect.Knowledge, pc policy.Config) *gate.Gate {
	return gatetest.New(t, k, pc)
}

func start(t testing.TB, g *gate.Gate) (*Server, string) {
	t.Helper()
	s := &Server{Gate: g, IdleTimeout: 5 * time.Second}
	return s, gatetest.Serve(t, s)
}

// transcript is a request block and the expected answer's prefix.
type exchange struct{ request, want string }

func readTranscript(t *testing.T, path string) []exchange {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []exchange
	var req strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "=> "):
			out = append(out, exchange{req.String() + "\n", strings.TrimPrefix(line, "=> ")})
			req.Reset()
		case line == "":
		default:
			req.WriteString(line + "\n")
		}
	}
	return out
}

func TestTranscriptsAnswerLikePostfixExpects(t *testing.T) {
	t.Parallel()
	g := newGate(t, detect.Knowledge{Protected: []string{"mil"}, Known: map[string]int{"westlandhigh.school.nz": 1000}},
		policy.Config{Allow: []string{"partner.ml"}})
	_, addr := start(t, g)
	files, _ := filepath.Glob("testdata/*.txt")
	if len(files) == 0 {
		t.Fatal("no transcripts")
	}
	for _, f := range files {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(nc)
		for i, ex := range readTranscript(t, f) {
			nc.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(nc, ex.request)
			got, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s #%d: %v", f, i, err)
			}
			if blank, _ := r.ReadString('\n'); blank != "\n" {
				t.Fatalf("%s #%d: answer not ended by a blank line: %q", f, i, blank)
			}
			if !strings.HasPrefix(strings.TrimSuffix(got, "\n"), ex.want) {
				t.Errorf("%s #%d: got %q, want prefix %q", f, i, got, ex.want)
			}
		}
		nc.Close()
	}
}

// playTranscript sends each request of a transcript file on one
// connection and checks each answer.
func playTranscript(t *testing.T, addr, file string) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := bufio.NewReader(nc)
	for i, ex := range readTranscript(t, file) {
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(nc, ex.request)
		got, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%s #%d: %v", file, i, err)
		}
		if blank, _ := r.ReadString('\n'); blank != "\n" {
			t.Fatalf("%s #%d: answer not ended by a blank line: %q", file, i, blank)
		}
		if !strings.HasPrefix(strings.TrimSuffix(got, "\n"), ex.want) {
			t.Errorf("%s #%d: got %q, want prefix %q", file, i, got, ex.want)
		}
	}
}

func TestWarnPrependsTheHeaderOnlyWhenAskedTo(t *testing.T) {
	t.Parallel()
	g := newGate(t, detect.Knowledge{Protected: []string{"mil"}, Known: map[string]int{"westlandhigh.school.nz": 1000}}, policy.Config{})
	e := *g.Engine()
	e.WarnHeader = true
	g.Swap(&e)
	_, addr := start(t, g)
	playTranscript(t, addr, "testdata/warn/header.txt")
}

func TestRecipientsAreCheckedWherePostfixRoutesThemAndUnreadableOnesRefused(t *testing.T) {
	t.Parallel()
	g := newGate(t, detect.Knowledge{Protected: []string{"mil", "example.com"}}, policy.Config{})
	_, addr := start(t, g)
	playTranscript(t, addr, "testdata/trust/routes.txt")
}

func TestScopesApplyToTheSASLLoginNotTheEnvelopeSender(t *testing.T) {
	t.Parallel()
	g := newGate(t, detect.Knowledge{Protected: []string{"mil", "example.com"}}, policy.Config{
		Scopes: []policy.Scope{{Senders: []string{".liaison.army.mil"}, Logins: []string{"liaison"}, Allow: []string{".ml"}}}})
	_, addr := start(t, g)
	playTranscript(t, addr, "testdata/trust/scopes.txt")
}

func TestMalformedAndOversizedRequestsCloseTheConnection(t *testing.T) {
	t.Parallel()
	_, addr := start(t, newGate(t, detect.Knowledge{}, policy.Config{}))
	for name, junk := range map[string]string{
		"no equals":      "request smtpd_access_policy\n\n",
		"empty name":     "=x\n\n",
		"overlong line":  "recipient=" + strings.Repeat("a", MaxLine+10) + "\n\n",
		"too many attrs": strings.Repeat("a=b\n", MaxAttributes+1) + "\n",
		"binary":         "\x00\x01\x02\xff\n\n",
	} {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(3 * time.Second))
		io.WriteString(nc, junk)
		b, err := io.ReadAll(nc)
		if err != nil {
			t.Errorf("%s: %v (connection not closed)", name, err)
		}
		if len(b) != 0 {
			t.Errorf("%s: answered %q", name, b)
		}
		nc.Close()
	}
	// Still serving.
	nc, _ := net.Dial("tcp", addr)
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(3 * time.Second))
	io.WriteString(nc, "request=smtpd_access_policy\nprotocol_state=RCPT\nsender=a@b.org\nrecipient=c@gmail.com\n\n")
	if got, _ := bufio.NewReader(nc).ReadString('\n'); got != "action=DUNNO\n" {
		t.Errorf("after junk: %q", got)
	}
}

func FuzzReadRequest(f *testing.F) {
	f.Add("request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient=b@army.ml\n\n")
	f.Add("\n\nx=y\n")
	f.Add("a=b=c\n\nd=e\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		r := bufio.NewReader(strings.NewReader(s))
		for i := 0; i < 50; i++ {
			req, err := ReadRequest(r)
			if err != nil {
				return
			}
			if len(req) == 0 || len(req) > MaxAttributes {
				t.Fatalf("request of %d attributes", len(req))
			}
			for k := range req {
				if k == "" || strings.Contains(k, "\n") {
					t.Fatalf("bad name %q", k)
				}
			}
		}
	})
}
