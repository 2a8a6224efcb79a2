package milter

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/gate/gatetest"
	"github.com/stray-mail/stray/internal/hold"
	"github.com/stray-mail/stray/internal/policy"
	"github.com/stray-mail/stray/internal/store"
)

// Issue 12: the sender's notification of a held message ran in a
// goroutine nothing tracked (milter/hold.go), polling with time.Sleep:
// Shutdown returned while it was still talking to the mail server. Now
// Shutdown waits for it and, when its own context ends, makes it give up
// (the hold sweep sends it later).
func TestShutdownWaitsForTheHeldMessagesNotification(t *testing.T) {
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
	var sending, done atomic.Bool
	entered := make(chan struct{})
	// A mail server that never answers: the notification waits until its
	// context ends.
	mailer := func(ctx context.Context, _, _ string, _ []string, _ []byte) error {
		if sending.CompareAndSwap(false, true) {
			close(entered)
		}
		<-ctx.Done()
		done.Store(true)
		return ctx.Err()
	}
	h := hold.New(hold.Config{Node: "n1", BaseURL: "http://127.0.0.1:1"}, st, signer, slog.New(slog.NewTextHandler(io.Discard, nil)), mailer)
	s := &Server{Sessions: GateSessions(gatetest.New(t, detect.Knowledge{}, policy.Config{})), Holder: h, IdleTimeout: 5 * time.Second}
	addr := gatetest.Serve(t, s)

	c := dial(t, addr)
	c.negotiate()
	c.mail("alice@example.org", "Q1")
	if code, _ := c.rcpt("joe@gmial.com"); code != respContinue {
		t.Fatalf("rcpt %q, want continue (held)", code)
	}
	if code := c.data(); code != respContinue {
		t.Fatalf("data %q, want continue", code)
	}
	c.send(cmdHeader, nul("To", "joe@gmial.com"))
	c.send(cmdEOH, nil)
	c.send(cmdBody, []byte("hi\r\n"))
	if ps := endPackets(c); ps[len(ps)-1].Code != respDiscard {
		t.Fatalf("end of message: %+v, want discard (held in the store)", ps)
	}
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no notification sent")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	s.Shutdown(ctx)
	if !done.Load() {
		t.Error("Shutdown returned while the notification was still being sent")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
}
