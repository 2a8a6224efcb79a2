package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stray-mail/stray/internal/postfixtest"
)

// runConfigCheck runs "stray config check" on a config file with body.
func runConfigCheck(t *testing.T, body string, args ...string) (out, errOut string, code int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "t.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	var o, e bytes.Buffer
	code = Run(context.Background(), append([]string{"config", "check", path}, args...), Stdio{In: strings.NewReader(""), Out: &o, Err: &e})
	return o.String(), e.String(), code
}

// TestConfigCheckReportsTheEffectiveSwitches is the done-when of issue 17:
// a config that silently turned detection off (point 1) passed "stray
// config check" with nothing but "ok".
func TestConfigCheckReportsTheEffectiveSwitches(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml string
		lines      []string
	}{
		{"dashboard off leaves the rest on", "detect:\n  protect: [example.com]\nweb:\n  dashboard: false\n",
			[]string{"detect.builtin: on", "hold.enabled: on", "web.dashboard: off", "web.api: on",
				"detect.protect: example.com", "policy.mode: enforce",
				"listen.milter: inet:127.0.0.1:8895", "listen.policy: 127.0.0.1:10045", "listen.http: 127.0.0.1:8098", "listen.reply: off"}},
		{"builtin off", "detect:\n  protect: [mil, army.mil]\n  builtin: false\npolicy:\n  mode: audit\n",
			[]string{"detect.builtin: off", "hold.enabled: on", "web.dashboard: on", "web.api: on",
				"detect.protect: mil, army.mil", "policy.mode: audit"}},
		{"no store: hold and web are off whatever their keys say", "store: \"\"\nlisten:\n  milter: \"\"\n",
			[]string{"detect.builtin: on", "hold.enabled: off (needs a store)", "web.dashboard: off (needs the store: store)",
				"web.api: off (needs the store: store)", "detect.protect: none", "listen.milter: off"}},
		// Issue 12: the dashboard and the API need the store, not hold.
		{"hold off leaves the dashboard and the API on", "hold:\n  enabled: false\n",
			[]string{"hold.enabled: off", "web.dashboard: on", "web.api: on"}},
		{"no http listener", "listen:\n  http: \"\"\n",
			[]string{"hold.enabled: on", "web.dashboard: off (needs listen.http)", "web.api: off (needs listen.http)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := runConfigCheck(t, tc.yaml)
			if code != ExitOK {
				t.Fatalf("exit %d: %s%s", code, out, errOut)
			}
			got := strings.Split(strings.TrimSpace(out), "\n")
			if !strings.HasSuffix(got[0], "t.yaml: ok") {
				t.Errorf("first line %q, want FILE: ok", got[0])
			}
			for _, want := range tc.lines {
				found := false
				for _, l := range got {
					found = found || strings.TrimSpace(l) == want
				}
				if !found {
					t.Errorf("no line %q in:\n%s", want, out)
				}
			}
		})
	}
}

func TestConfigCheckJSONHasTheSwitches(t *testing.T) {
	t.Parallel()
	out, errOut, code := runConfigCheck(t, "detect:\n  protect: [example.com]\nweb:\n  dashboard: false\nlisten:\n  reply: 127.0.0.1:2526\nhold:\n  reply_domain: reply.example.com\n", "--format", "json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	var got struct {
		OK     bool `json:"ok"`
		Detect struct {
			Builtin *bool    `json:"builtin"`
			Protect []string `json:"protect"`
		} `json:"detect"`
		Hold struct {
			Enabled *bool `json:"enabled"`
		} `json:"hold"`
		Web struct {
			Dashboard *bool `json:"dashboard"`
			API       *bool `json:"api"`
		} `json:"web"`
		Listen map[string]string `json:"listen"`
		Policy struct {
			Mode string `json:"mode"`
		} `json:"policy"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("want one JSON object on one line, got:\n%s", out)
	}
	if !got.OK || got.Detect.Builtin == nil || !*got.Detect.Builtin || got.Hold.Enabled == nil || !*got.Hold.Enabled ||
		got.Web.Dashboard == nil || *got.Web.Dashboard || got.Web.API == nil || !*got.Web.API {
		t.Errorf("switches wrong: %s", out)
	}
	if strings.Join(got.Detect.Protect, ",") != "example.com" || got.Policy.Mode != "enforce" {
		t.Errorf("protect %v mode %q: %s", got.Detect.Protect, got.Policy.Mode, out)
	}
	if got.Listen["milter"] != "inet:127.0.0.1:8895" || got.Listen["reply"] != "127.0.0.1:2526" || got.Listen["http"] != "127.0.0.1:8098" {
		t.Errorf("listeners %v", got.Listen)
	}
}

func TestConfigCheckJSONReportsProblemsAndExitsTwo(t *testing.T) {
	t.Parallel()
	out, _, code := runConfigCheck(t, "detect:\n  protect: ['bad domain']\nlog:\n  level: loud\n", "--format", "json")
	var got struct {
		OK       bool     `json:"ok"`
		Problems []string `json:"problems"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	if code != ExitUsage || got.OK || len(got.Problems) != 2 {
		t.Errorf("exit %d, %+v; want 2 and both problems", code, got)
	}
}

func TestConfigCheckRejectsAnUnknownFormat(t *testing.T) {
	t.Parallel()
	if _, errOut, code := runConfigCheck(t, "", "--format", "xml"); code != ExitUsage || !strings.Contains(errOut, "--format") {
		t.Errorf("exit %d, %q", code, errOut)
	}
}

// stray config check --connect tries what the config depends on and says
// which works (issue 14): notify_smtp and reinject_smtp were never tried
// until a message was held.
func TestConfigCheckConnectSaysWhichEndpointsAnswer(t *testing.T) {
	t.Parallel()
	sink := postfixtest.StartSink(t)
	dead := fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
	dir := t.TempDir()
	dsn := "sqlite:" + filepath.Join(dir, "s.db")
	openTestStore(t, dsn) // the store exists, as the daemon made it
	body := fmt.Sprintf("store: %s\nhold:\n  secret_file: %s\n  notify_smtp: %s\n  reinject_smtp: %s\n", dsn, filepath.Join(dir, "k"), sink.Addr, dead)
	out, errOut, code := runConfigCheck(t, body, "--connect")
	if code != ExitRuntime {
		t.Fatalf("exit %d, want %d (something did not answer): %s %s", code, ExitRuntime, out, errOut)
	}
	for _, want := range []string{"connect store sqlite:", "connect hold.notify_smtp " + sink.Addr + ": ok", "connect hold.reinject_smtp " + dead + ": FAILED"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`connect store \S+: ok`).MatchString(out) {
		t.Errorf("the store did not answer:\n%s", out)
	}
	// Without --connect nothing is tried.
	if out, _, code := runConfigCheck(t, body); code != ExitOK || strings.Contains(out, "connect ") {
		t.Errorf("without --connect: exit %d:\n%s", code, out)
	}
}

// An allow rule in the config file that lets mail through to a lookalike
// of a protected domain (army.ml, all of .ml, with mil protected) is the
// leak stray exists to stop, opened by one line: the dashboard asks for a
// confirmation before adding one, the file was accepted without a word.
// config check now names each such rule and what it imitates.
func TestConfigCheckNamesAllowRulesThatOpenAProtectedLookalike(t *testing.T) {
	t.Parallel()
	yaml := "store: \"\"\ndetect:\n  protect: [mil]\npolicy:\n  allow: [army.ml, j@navy.ml, partner.example.com, .ml]\n" +
		"  scopes:\n    - senders: [.liaison.army.mil]\n      allow: [.partner.ml]\n"
	out, errOut, code := runConfigCheck(t, yaml)
	if code != ExitOK {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	for _, want := range []string{
		`warning: policy.allow: "army.ml" lets mail through to a lookalike of army.mil`,
		`warning: policy.allow: "j@navy.ml" lets mail through to a lookalike of navy.mil`,
		`warning: policy.allow: ".ml" lets mail through to lookalikes of mil`,
		`warning: policy.scopes[0].allow: ".partner.ml" lets mail through to lookalikes of partner.mil`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "partner.example.com") {
		t.Errorf("a rule for an ordinary domain is named:\n%s", out)
	}
	out, _, _ = runConfigCheck(t, yaml, "--format", "json")
	var r struct{ Warnings []string }
	if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Warnings) != 4 {
		t.Errorf("json warnings %v (%v):\n%s", r.Warnings, err, out)
	}
}
