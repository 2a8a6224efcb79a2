package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/stray-mail/stray/internal/daemon"
	"github.com/stray-mail/stray/internal/store"
)

const storeHelp = `usage: stray store backup [--config FILE] FILE

Copies the SQLite store the config names (held messages, the event log,
learned correspondents, users, tokens, reports) to FILE, consistently, while
stray serve goes on running and writing: one snapshot, read in one
transaction (SQLite's VACUUM INTO). FILE must not exist: it is never
overwritten, and is created readable by its owner only. The copy is checked
before the command succeeds. Keep the signing key (hold.secret_file) with it.

A PostgreSQL store is backed up with PostgreSQL's own tools:
  pg_dump --format=custom --file=stray.dump "postgres://stray@db/stray"
and restored with pg_restore.

To restore a SQLite backup: stop stray, copy FILE over the store file (owned
by the user stray runs as), start stray.

Exit status: 0 backed up, 2 usage error, FILE exists, no store, or the copy
failed.

Examples:
  stray store backup --config /etc/stray/stray.yaml /var/backups/stray-$(date +%F).db
  sudo -u stray stray store backup --config /etc/stray/stray.yaml /var/lib/stray/before-upgrade.db
`

func runStore(ctx context.Context, args []string, std Stdio) int {
	fs := newFlagSet("store", storeHelp, std)
	cfgPath := fs.String("config", "", "YAML config `FILE` naming the store (default: the embedded defaults, ./stray.db)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagExit(err)
	}
	usageErr := usageError(std, "store")
	if len(pos) == 0 {
		return usageErr("want a subcommand: backup FILE (see stray store --help)")
	}
	switch pos[0] {
	case "backup":
		if len(pos) != 2 {
			return usageErr("backup wants one FILE, got %d arguments", len(pos)-1)
		}
		return storeBackup(ctx, *cfgPath, pos[1], std)
	}
	return usageErr("unknown subcommand %q: want backup", pos[0])
}

func storeBackup(ctx context.Context, cfgPath, dest string, std Stdio) int {
	usageErr := usageError(std, "store backup")
	dsn, err := daemon.BackupStore(ctx, cfgPath, dest)
	switch {
	case errors.Is(err, fs.ErrExist):
		return usageErr("%s exists: a backup never overwrites a file; name a new one", dest)
	case errors.Is(err, store.ErrBackupPostgres):
		return usageErr("%v", err)
	case errors.Is(err, store.ErrNoStore):
		return usageErr("%v (name the daemon's config with --config)", err)
	case err != nil:
		return usageErr("%v", err)
	}
	fmt.Fprintf(std.Out, "backed up %s to %s\n", dsn, dest)
	return ExitOK
}
