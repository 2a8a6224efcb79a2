package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The crash test re-executes the test binary as a child (TestMain sees
// envCrashChild) that holds messages into a SQLite file as fast as it can,
// printing "held ID" after each Hold returns and "releasing ID" after each
// Transition returns. The parent SIGKILLs it mid-stream and reopens the
// file: every acknowledged write must be there, whole, and no write may be
// there in part.
const (
	envCrashChild = "STRAY_STORE_CRASH_CHILD"
	envCrashRound = "STRAY_STORE_CRASH_ROUND"
)

// crashContent is the content of the crash child's message id: text and
// noise, between 1 KiB and 257 KiB, so that writes span many pages and the
// kill can land inside one.
func crashContent(id string) []byte {
	h := sha256.Sum256([]byte(id))
	n := 1<<10 + int(binary.BigEndian.Uint32(h[:4])%(256<<10))
	b := compressible(n / 2)
	noise := make([]byte, n-len(b))
	mrand.NewChaCha8(h).Read(noise)
	return append(b, noise...)
}

func crashChild(path, round string) int {
	ctx := context.Background()
	s, err := Open(ctx, "sqlite:"+path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	// Never ends by itself before the parent kills it, but never outlives
	// a parent that forgot.
	for i, deadline := 0, time.Now().Add(time.Minute); time.Now().Before(deadline); i++ {
		id := fmt.Sprintf("r%sm%04d", round, i)
		m := &Message{
			ID: id, Sender: "crash@example.com", Node: "crash",
			Recipients: []Recipient{{Address: "x@gmial.com", Verdict: "hold"}},
			Raw:        crashContent(id), ExpiresAt: time.Now().Add(time.Hour),
		}
		if err := s.Hold(ctx, m, Event{Actor: "node:crash"}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 4
		}
		fmt.Fprintf(os.Stdout, "held %s\n", id)
		if i%2 == 1 {
			if err := s.Transition(ctx, id, StateHeld, StateReleasing, Event{Actor: "node:crash"}); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 4
			}
			fmt.Fprintf(os.Stdout, "releasing %s\n", id)
		}
	}
	return 5
}

func TestSQLiteKilledWhileHoldingKeepsEveryAcknowledgedMessageWhole(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	acked := map[string]State{} // what the child was told is stored
	for round, killAfter := range []int{1, 2, 3, 5, 8} {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), envCrashChild+"="+path, envCrashRound+"="+strconv.Itoa(round))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		held := 0
		read := func() {
			kind, id, _ := strings.Cut(sc.Text(), " ")
			switch kind {
			case "held":
				acked[id] = StateHeld
				held++
			case "releasing":
				acked[id] = StateReleasing
			}
		}
		for held < killAfter && sc.Scan() {
			read()
		}
		// Land the kill somewhere in the next write (compressing, writing
		// the log, syncing).
		time.Sleep(time.Duration(mrand.IntN(30_000)) * time.Microsecond)
		if err := cmd.Process.Kill(); err != nil { // SIGKILL
			t.Fatal(err)
		}
		for sc.Scan() { // acknowledged before the kill, read after it
			read()
		}
		cmd.Wait()
		if held < killAfter {
			t.Fatalf("round %d: child died after %d holds: %s", round, held, stderr.String())
		}
		tornIDs := checkTornWAL(t, path, round)
		ids := checkAfterCrash(t, path, acked)
		if !slices.Equal(tornIDs, ids) {
			t.Errorf("round %d: a torn write changed the committed state: %v, want %v", round, tornIDs, ids)
		}
	}
}

func checkAfterCrash(t *testing.T, path string, acked map[string]State) (ids []string) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	for id, st := range acked {
		m, err := s.Get(ctx, id)
		if err != nil {
			t.Fatalf("acknowledged %s lost: %v", id, err)
		}
		if st == StateReleasing && m.State != StateReleasing {
			t.Errorf("%s: acknowledged releasing, found %s", id, m.State)
		}
	}
	// Everything stored, acknowledged or not (the write in flight may have
	// committed before the kill), is whole, with its events.
	all := checkWhole(t, s)
	if len(all) < len(acked) || len(all) > len(acked)+1 {
		t.Errorf("%d messages stored, %d acknowledged", len(all), len(acked))
	}
	for _, m := range all { // the next round expects what this one found
		if _, ok := acked[m.ID]; !ok {
			acked[m.ID] = m.State
		}
		ids = append(ids, m.ID)
	}
	return ids
}

// checkWhole checks that every message in s is whole and has exactly the
// events of its state, and returns them.
func checkWhole(t *testing.T, s Store) []Message {
	t.Helper()
	ctx := context.Background()
	if rows := sqlOf(t, s, "PRAGMA integrity_check"); len(rows) != 1 || rows[0][0] != "ok" {
		t.Fatalf("integrity_check: %v", rows)
	}
	all, err := s.List(ctx, Filter{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for _, lm := range all {
		m, err := s.Get(ctx, lm.ID)
		if err != nil {
			t.Fatalf("%s: %v", lm.ID, err)
		}
		if !bytes.Equal(m.Raw, crashContent(m.ID)) {
			t.Fatalf("%s: content differs: %d bytes, want %d", m.ID, len(m.Raw), len(crashContent(m.ID)))
		}
		want := []string{"held"}
		if m.State == StateReleasing {
			want = []string{"releasing", "held"}
		}
		if k := kinds(eventsOf(t, s, m.ID)); strings.Join(k, ",") != strings.Join(want, ",") {
			t.Errorf("%s in state %s has events %v", m.ID, m.State, k)
		}
	}
	if n := sqlInt(t, s, "SELECT count(*) FROM events WHERE message_id NOT IN (SELECT id FROM messages)"); n != 0 {
		t.Errorf("%d events about messages that were not stored", n)
	}
	return all
}

// checkTornWAL copies the killed child's database and tears the write in
// flight, as a power cut would: it cuts the write-ahead log at a random
// point after its last commit (what an fsync had not yet covered), or, when
// the kill fell between writes, appends a torn commit frame. The copy
// must open to exactly the committed state; its message ids are returned.
func checkTornWAL(t *testing.T, path string, round int) []string {
	t.Helper()
	wal, err := os.ReadFile(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	db, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	committed := walCommittedEnd(wal)
	var torn []byte
	if committed < len(wal) {
		torn = wal[:committed+mrand.IntN(len(wal)-committed)]
	} else if frame := walFrameSize(wal); frame > 0 && len(wal) >= 32+frame {
		// A commit frame of the next write whose header reached the disk
		// and whose page (page 1, the database header) did not: salt
		// right, checksum wrong.
		f := slices.Clone(wal[len(wal)-frame:])
		binary.BigEndian.PutUint32(f[0:4], 1)
		binary.BigEndian.PutUint32(f[4:8], binary.BigEndian.Uint32(f[4:8])+1)
		rand.Read(f[24:])
		if mrand.IntN(2) == 0 {
			f = f[:24+mrand.IntN(frame-24)]
		}
		torn = append(wal[:len(wal):len(wal)], f...)
	} else {
		t.Fatalf("write-ahead log of %d bytes has no frame", len(wal))
	}
	file := filepath.Join(t.TempDir(), fmt.Sprintf("torn%d.db", round))
	if err := os.WriteFile(file, db, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file+"-wal", torn, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), "sqlite:"+file)
	if err != nil {
		t.Fatalf("open with a torn log: %v", err)
	}
	defer s.Close()
	var ids []string
	for _, m := range checkWhole(t, s) {
		ids = append(ids, m.ID)
	}
	t.Logf("round %d: log of %d bytes, committed to %d, torn to %d: %d whole messages", round, len(wal), committed, len(torn), len(ids))
	return ids
}

func walFrameSize(wal []byte) int {
	if len(wal) < 32 {
		return 0
	}
	pageSize := int(binary.BigEndian.Uint32(wal[8:12]))
	if pageSize == 1 {
		pageSize = 65536
	}
	return 24 + pageSize
}

// walCommittedEnd returns the offset just past the last commit frame of the
// log's current generation (frames whose salt matches the header's).
func walCommittedEnd(wal []byte) int {
	const hdr, frameHdr = 32, 24
	if len(wal) < hdr {
		return len(wal)
	}
	pageSize := walFrameSize(wal) - frameHdr
	salt := wal[16:24]
	end := hdr
	for off := hdr; off+frameHdr+pageSize <= len(wal); off += frameHdr + pageSize {
		f := wal[off : off+frameHdr]
		if !bytes.Equal(f[8:16], salt) {
			break // an earlier generation's leftovers
		}
		if binary.BigEndian.Uint32(f[4:8]) != 0 { // database size: a commit frame
			end = off + frameHdr + pageSize
		}
	}
	return end
}
