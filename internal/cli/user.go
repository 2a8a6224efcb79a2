package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stray-mail/stray/internal/daemon"
	"github.com/stray-mail/stray/internal/store"
	"github.com/stray-mail/stray/internal/web"
)

const userHelp = `usage: stray user add|passwd|list|delete [--config FILE] [--role admin|auditor] [--password-stdin] [--format text|json] [NAME]

Manages the dashboard's local users, in the store the config names.

  add NAME       create a user (--role admin, the default, or auditor:
                 read-only); prints a generated password once, unless
                 --password-stdin reads one (first line of standard input)
  passwd NAME    set a new password (generated, or --password-stdin) and,
                 with --role, a new role; the user's sessions end
  list           the users and their roles
  delete NAME    remove a user and end their sessions

Passwords are stored as argon2id hashes; at least 10 characters.

Exit status: 0 done, 2 usage error or a change the store refused (the user
exists, no such user), 3 the store cannot be opened (runtime failure).

Examples:
  stray user add alice --config /etc/stray/stray.yaml
  stray user add bob --role auditor --password-stdin --config /etc/stray/stray.yaml < bob.pw
`

func runUser(ctx context.Context, args []string, std Stdio) int {
	fs := newFlagSet("user", userHelp, std)
	cfgPath := fs.String("config", "", "YAML config `FILE` (its store)")
	role := fs.String("role", "admin", "add: the user's `ROLE`, admin or auditor")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	format := fs.String("format", "text", "list: output format, text or json")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagExit(err)
	}
	fail := usageError(std, "user")
	if len(pos) == 0 {
		fmt.Fprint(std.Err, userHelp)
		return ExitUsage
	}
	verb, rest := pos[0], pos[1:]
	wantArgs := map[string]int{"add": 1, "passwd": 1, "delete": 1, "list": 0}
	n, ok := wantArgs[verb]
	if !ok {
		return fail("unknown action %q: want add, passwd, list or delete", verb)
	}
	if len(rest) != n {
		return fail("%s: want %d user name(s), got %d", verb, n, len(rest))
	}
	if *role != string(store.RoleAdmin) && *role != string(store.RoleAuditor) {
		return fail("--role %q: want admin or auditor", *role)
	}
	if *format != "text" && *format != "json" {
		return fail("--format %q: want text or json", *format)
	}
	st, err := daemon.OpenStore(ctx, *cfgPath)
	if err != nil {
		fmt.Fprintf(std.Err, "stray user: %v\n", err)
		return exitFor(err)
	}
	defer st.Close()

	password := func() (string, bool, error) {
		if !*fromStdin {
			return generatePassword(), true, nil
		}
		line, err := bufio.NewReader(std.In).ReadString('\n')
		if err != nil && line == "" {
			return "", false, fmt.Errorf("--password-stdin: no password on standard input")
		}
		return strings.TrimRight(line, "\r\n"), false, nil
	}
	switch verb {
	case "list":
		us, err := st.ListUsers(ctx)
		if err != nil {
			return fail("%v", err)
		}
		if *format == "json" {
			type row struct {
				Name    string    `json:"name"`
				Role    string    `json:"role"`
				Created time.Time `json:"created"`
			}
			enc := json.NewEncoder(std.Out)
			for _, u := range us {
				enc.Encode(row{u.Name, string(u.Role), u.CreatedAt})
			}
			return ExitOK
		}
		tw := tabwriter.NewWriter(std.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tCREATED")
		for _, u := range us {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, u.Role, u.CreatedAt.Format("2006-01-02 15:04"))
		}
		tw.Flush()
		return ExitOK
	case "delete":
		if err := st.DeleteUser(ctx, rest[0]); errors.Is(err, store.ErrNotFound) {
			return fail("no user %q", rest[0])
		} else if err != nil {
			return fail("%v", err)
		}
		st.AddEvent(ctx, store.Event{Kind: "user-deleted", Actor: "admin:" + loginName(), Detail: rest[0]})
		fmt.Fprintf(std.Out, "deleted %s\n", rest[0])
		return ExitOK
	}
	// add, passwd
	name := rest[0]
	old, err := st.GetUser(ctx, name)
	switch {
	case verb == "add" && err == nil:
		return fail("user %q exists (stray user passwd %s sets a new password)", name, name)
	case verb == "passwd" && errors.Is(err, store.ErrNotFound):
		return fail("no user %q", name)
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return fail("%v", err)
	}
	pw, generated, err := password()
	if err != nil {
		return fail("%v", err)
	}
	hash, err := web.HashPassword(pw)
	if err != nil {
		return fail("%v", err)
	}
	u := &store.User{Name: name, Role: store.Role(*role), Hash: hash}
	if old != nil {
		u.Role = old.Role
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "role" {
				u.Role = store.Role(*role)
			}
		})
	}
	// PutUser moves UpdatedAt, which ends the sessions made before (the
	// dashboard refuses a session older than its user's last change).
	if err := st.PutUser(ctx, u); err != nil {
		return fail("%v", err)
	}
	kind := map[string]string{"add": "user-added", "passwd": "password-changed"}[verb]
	st.AddEvent(ctx, store.Event{Kind: kind, Actor: "admin:" + loginName(), Detail: name + " role=" + string(u.Role)})
	if generated {
		fmt.Fprintf(std.Out, "%s %s (%s); password: %s\n", map[string]string{"add": "added", "passwd": "new password for"}[verb], name, u.Role, pw)
		fmt.Fprintln(std.Err, "stray user: the password is shown only once; give it to the user over a safe channel")
	} else {
		fmt.Fprintf(std.Out, "%s %s (%s)\n", map[string]string{"add": "added", "passwd": "new password for"}[verb], name, u.Role)
	}
	return ExitOK
}

// generatePassword returns 20 random characters from an alphabet without
// look-alike characters (about 113 bits).
func generatePassword() string {
	const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 20)
	for i := range b {
		b[i] = alphabet[randIntn(len(alphabet))]
	}
	return string(b)
}

func randIntn(n int) int {
	var b [1]byte
	for {
		rand.Read(b[:])
		if int(b[0]) < 256-256%n {
			return int(b[0]) % n
		}
	}
}
