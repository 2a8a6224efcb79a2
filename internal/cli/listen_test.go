package cli

import (
	"strings"
	"testing"
)

// Issue 12: stray config check and the --listen flags read a listen
// address with the same grammar: what one refuses, the other refuses with
// a usage error (2) before anything is opened, and a milter address in
// HOST:PORT or Sendmail's PORT@HOST form passes both.
func TestListenFlagsAndConfigCheckShareOneGrammar(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cmd, addr string
		ok        bool
	}{
		{"milter", "127.0.0.1:8895", true},
		{"milter", "inet:8895@127.0.0.1", true},
		{"milter", "inet:127.0.0.1:0", false},
		{"milter", "tcp:127.0.0.1:8895", false},
		{"policy", "inet:10045", false},
		{"policy", "127.0.0.1:", false},
		{"relay", "10025", false},
		{"relay", "inet:127.0.0.1:10025", false},
	} {
		_, errOut, code := runConfigCheck(t, "store: \"\"\nlisten:\n  "+tc.cmd+": \""+tc.addr+"\"\n")
		if (code == ExitOK) != tc.ok {
			t.Errorf("config check listen.%s: %q: exit %d, want ok %v: %s", tc.cmd, tc.addr, code, tc.ok, errOut)
		}
		if tc.ok {
			continue
		}
		if !strings.Contains(errOut, "listen."+tc.cmd+": ") {
			t.Errorf("config check listen.%s: %q: the problem lacks its field path: %s", tc.cmd, tc.addr, errOut)
		}
		code, _, stderr := run(t, "", tc.cmd, "--listen", tc.addr, "--protect", "mil")
		if code != ExitUsage || !strings.Contains(stderr, "--listen") {
			t.Errorf("stray %s --listen %q: exit %d, want %d with the flag named: %s", tc.cmd, tc.addr, code, ExitUsage, stderr)
		}
		if strings.Contains(stderr, "hold and confirm on") {
			t.Errorf("stray %s --listen %q: the store was opened before the flag was refused: %s", tc.cmd, tc.addr, stderr)
		}
	}
}

// Issue 12: an unknown word in a choice fails as the file is decoded, and
// stray config check still prints it, with its field path and the words
// it takes, beside the other problems.
func TestConfigCheckPrintsUnknownEnumWordsWithTheirPaths(t *testing.T) {
	t.Parallel()
	_, errOut, code := runConfigCheck(t, "detect:\n  protect: ['bad domain']\npolicy:\n  actions: {block: explode}\nrelay:\n  next_hop_tls: maybe\n")
	if code != ExitUsage {
		t.Fatalf("exit %d, want %d: %s", code, ExitUsage, errOut)
	}
	for _, want := range []string{"3 problem(s)", "  detect.protect[0]: ", `  policy.actions.block: unknown action "explode" (want one of pass, log, warn, hold, tempfail, reject)`,
		`  relay.next_hop_tls: "maybe": want none, opportunistic or required`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("config check output lacks %q:\n%s", want, errOut)
		}
	}
}
