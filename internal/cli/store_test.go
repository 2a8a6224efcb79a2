package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/store"
)

// storeConfig writes a config whose store is a new SQLite file in a temp
// directory, and returns the config's path and the store's.
func backupConfig(t *testing.T) (cfg, db string) {
	t.Helper()
	dir := t.TempDir()
	db = filepath.Join(dir, "stray.db")
	cfg = filepath.Join(dir, "stray.yaml")
	if err := os.WriteFile(cfg, []byte("store: sqlite:"+db+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg, db
}

// A backup taken while another connection keeps writing is a consistent,
// valid store: every report in it is whole, their ids have no gaps, and it
// has at least what was written before the backup began.
func TestStoreBackupWhileWritingIsAConsistentStore(t *testing.T) {
	t.Parallel()
	cfg, db := backupConfig(t)
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	add := func(i int) error {
		body := fmt.Sprintf(`{"n":%d,"pad":%q}`, i, strings.Repeat("x", 2000))
		return st.AddReport(ctx, &store.Report{Kind: "scan", Title: fmt.Sprintf("report %d", i), CreatedBy: "test", JSON: []byte(body)})
	}
	const before = 50
	for i := range before {
		if err := add(i); err != nil {
			t.Fatal(err)
		}
	}
	// Writes go on during the backup, bounded in count and time.
	var written atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		deadline := time.Now().Add(10 * time.Second)
		for i := before; i < before+5000 && time.Now().Before(deadline); i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := add(i); err != nil {
				t.Errorf("write during backup: %v", err)
				return
			}
			written.Add(1)
		}
	}()
	for written.Load() < 20 { // the writer is really going
		time.Sleep(5 * time.Millisecond)
	}
	dest := filepath.Join(t.TempDir(), "backup.db")
	code, out, errOut := run(t, "", "store", "backup", "--config", cfg, dest)
	close(stop)
	wg.Wait()
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, dest) {
		t.Errorf("output does not name the backup: %q", out)
	}
	if fi, err := os.Stat(dest); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %v (%v), want 0600", fi.Mode(), err)
	}

	cp, err := store.OpenExisting(ctx, "sqlite:"+dest)
	if err != nil {
		t.Fatalf("opening the backup: %v", err)
	}
	defer cp.Close()
	reps, err := cp.ListReports(ctx, "scan", 100000)
	if err != nil {
		t.Fatal(err)
	}
	total := before + int(written.Load())
	if len(reps) < before || len(reps) > total {
		t.Fatalf("backup has %d reports, want %d..%d", len(reps), before, total)
	}
	ids := map[int64]bool{}
	for _, r := range reps {
		ids[r.ID] = true
	}
	for id := int64(1); id <= int64(len(reps)); id++ {
		if !ids[id] {
			t.Fatalf("backup of %d reports lacks id %d: not one snapshot", len(reps), id)
		}
	}
	last, err := cp.GetReport(ctx, int64(len(reps)))
	if err != nil || !strings.Contains(string(last.JSON), fmt.Sprintf(`"n":%d,`, len(reps)-1)) {
		t.Errorf("last report in the backup: %v %.40q", err, last.JSON)
	}
	t.Logf("backed up %d of %d reports while writing", len(reps), total)
}

func TestStoreBackupRefusesToOverwriteOrToInventAStore(t *testing.T) {
	t.Parallel()
	cfg, db := backupConfig(t)
	st, err := store.Open(context.Background(), "sqlite:"+db)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	existing := filepath.Join(t.TempDir(), "existing.db")
	if err := os.WriteFile(existing, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	emptyExisting := filepath.Join(t.TempDir(), "empty.db")
	if err := os.WriteFile(emptyExisting, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	noStoreCfg, noStoreDB := backupConfig(t)
	pgCfg := filepath.Join(t.TempDir(), "pg.yaml")
	if err := os.WriteFile(pgCfg, []byte("store: postgres://stray@127.0.0.1:5432/test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"an existing file", []string{"store", "backup", "--config", cfg, existing}, "exists"},
		{"an existing empty file", []string{"store", "backup", "--config", cfg, emptyExisting}, "exists"},
		{"no store yet", []string{"store", "backup", "--config", noStoreCfg, filepath.Join(t.TempDir(), "b.db")}, "no store"},
		{"PostgreSQL", []string{"store", "backup", "--config", pgCfg, filepath.Join(t.TempDir(), "b.db")}, "pg_dump"},
		{"no file", []string{"store", "backup", "--config", cfg}, "one FILE"},
		{"no subcommand", []string{"store"}, "backup FILE"},
		{"unknown subcommand", []string{"store", "restore", "x.db"}, "unknown subcommand"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := run(t, "", tc.args...)
			if code != ExitUsage || !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, ExitUsage, tc.wantErr)
			}
		})
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Errorf("existing file overwritten: %q", b)
	}
	if b, err := os.ReadFile(emptyExisting); err != nil || len(b) != 0 {
		t.Errorf("existing empty file changed: %q %v", b, err)
	}
	if _, err := os.Stat(noStoreDB); err == nil {
		t.Error("backup created the store it was asked to back up")
	}
}
