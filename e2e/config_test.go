package e2e

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runStray runs the stray binary and returns its output and exit status.
func runStray(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(strayBin, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("stray %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// TestTurningOffAWebOrHoldSwitchLeavesCheckFlagging is issue 17 point 1 as
// a user meets it: "web: {dashboard: false}" made "stray check" answer ok
// for j@gmial.com, because the switches shared one value.
func TestTurningOffAWebOrHoldSwitchLeavesCheckFlagging(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, yaml string }{
		{"dashboard off", "web:\n  dashboard: false\n"},
		{"api off", "web:\n  api: false\n"},
		{"hold off", "hold:\n  enabled: false\n"},
		{"all three off", "hold:\n  enabled: false\nweb:\n  dashboard: false\n  api: false\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := filepath.Join(t.TempDir(), "t.yaml")
			writeFile(t, cfg, "detect:\n  protect: [example.com]\n"+tc.yaml)
			out, errOut, code := runStray(t, "check", "--config", cfg, "j@gmial.com")
			if code != 1 || !strings.Contains(out, "gmail.com") {
				t.Errorf("stray check --config with %q: exit %d, want 1 (flagged, suggesting gmail.com)\n%s%s", tc.yaml, code, out, errOut)
			}
		})
	}
}

// TestConfigCheckShowsWhatTheFileTurnsOn: the report's file passed "stray
// config check" with a bare "ok"; now the switches show.
func TestConfigCheckShowsWhatTheFileTurnsOn(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "t.yaml")
	writeFile(t, cfg, "detect:\n  protect: [example.com]\nweb:\n  dashboard: false\n")
	out, errOut, code := runStray(t, "config", "check", cfg)
	for _, want := range []string{"detect.builtin: on", "hold.enabled: on", "web.dashboard: off", "web.api: on", "detect.protect: example.com"} {
		if code != 0 || !strings.Contains(out, "  "+want+"\n") {
			t.Errorf("stray config check: exit %d, no line %q:\n%s%s", code, want, out, errOut)
		}
	}
}
