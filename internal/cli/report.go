package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/stray-mail/stray/internal/daemon"
	"github.com/stray-mail/stray/internal/store"
)

// openConfiguredStore opens the store the config file names (the embedded
// default without one).
func openConfiguredStore(ctx context.Context, cfgPath string) (store.Store, error) {
	cfg, err := daemon.LoadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, cfg.StoreDSN())
	if err != nil {
		return nil, runtimeErr{fmt.Errorf("store: %w", err)}
	}
	return st, nil
}

// runtimeErr marks a failure of something the command needs at run time
// (the store, DNS), as opposed to a usage mistake.
type runtimeErr struct{ error }

func (e runtimeErr) Unwrap() error { return e.error }

// exitFor is the exit code for a command's error: ExitRuntime for a
// runtime failure, ExitUsage for the rest.
func exitFor(err error) int {
	var re runtimeErr
	if errors.As(err, &re) || errors.Is(err, daemon.ErrUnavailable) {
		return ExitRuntime
	}
	return ExitUsage
}

// saveReport stores an audit or scan result in the store the config
// names, for the dashboard's Reports page, and returns its id.
func saveReport(ctx context.Context, cfgPath, kind, title string, js, html []byte) (int64, error) {
	st, err := openConfiguredStore(ctx, cfgPath)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	r := &store.Report{Kind: kind, Title: title, CreatedBy: loginName(), JSON: js, HTML: html}
	if err := st.AddReport(ctx, r); err != nil {
		return 0, fmt.Errorf("saving the report: %w", err)
	}
	return r.ID, nil
}
