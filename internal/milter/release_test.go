package milter

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/gate/gatetest"
	"github.com/stray-mail/stray/internal/hold"
	"github.com/stray-mail/stray/internal/policy"
	"github.com/stray-mail/stray/internal/store"
)

// releasing holds a message to joe@gmial.com and claims its release to
// joe@gmail.com (a fix), as Release does before re-injecting; it returns
// the id and the release header the re-injected copy carries.
func releasing(t *testing.T, h *hold.Holder, st store.Store) (string, string) {
	t.Helper()
	ctx := context.Background()
	held, err := h.HoldMessage(ctx, hold.Request{QueueID: "Q1", Sender: "alice@example.org",
		Held: []store.Recipient{{Address: "joe@gmial.com", Verdict: "hold", Intended: "gmail.com", Suggestion: "joe@gmail.com"}},
		Raw:  []byte("To: joe@gmial.com\r\nSubject: draft\r\n\r\nhi\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.ClaimRelease(ctx, held.ID, store.Release{Action: store.ReleaseFixed, To: []string{"joe@gmail.com"}}, store.Event{Actor: "sender"}); err != nil {
		t.Fatal(err)
	}
	return held.ID, h.Signer().ReleaseHeader(held.ID, []string{"joe@gmail.com"}, time.Now().Add(time.Hour))
}

// endPackets sends end of message and returns every reply up to the final
// one (continue, accept, discard or tempfail).
func endPackets(c *testClient) []Packet {
	c.t.Helper()
	c.send(cmdEOM, nil)
	var out []Packet
	for {
		p := c.recv()
		out = append(out, p)
		switch p.Code {
		case respContinue, respAccept, respTempfail, respDiscard:
			return out
		}
	}
}

// The copy of a fixed message re-injected to joe@gmail.com has only clean
// recipients; its ENVID makes the milter read its headers (other clean mail
// is still accepted at DATA). The milter removes the release header,
// accepts, and records the message released; a second copy of it (a retry
// after a crash) is discarded: delivered once.
func TestAReinjectedCopyLosesItsHeaderIsRecordedAndASecondCopyIsDropped(t *testing.T) {
	t.Parallel()
	st, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	signer, err := hold.NewSigner(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	h := hold.New(hold.Config{Node: "n1"}, st, signer, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	id, header := releasing(t, h, st)
	s := &Server{Sessions: GateSessions(gatetest.New(t, detect.Knowledge{}, policy.Config{})), Holder: h, IdleTimeout: 5 * time.Second}
	addr := gatetest.Serve(t, s)

	c := dial(t, addr)
	if o := c.negotiate(); o.actions&actChgHeaders == 0 {
		t.Fatalf("actions %#x lack SMFIF_CHGHDRS with hold on", o.actions)
	}
	// Clean mail without the ENVID: accepted at DATA as ever.
	c.mail("bob@example.org", "Q2")
	c.rcpt("carol@gmail.com")
	if code := c.data(); code != respAccept {
		t.Fatalf("clean mail at DATA: %q, want accept", code)
	}

	for copyNo := 1; copyNo <= 2; copyNo++ {
		c.send(cmdMacro, append([]byte{cmdMail}, nul("{i}", "R1")...))
		c.send(cmdMail, nul("<alice@example.org>", "ENVID="+hold.ReleaseEnvelopeID(id)))
		if code, _ := c.rcpt("joe@gmail.com"); code != respContinue {
			t.Fatalf("copy %d: rcpt %q", copyNo, code)
		}
		if code := c.data(); code != respContinue {
			t.Fatalf("copy %d at DATA: %q, want continue (the headers matter)", copyNo, code)
		}
		c.send(cmdHeader, nul("X-Stray-Release", header))
		c.send(cmdHeader, nul("To", "joe@gmail.com"))
		c.send(cmdEOH, nil)
		c.send(cmdBody, []byte("hi\r\n"))
		ps := endPackets(c)
		last := ps[len(ps)-1].Code
		if copyNo == 2 {
			if last != respDiscard {
				t.Fatalf("second copy: %q, want discard", last)
			}
			break
		}
		if last != respContinue || len(ps) != 2 || ps[0].Code != respChgHeader {
			t.Fatalf("first copy: %+v, want a header change then continue", ps)
		}
		d := ps[0].Data
		if binary.BigEndian.Uint32(d) != 1 || !bytes.Equal(d[4:], nul("X-Stray-Release", "")) {
			t.Errorf("header change %q, want the release header removed", d)
		}
		// Recorded just after the answer.
		deadline := time.Now().Add(5 * time.Second)
		for {
			m, err := st.Get(context.Background(), id)
			if err == nil && m.State == store.StateReleased {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("not recorded released: %+v %v", m, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
