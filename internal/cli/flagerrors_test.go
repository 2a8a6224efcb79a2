package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Issue 13: every flag mistake of stray relay and stray sink is a usage
// error (2) with one line naming the flag, found before the store is
// opened: a typo used to leave a new SQLite store (and hold secret) behind.
func TestRelayAndSinkFlagMistakesExitTwoAndCreateNoStore(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string // in the message
	}{
		{"sink without --domains", []string{"sink", "--listen", "127.0.0.1:2525"}, "--domains"},
		{"sink with a missing domains file", []string{"sink", "--listen", "127.0.0.1:2525", "--domains", "missing.txt"}, "--domains"},
		{"sink with an empty domains file", []string{"sink", "--listen", "127.0.0.1:2525", "--domains", "{dir}/empty.txt"}, "--domains"},
		{"sink with a bad domains file", []string{"sink", "--listen", "127.0.0.1:2525", "--domains", "{dir}/bad.txt"}, "--domains"},
		{"sink with a bad --listen", []string{"sink", "--listen", "2525", "--domains", "{dir}/domains.txt"}, "--listen"},
		{"sink without --listen", []string{"sink", "--domains", "{dir}/domains.txt"}, "--listen"},
		{"relay with a bad --allow", []string{"relay", "--listen", "127.0.0.1:10025", "--next-hop", "127.0.0.1:25", "--allow", "10.0.0.0/33"}, "--allow"},
		{"relay with --tls-cert alone", []string{"relay", "--listen", "127.0.0.1:10025", "--next-hop", "127.0.0.1:25", "--tls-cert", "{dir}/domains.txt"}, "--tls-key"},
		{"relay with --require-tls and no certificate", []string{"relay", "--listen", "127.0.0.1:10025", "--next-hop", "127.0.0.1:25", "--require-tls"}, "--require-tls"},
		{"relay with a bad --allow-cert", []string{"relay", "--listen", "127.0.0.1:10025", "--next-hop", "127.0.0.1:25", "--allow-cert", "a..b"}, "--allow-cert"},
		{"relay with an unknown --next-hop-tls", []string{"relay", "--listen", "127.0.0.1:10025", "--next-hop", "127.0.0.1:25", "--next-hop-tls", "maybe"}, "--next-hop-tls"},
		{"relay without --next-hop", []string{"relay", "--listen", "127.0.0.1:10025"}, "--next-hop"},
		{"relay without --listen", []string{"relay", "--next-hop", "127.0.0.1:25"}, "--listen is required (or listen.relay)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			files := map[string]string{
				"stray.yaml":  "store: sqlite:" + filepath.Join(dir, "stray.db") + "\n",
				"domains.txt": "army.ml army.mil\n",
				"empty.txt":   "# nothing registered yet\n",
				"bad.txt":     "not a domain!\n",
			}
			for name, body := range files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			args := append([]string{}, tc.args...)
			for i := range args {
				args[i] = strings.ReplaceAll(args[i], "{dir}", dir)
			}
			args = append(args, "--config", filepath.Join(dir, "stray.yaml"))
			// A mistake let through starts the listener: the context ends it.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			var errb bytes.Buffer
			code := Run(ctx, args, Stdio{In: strings.NewReader(""), Out: io.Discard, Err: &errb})
			stderr := errb.String()
			msg := strings.TrimSuffix(stderr, "\n")
			if code != ExitUsage || !strings.HasPrefix(msg, "stray "+tc.args[0]+": ") || strings.Contains(msg, "\n") || !strings.Contains(msg, tc.want) ||
				strings.Contains(msg, "))") {
				t.Errorf("stray %s: exit %d, want %d and one line naming %s:\n%s", strings.Join(tc.args, " "), code, ExitUsage, tc.want, stderr)
			}
			ents, _ := os.ReadDir(dir)
			var got []string
			for _, e := range ents {
				if _, ok := files[e.Name()]; !ok {
					got = append(got, e.Name())
				}
			}
			if len(got) > 0 {
				slices.Sort(got)
				t.Errorf("stray %s created %v (the store opened before the flags were checked)", strings.Join(tc.args, " "), got)
			}
		})
	}
}
