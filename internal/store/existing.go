package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// ErrNoStore is returned by OpenExisting when a SQLite store does not exist
// yet.
var ErrNoStore = errors.New("no store there yet")

// OpenExisting opens a store like Open, but refuses to create a SQLite file
// that is not there: commands that only read or act on what the daemon
// stored (the quarantine) must not answer from a new, empty store made in
// the wrong directory. A PostgreSQL store is opened as with Open (its
// database exists or the connection fails).
func OpenExisting(ctx context.Context, dsn string) (Store, error) {
	kind, target, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if kind == kindSQLite {
		if _, err := os.Stat(target); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("store: %s: %w (stray serve creates it; name the daemon's config with --config)", target, ErrNoStore)
		} else if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	return Open(ctx, dsn)
}
