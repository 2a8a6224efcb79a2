package store

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// The schema lives in the repository as numbered SQL files, one directory
// per dialect, with the same numbers and names in both. Each file is
// applied once, in order, inside its own transaction, and recorded in
// schema_migrations.
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string // file name without the number and ".sql"
	sql     string
}

// loadMigrations returns a dialect's migrations in order, checking that they
// are numbered 1, 2, 3… without gaps or duplicates.
func loadMigrations(dialect string) ([]migration, error) {
	dir := path.Join("migrations", dialect)
	entries, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries { // ReadDir sorts by name
		file := e.Name()
		num, name, ok := strings.Cut(strings.TrimSuffix(file, ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 || name == "" || !strings.HasSuffix(file, ".sql") {
			return nil, fmt.Errorf("migrations: %s/%s: want NNNN_name.sql", dialect, file)
		}
		if v != len(ms)+1 {
			return nil, fmt.Errorf("migrations: %s/%s: version %d, want %d", dialect, file, v, len(ms)+1)
		}
		b, err := fs.ReadFile(migrationFiles, path.Join(dir, file))
		if err != nil {
			return nil, fmt.Errorf("migrations: %w", err)
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("migrations: none for %s", dialect)
	}
	return ms, nil
}

// checkApplied refuses a database that a newer stray has migrated further
// than this one knows, or whose history disagrees with the files.
func checkApplied(applied map[int]string, ms []migration) error {
	for v, name := range applied {
		if v > len(ms) {
			return fmt.Errorf("database schema is at version %d (%s), newer than this stray knows (%d): upgrade stray", v, name, len(ms))
		}
		if v < 1 {
			return fmt.Errorf("database schema has a bad version %d (%s)", v, name)
		}
		if ms[v-1].name != name {
			return fmt.Errorf("database schema version %d is %q, this stray's is %q", v, name, ms[v-1].name)
		}
	}
	return nil
}
