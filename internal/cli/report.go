package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/stray-mail/stray/internal/daemon"
	"github.com/stray-mail/stray/internal/store"
)

// exitFor is the exit code for a command's error: ExitRuntime for a
// runtime failure (the store unreachable), ExitUsage for the rest.
func exitFor(err error) int {
	if errors.Is(err, daemon.ErrUnavailable) {
		return ExitRuntime
	}
	return ExitUsage
}

// saveReport stores an audit or scan result in the store the config
// names, for the dashboard's Reports page, and returns its id.
func saveReport(ctx context.Context, cfgPath, kind, title string, js, html []byte) (int64, error) {
	st, err := daemon.OpenStore(ctx, cfgPath)
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
