package cli

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/postfixtest"
	"github.com/stray-mail/stray/internal/store"
)

// heldMessage stores a held message with the given id, as the daemon would.
func heldMessage(t *testing.T, st store.Store, id string) {
	t.Helper()
	now := time.Now()
	m := &store.Message{ID: id, QueueID: "Q" + id, Sender: "alice@example.com", State: store.StateHeld, Node: "n1",
		Recipients: []store.Recipient{{Address: "bob@gmial.com", Verdict: "hold", Intended: "gmail.com", Suggestion: "bob@gmail.com", Score: 0.9}},
		Raw:        []byte("Subject: hi\r\n\r\nbody\r\n"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := st.Hold(context.Background(), m, store.Event{Actor: "node:n1"}); err != nil {
		t.Fatal(err)
	}
}

func TestQuarantineTakesAUniqueIDPrefixAndSaysWhatItDid(t *testing.T) {
	cfg, dsn := storeConfig(t)
	st := openTestStore(t, dsn)
	heldMessage(t, st, "3f2a9c01")
	heldMessage(t, st, "3f2a9c02")
	heldMessage(t, st, "7b00e1")

	if code, out, errOut := run(t, "", "quarantine", "show", "--config", cfg, "7b0"); code != 0 || !strings.Contains(out, "id:       7b00e1") {
		t.Fatalf("show by prefix: %d %q %q", code, out, errOut)
	}
	code, _, errOut := run(t, "", "quarantine", "discard", "--config", cfg, "3f2a9c")
	if code != ExitUsage || !strings.Contains(errOut, "more than one message") {
		t.Fatalf("ambiguous prefix: %d %q", code, errOut)
	}
	code, out, errOut := run(t, "", "quarantine", "discard", "--config", cfg, "3f2a9c02")
	if code != 0 || out != "3f2a9c02: discarded\n" {
		t.Fatalf("discard: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := run(t, "", "quarantine", "discard", "--config", cfg, "ffff"); code != ExitFlagged || !strings.Contains(errOut, "no such message") {
		t.Fatalf("unknown id: %d %q", code, errOut)
	}
	m, err := st.Get(context.Background(), "3f2a9c02")
	if err != nil || m.State != store.StateDiscarded {
		t.Fatalf("3f2a9c02: %v %v", m, err)
	}
	evs, _ := st.Events(context.Background(), store.EventFilter{MessageID: "3f2a9c02"})
	if len(evs) == 0 || evs[0].Actor != "admin:"+loginName() || strings.Contains(evs[0].Actor, "unknown") {
		t.Fatalf("events of the discard: %+v, want the actor admin:%s", evs, loginName())
	}
}

func TestReleaseByPrefixDeliversAndSaysReleased(t *testing.T) {
	sink := postfixtest.StartSink(t)
	dir := t.TempDir()
	dsn := "sqlite:" + filepath.Join(dir, "s.db")
	cfg := filepath.Join(dir, "stray.yaml")
	if err := os.WriteFile(cfg, []byte("store: "+dsn+"\nhold:\n  reinject_smtp: "+sink.Addr+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	heldMessage(t, openTestStore(t, dsn), "aa11")
	code, out, errOut := run(t, "", "quarantine", "release", "--fix", "--config", cfg, "aa")
	if code != 0 || out != "aa11: released\n" {
		t.Fatalf("release: %d %q %q", code, out, errOut)
	}
	if got := sink.WaitRecipients(1, 5*time.Second); len(got) != 1 || got[0] != "bob@gmail.com" {
		t.Fatalf("delivered to %v, want bob@gmail.com once", got)
	}
}

func TestQuarantineRefusesToCreateAStore(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "stray.yaml")
	db := filepath.Join(dir, "nothing-here.db")
	if err := os.WriteFile(cfg, []byte("store: sqlite:"+db+"\nhold:\n  secret_file: "+filepath.Join(dir, "k")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "", "quarantine", "list", "--config", cfg)
	if code != ExitUsage || out != "" || !strings.Contains(errOut, "no store there yet") || !strings.Contains(errOut, db) {
		t.Fatalf("list without a store: %d %q %q", code, out, errOut)
	}
	for _, p := range []string{db, filepath.Join(dir, "k")} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the quarantine created %s", p)
		}
	}
}
