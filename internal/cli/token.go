package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/stray-mail/stray/internal/daemon"
	"github.com/stray-mail/stray/internal/store"
	"github.com/stray-mail/stray/internal/web/api"
)

const tokenHelp = `usage: stray token add|list|revoke [--config FILE] [--format text|json] [NAME|ID]

Manages tokens for the HTTP check API (/api/v1/check), in the store the
config names. A token only checks addresses: it cannot read or change
anything else.

  add NAME     make a token for a client (an add-in, a web-mail server);
               prints it once: give it to the client, stray keeps only a hash
  list         the tokens: id, name, who made it, when
  revoke ID    delete a token (running daemons stop accepting it within 30s)

Exit status: 0 done, 2 usage error or a change the store refused (no such
token), 3 the store cannot be opened (runtime failure).

Examples:
  stray token add "outlook add-in" --config /etc/stray/stray.yaml
  curl -H "Authorization: Bearer stray_..." -d '{"recipients":["j@army.ml"]}' \
       -H 'Content-Type: application/json' http://127.0.0.1:8098/api/v1/check
`

func runToken(ctx context.Context, args []string, std Stdio) int {
	fs := newFlagSet("token", tokenHelp, std)
	cfgPath := fs.String("config", "", "YAML config `FILE` (its store)")
	format := fs.String("format", "text", "list: output format, text or json")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagExit(err)
	}
	fail := usageError(std, "token")
	if len(pos) == 0 {
		fmt.Fprint(std.Err, tokenHelp)
		return ExitUsage
	}
	verb, rest := pos[0], pos[1:]
	want := map[string]int{"add": 1, "list": 0, "revoke": 1}
	n, ok := want[verb]
	switch {
	case !ok:
		return fail("unknown action %q: want add, list or revoke", verb)
	case len(rest) != n:
		return fail("%s: want %d argument(s), got %d", verb, n, len(rest))
	case *format != "text" && *format != "json":
		return fail("--format %q: want text or json", *format)
	}
	st, err := daemon.OpenStore(ctx, *cfgPath)
	if err != nil {
		fmt.Fprintf(std.Err, "stray token: %v\n", err)
		return exitFor(err)
	}
	defer st.Close()
	actor := "admin:" + loginName()
	switch verb {
	case "add":
		plain, tok, err := api.NewToken(rest[0], loginName())
		if err == nil {
			err = st.PutToken(ctx, &tok)
		}
		if err != nil {
			return fail("%v", err)
		}
		st.AddEvent(ctx, store.Event{Kind: "token-added", Actor: actor, Detail: tok.ID + " " + tok.Name})
		fmt.Fprintf(std.Out, "%s\n", plain)
		fmt.Fprintf(std.Err, "stray token: token %s (%s) made; it is shown only once\n", tok.ID, tok.Name)
	case "revoke":
		if err := st.DeleteToken(ctx, rest[0]); errors.Is(err, store.ErrNotFound) {
			return fail("no token %q (stray token list shows the ids)", rest[0])
		} else if err != nil {
			return fail("%v", err)
		}
		st.AddEvent(ctx, store.Event{Kind: "token-revoked", Actor: actor, Detail: rest[0]})
		fmt.Fprintf(std.Out, "revoked %s\n", rest[0])
	case "list":
		ts, err := st.ListTokens(ctx)
		if err != nil {
			return fail("%v", err)
		}
		if *format == "json" {
			type row struct {
				ID      string    `json:"id"`
				Name    string    `json:"name"`
				By      string    `json:"created_by"`
				Created time.Time `json:"created"`
			}
			enc := json.NewEncoder(std.Out)
			for _, t := range ts {
				enc.Encode(row{t.ID, t.Name, t.CreatedBy, t.CreatedAt})
			}
			return ExitOK
		}
		tw := tabwriter.NewWriter(std.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tBY\tCREATED")
		for _, t := range ts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, t.Name, t.CreatedBy, t.CreatedAt.Format("2006-01-02 15:04"))
		}
		tw.Flush()
	}
	return ExitOK
}
