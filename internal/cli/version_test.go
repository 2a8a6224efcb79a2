package cli

import (
	"encoding/json"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestBuildInfoPrefersStampsAndFallsBackToWhatGoRecorded(t *testing.T) {
	t.Parallel()
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, tc := range []struct {
		name    string
		stamped build
		bi      *debug.BuildInfo
		want    build
	}{
		{"stamped by make build", build{Version: "v1.4.0-3-gabc", Commit: "abc123", BuildDate: "2026-11-30T05:00:00Z", GoVersion: "go1.26.8"},
			&debug.BuildInfo{Main: debug.Module{Version: "v9.9.9"}, Settings: vcs("vcs.revision", "ffffffffffffffff", "vcs.time", "2000-01-01T00:00:00Z")},
			build{Version: "v1.4.0-3-gabc", Commit: "abc123", BuildDate: "2026-11-30T05:00:00Z", GoVersion: "go1.26.8"}},
		{"go install of a release", build{Version: "dev", GoVersion: "go1.26.8"},
			&debug.BuildInfo{Main: debug.Module{Version: "v1.5.0"}},
			build{Version: "v1.5.0", GoVersion: "go1.26.8"}},
		{"go build in a modified checkout", build{Version: "dev", GoVersion: "go1.26.8"},
			&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("vcs.revision", "0123456789abcdef0123", "vcs.time", "2026-11-29T10:00:00Z", "vcs.modified", "true")},
			build{Version: "dev", Commit: "0123456789ab-dirty", BuildDate: "2026-11-29T10:00:00Z", GoVersion: "go1.26.8"}},
		{"nothing recorded", build{Version: "", GoVersion: "go1.26.8"}, nil,
			build{Version: "dev", GoVersion: "go1.26.8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := buildInfo(tc.stamped, tc.bi); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestVersionJSONHasVersionCommitGoVersionAndBuildDate(t *testing.T) {
	t.Parallel()
	code, out, errOut := run(t, "", "version", "--format", "json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var o map[string]any
	if err := json.Unmarshal([]byte(out), &o); err != nil {
		t.Fatalf("not JSON: %v: %s", err, out)
	}
	for _, k := range []string{"version", "commit", "go_version", "build_date"} {
		if _, ok := o[k]; !ok {
			t.Errorf("no %q in %s", k, out)
		}
	}
	if o["go_version"] != runtime.Version() {
		t.Errorf("go_version %v, want %s", o["go_version"], runtime.Version())
	}
}

func TestVersionTextAndUsageErrors(t *testing.T) {
	t.Parallel()
	code, out, _ := run(t, "", "version")
	if code != ExitOK || !strings.HasPrefix(out, "stray ") || !strings.Contains(out, "go:") {
		t.Errorf("exit %d: %q", code, out)
	}
	for _, args := range [][]string{{"version", "--format", "xml"}, {"version", "extra"}} {
		if code, _, _ := run(t, "", args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, ExitUsage)
		}
	}
}
