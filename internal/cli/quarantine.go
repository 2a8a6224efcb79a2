package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stray-mail/stray/internal/daemon"
	"github.com/stray-mail/stray/internal/hold"
	"github.com/stray-mail/stray/internal/store"
)

const quarantineHelp = `usage: stray quarantine list|show|release|discard [--config FILE] [--format text|json] [--state STATE] [--search TEXT] [ID...]

Administers held messages in the store the config names (the same one the
daemon uses; any node of a shared PostgreSQL store can act on any message).

  list             held messages, newest first (--state held|releasing|released|discarded|expired|all)
  show ID          one message: envelope, why it was held, its events, a text preview
  release ID...    deliver to the held recipients (--fix: to the suggested addresses)
  discard ID...    drop

An ID may be shortened to any prefix that names one message. Every action
is recorded in the event log with the acting user (--actor, default
admin:NAME with the name you are logged in as). A release happens exactly
once, however many nodes or admins try at the same time. The store must
exist: the quarantine never creates one.

Exit status: 0 done, 1 a message was not held any more, 2 usage or store error.

Examples:
  stray quarantine list --config /etc/stray/stray.yaml
  stray quarantine show --config /etc/stray/stray.yaml 3f2a9c
  stray quarantine release --fix --config /etc/stray/stray.yaml 3f2a9c
`

func runQuarantine(ctx context.Context, args []string, std Stdio) int {
	fs := newFlagSet("quarantine", quarantineHelp, std)
	cfgPath := fs.String("config", "", "YAML config `FILE` (store and hold sections)")
	format := fs.String("format", "text", "output format: text or json")
	state := fs.String("state", "held", "list: messages in this `STATE`, or all")
	search := fs.String("search", "", "list: only messages whose sender or recipients contain `TEXT`")
	limit := fs.Int("limit", 100, "list: at most `N` messages")
	fix := fs.Bool("fix", false, "release: send to the suggested addresses instead")
	actor := fs.String("actor", "", "who acts, for the event log (default admin:NAME, your login name)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) == 0 {
		fmt.Fprint(std.Err, quarantineHelp)
		return ExitUsage
	}
	if *actor == "" {
		*actor = "admin:" + loginName()
	}
	// A store that is not there is refused before anything creates one
	// (or its signing key) in the wrong directory.
	h, closeStore, err := daemon.OpenQuarantine(ctx, *cfgPath, std.Err)
	if err != nil {
		fmt.Fprintf(std.Err, "stray quarantine: %v\n", err)
		return ExitUsage
	}
	defer closeStore()
	switch verb, ids := pos[0], pos[1:]; verb {
	case "list":
		f := store.Filter{Search: *search, Limit: *limit}
		if *state != "all" {
			f.States = []store.State{store.State(*state)}
		}
		msgs, err := h.Store().List(ctx, f)
		if err != nil {
			fmt.Fprintf(std.Err, "stray quarantine: %v\n", err)
			return ExitUsage
		}
		if *format == "json" {
			enc := json.NewEncoder(std.Out)
			for _, m := range msgs {
				enc.Encode(messageJSON(&m, false))
			}
			return ExitOK
		}
		tw := tabwriter.NewWriter(std.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tHELD AT\tSENDER\tSUBJECT\tHELD RECIPIENTS\tDID YOU MEAN")
		for _, m := range msgs {
			var rc, sug []string
			for _, r := range m.Recipients {
				rc = append(rc, r.Address)
				sug = append(sug, r.Suggestion)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.State, m.CreatedAt.UTC().Format("2006-01-02 15:04"), m.Sender, listSubject(m.Subject), strings.Join(rc, ","), strings.Join(sug, ","))
		}
		tw.Flush()
		return ExitOK
	case "show":
		code := ExitOK
		for _, id := range ids {
			id, err := resolveID(ctx, h.Store(), id)
			if err != nil {
				fmt.Fprintf(std.Err, "stray quarantine: %v\n", err)
				code = ExitUsage
				continue
			}
			m, err := h.Store().Get(ctx, id)
			if err != nil {
				fmt.Fprintf(std.Err, "stray quarantine: %s: %v\n", id, err)
				code = ExitUsage
				continue
			}
			evs, _ := h.Store().Events(ctx, store.EventFilter{MessageID: id})
			if *format == "json" {
				o := messageJSON(m, true)
				o["events"] = evs
				json.NewEncoder(std.Out).Encode(o)
				continue
			}
			fmt.Fprintf(std.Out, "id:       %s\nstate:    %s\nsender:   %s\nsubject:  %s\nqueue id: %s\nheld at:  %s by %s\nexpires:  %s\nnotified: %s\nsize:     %d bytes\n",
				m.ID, m.State, m.Sender, listSubject(m.Subject), m.QueueID, m.CreatedAt.UTC().Format(time.RFC3339), m.Node, m.ExpiresAt.UTC().Format(time.RFC3339), fmtTime(m.NotifiedAt), m.Size)
			for _, r := range m.Recipients {
				fmt.Fprintf(std.Out, "held:     %s (%s, score %.2f) did you mean %s?\n", r.Address, r.Verdict, r.Score, r.Suggestion)
				for _, why := range r.Reasons {
					fmt.Fprintf(std.Out, "          %s\n", why)
				}
			}
			fmt.Fprintf(std.Out, "\n%s\n", hold.Preview(m.Raw, 2000))
			fmt.Fprintln(std.Out, "events:")
			for _, e := range evs {
				fmt.Fprintf(std.Out, "  %s  %-14s %-20s %s\n", e.Time.UTC().Format(time.RFC3339), e.Kind, e.Actor, e.Detail)
			}
		}
		return code
	case "release", "discard":
		if len(ids) == 0 {
			fmt.Fprintf(std.Err, "stray quarantine %s: name at least one ID\n", verb)
			return ExitUsage
		}
		code := ExitOK
		for _, id := range ids {
			id, err := resolveID(ctx, h.Store(), id)
			if errors.Is(err, store.ErrNotFound) {
				fmt.Fprintf(std.Err, "%v\n", err)
				code = max(code, ExitFlagged)
				continue
			} else if err != nil {
				fmt.Fprintf(std.Err, "stray quarantine: %v\n", err)
				code = ExitUsage
				continue
			}
			if verb == "release" {
				err = h.Release(ctx, id, *actor, *fix)
			} else {
				err = h.Discard(ctx, id, *actor)
			}
			switch {
			case errors.Is(err, hold.ErrNotHeld) || errors.Is(err, store.ErrNotFound):
				fmt.Fprintf(std.Err, "%s: not held: %v\n", id, err)
				code = max(code, ExitFlagged)
			case err != nil:
				fmt.Fprintf(std.Err, "%s: %v\n", id, err)
				code = ExitUsage
			default:
				fmt.Fprintf(std.Out, "%s: %s\n", id, map[string]string{"release": "released", "discard": "discarded"}[verb])
			}
		}
		return code
	}
	fmt.Fprint(std.Err, quarantineHelp)
	return ExitUsage
}

// listSubject is a Subject for one table cell: at most 40 runes, "-" when
// there is none.
func listSubject(s string) string {
	if s == "" {
		return "-"
	}
	if r := []rune(s); len(r) > 40 {
		return string(r[:39]) + "…"
	}
	return s
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "not yet"
	}
	return t.UTC().Format(time.RFC3339)
}

func messageJSON(m *store.Message, preview bool) map[string]any {
	o := map[string]any{"id": m.ID, "state": m.State, "sender": m.Sender, "subject": m.Subject, "queue_id": m.QueueID, "recipients": m.Recipients,
		"size": m.Size, "node": m.Node, "created_at": m.CreatedAt, "expires_at": m.ExpiresAt}
	if !m.NotifiedAt.IsZero() {
		o["notified_at"] = m.NotifiedAt
	}
	if preview {
		o["preview"] = hold.Preview(m.Raw, 2000)
	}
	return o
}

// loginName is the operating-system user running the command, for the
// event log: the administrator behind sudo, else the user the process runs
// as. $USER is only the last resort: cron and systemd leave it unset.
func loginName() string {
	if u := os.Getenv("SUDO_USER"); u != "" && os.Geteuid() == 0 {
		return u
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

// resolveID turns an ID or a unique prefix of one into the message's ID.
func resolveID(ctx context.Context, st store.Store, id string) (string, error) {
	if _, err := st.Get(ctx, id); err == nil || !errors.Is(err, store.ErrNotFound) {
		return id, err
	}
	ms, err := st.List(ctx, store.Filter{IDPrefix: id, Limit: 2})
	if err != nil {
		return "", fmt.Errorf("%s: %w", id, err)
	}
	switch len(ms) {
	case 0:
		return "", fmt.Errorf("%s: no such message: %w", id, store.ErrNotFound)
	case 1:
		return ms[0].ID, nil
	}
	return "", fmt.Errorf("%s: names more than one message (%s, %s, …): give more of the ID", id, ms[0].ID, ms[1].ID)
}
