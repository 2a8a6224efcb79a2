package daemon

import (
	"context"
	"io"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/config"
	"github.com/stray-mail/stray/internal/hold"
	"github.com/stray-mail/stray/internal/store"
)

// The commands that run no listener (check, audit, learn, config check,
// quarantine, user, token, store backup) get what they build here, so that
// cli keeps to flags, formats and exit codes.

// Checker builds the detection engine for the offline commands (check,
// audit, learn): the knowledge of the config at configPath (the embedded
// defaults when "") plus k's. It consults no store.
func Checker(configPath string, k Knowledge) (*detect.Checker, error) {
	cfg, err := LoadConfig(configPath, nil)
	if err != nil {
		return nil, err
	}
	know, err := cfg.Knowledge(k.Protect, k.Known, k.Deny...)
	if err != nil {
		return nil, err
	}
	return detect.New(know)
}

// CheckConfig loads and validates the config file at path, reads its
// knowledge files and compiles its engine, starting and opening nothing
// (stray config check). warnings are what is valid but deserves a look:
// allow rules that open a lookalike of a protected domain.
func CheckConfig(path string) (cfg *config.Config, warnings []string, err error) {
	if cfg, err = config.Load(path); err != nil {
		return nil, nil, err
	}
	k, err := cfg.Knowledge(nil, nil)
	if err != nil {
		return nil, nil, err
	}
	eng, err := EngineFrom(cfg, k)
	if err != nil {
		return nil, nil, err
	}
	return cfg, LookalikeAllows(cfg, eng.Checker), nil
}

// OpenStore opens the store the config at configPath names (the embedded
// default when ""). A store that cannot be opened is an ErrUnavailable
// error; a bad config is any other.
func OpenStore(ctx context.Context, configPath string) (store.Store, error) {
	cfg, err := LoadConfig(configPath, nil)
	if err != nil {
		return nil, err
	}
	return openStore(ctx, cfg)
}

// OpenQuarantine opens the store the config at configPath names, which
// must exist already (a command that acts on held messages must not
// answer from a new, empty store made in the wrong directory), and the
// Holder on it, logging to logOut. close closes the store.
func OpenQuarantine(ctx context.Context, configPath string, logOut io.Writer) (h *hold.Holder, close func(), err error) {
	cfg, err := LoadConfig(configPath, nil)
	if err != nil {
		return nil, nil, err
	}
	st, err := store.OpenExisting(ctx, cfg.StoreDSN())
	if err != nil {
		return nil, nil, err
	}
	h, _, err = NewHolder(cfg, st, NewLogger(cfg.Log, logOut))
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return h, func() { st.Close() }, nil
}

// BackupStore copies the SQLite store the config at configPath names to
// dest (store.Backup, whose errors it returns as they are), and returns
// the store's DSN with its password hidden.
func BackupStore(ctx context.Context, configPath, dest string) (string, error) {
	cfg, err := LoadConfig(configPath, nil)
	if err != nil {
		return "", err
	}
	dsn := cfg.StoreDSN()
	if err := store.Backup(ctx, dsn, dest); err != nil {
		return "", err
	}
	return store.RedactDSN(dsn), nil
}
