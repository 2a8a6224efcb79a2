package cli

import (
	"context"
	"fmt"

	"github.com/stray-mail/stray/internal/store"
)

// saveReport stores an audit or scan result in the store the config
// names, for the dashboard's Reports page, and returns its id.
func saveReport(ctx context.Context, cfgPath, kind, title string, js, html []byte) (int64, error) {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return 0, err
	}
	st, err := store.Open(ctx, cfg.StoreDSN())
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	defer st.Close()
	r := &store.Report{Kind: kind, Title: title, CreatedBy: envUser(), JSON: js, HTML: html}
	if err := st.AddReport(ctx, r); err != nil {
		return 0, fmt.Errorf("saving the report: %w", err)
	}
	return r.ID, nil
}
