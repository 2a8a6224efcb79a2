package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/policy"
	"github.com/stray-mail/stray/internal/postconf"
)

// mtaMapsTimeout bounds the start-up check of the MTA's maps.
const mtaMapsTimeout = time.Minute

// warnMTALookalikes logs one warning per address that the MTA sends mail
// to after stray's RCPT-time check (always_bcc, sender_bcc_maps,
// recipient_bcc_maps, virtual and alias maps) and that the running engine
// flags: mail to such an address leaks without stray ever seeing it. It
// runs beside the listeners and never stops the daemon; without postconf
// (no Postfix here) it says nothing.
func (d *Daemon) warnMTALookalikes(ctx context.Context, pc postconf.Postconf) {
	ctx, cancel := context.WithTimeout(ctx, mtaMapsTimeout)
	defer cancel()
	r, err := pc.Targets(ctx)
	if errors.Is(err, postconf.ErrNotFound) {
		d.log.Debug("MTA maps not checked: no postconf", "err", err)
		return
	}
	if err != nil {
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return // stray is stopping
		}
		d.log.Warn("MTA maps not checked for lookalikes", "err", err)
		return
	}
	for _, p := range r.Problems {
		d.log.Warn("MTA map not checked for lookalikes", "err", p)
	}
	eng := d.gate.Engine()
	found := 0
	for _, t := range r.Targets {
		dec, ok := mtaTargetFlagged(eng, t.Address)
		if !ok {
			continue
		}
		found++
		f := dec.Finding
		intended := f.Intended
		if strings.HasPrefix(t.Address, "@") && intended != "" {
			intended = "@" + intended
		}
		attrs := []any{"param", t.Param, "source", fmt.Sprintf("%s:%d", t.File, t.Line), "key", t.Key,
			"target", t.Address, "verdict", f.Verdict.String(), "intended", intended}
		if dec.Rule != "" {
			attrs = append(attrs, "rule", dec.Rule)
		}
		d.log.Warn("the MTA sends mail to a lookalike after stray's check: fix the map, or allow a real partner in policy.allow", attrs...)
	}
	d.log.Info("checked the MTA's maps for lookalikes", "targets", len(r.Targets), "lookalikes", found,
		"files", len(r.Files), "not_files", len(r.Skipped))
}

// mtaTargetFlagged checks one map target with the engine, as mail from
// the null sender; "@domain" (a whole-domain rewrite) is checked as
// postmaster@domain.
func mtaTargetFlagged(eng *gate.Engine, target string) (decision policy.Decision, flagged bool) {
	addr := target
	if strings.HasPrefix(addr, "@") {
		addr = "postmaster" + addr
	}
	f, err := eng.Checker.Check(addr)
	if err != nil {
		return decision, false
	}
	decision = eng.Policy.Decide("", f)
	return decision, decision.Finding.Verdict != detect.OK
}
