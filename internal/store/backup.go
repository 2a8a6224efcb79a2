package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrBackupPostgres is Backup's answer for a PostgreSQL store, which
// PostgreSQL's own tools back up (pg_dump).
var ErrBackupPostgres = errors.New("a PostgreSQL store is backed up with pg_dump (docs/install.md), not by stray")

// Backup writes a consistent copy of the SQLite store that dsn names to
// dest while other processes (stray serve) go on writing to it: VACUUM INTO
// copies one snapshot, read in one transaction that WAL lets run beside the
// writer. It never creates the store, and never overwrites dest: dest is
// created empty and private (0600: the store holds messages) before the
// copy, and an existing dest is an error wrapping fs.ErrExist. The copy is
// checked (PRAGMA quick_check) and synced before Backup returns; a failed
// backup removes what it wrote.
func Backup(ctx context.Context, dsn, dest string) (err error) {
	kind, src, err := parseDSN(dsn)
	if err != nil {
		return err
	}
	if kind != kindSQLite {
		return ErrBackupPostgres
	}
	if _, err := os.Stat(src); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("store: %s: %w", src, ErrNoStore)
		}
		return fmt.Errorf("store: %w", err)
	}
	abs, err := filepath.Abs(dest)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	f, err := os.OpenFile(abs, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(abs)
		}
	}()

	uri := "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(src)
	db, err := sql.Open("sqlite", uri+"?_busy_timeout="+fmt.Sprint(sqliteBusyTimeout.Milliseconds()))
	if err != nil {
		return fmt.Errorf("backup: open %s: %w", src, err)
	}
	defer db.Close()
	// VACUUM INTO accepts the empty file just made, and no other.
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", abs); err != nil {
		return fmt.Errorf("backup: copying %s: %w", src, err)
	}
	if err := checkCopy(ctx, abs); err != nil {
		return err
	}
	if f, err = os.OpenFile(abs, os.O_RDWR, 0); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("backup: sync: %w", err)
	}
	return f.Close()
}

// checkCopy runs SQLite's quick_check on a backup.
func checkCopy(ctx context.Context, path string) error {
	uri := "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	db, err := sql.Open("sqlite", uri+"?mode=ro")
	if err != nil {
		return fmt.Errorf("backup: checking the copy: %w", err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&res); err != nil {
		return fmt.Errorf("backup: checking the copy: %w", err)
	}
	if res != "ok" {
		return fmt.Errorf("backup: the copy fails SQLite's quick_check: %s", res)
	}
	return nil
}
