package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Build stamps, set by `make build` and `make release` with
// -ldflags "-X github.com/stray-mail/stray/internal/cli.Version=..." (and
// Commit, BuildDate). A binary built without them (go install, go build)
// takes what the Go toolchain recorded instead (see buildInfo).
var (
	Version   = "dev"
	Commit    = ""
	BuildDate = ""
)

const versionHelp = `usage: stray version [--format text|json]

Prints stray's version, the commit it was built from, the Go version that
built it and the build date. A binary built by make build or make release has
them stamped in (from git describe); one built by go install or go build
reports the module version and the commit the Go toolchain recorded.

--format json prints one object: {"version","commit","go_version","build_date"}.

Examples:
  stray version
  stray version --format json
`

// build describes a stray binary.
type build struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
	BuildDate string `json:"build_date"`
}

func runVersion(_ context.Context, args []string, std Stdio) int {
	fs := newFlagSet("version", versionHelp, std)
	format := fs.String("format", "text", "output format: text or json")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	usageErr := usageError(std, "version")
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	b := buildInfo(build{Version: Version, Commit: Commit, BuildDate: BuildDate, GoVersion: runtime.Version()}, bi)
	switch *format {
	case "json":
		js, _ := json.Marshal(b)
		fmt.Fprintf(std.Out, "%s\n", js)
	case "text":
		fmt.Fprintf(std.Out, "stray %s\ncommit:     %s\ngo:         %s\nbuilt:      %s\n",
			b.Version, orUnknown(b.Commit), b.GoVersion, orUnknown(b.BuildDate))
	default:
		return usageErr("--format %q: want text or json", *format)
	}
	return ExitOK
}

// buildInfo completes the stamped build with what the Go toolchain recorded
// in bi (nil when it recorded nothing): the module version that go install
// fetched, and the VCS revision and commit time of a go build in a checkout.
// Stamped values win.
func buildInfo(stamped build, bi *debug.BuildInfo) build {
	b := stamped
	if b.Version == "" {
		b.Version = "dev"
	}
	if bi == nil {
		return b
	}
	if b.GoVersion == "" {
		b.GoVersion = bi.GoVersion
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if b.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		b.Version = bi.Main.Version
	}
	if b.Commit == "" {
		if rev := settings["vcs.revision"]; rev != "" {
			b.Commit = rev[:min(len(rev), 12)]
			if settings["vcs.modified"] == "true" {
				b.Commit += "-dirty"
			}
		}
	}
	if b.BuildDate == "" {
		// Not the build's date, but the best there is: the commit's.
		b.BuildDate = settings["vcs.time"]
	}
	return b
}

func orUnknown(s string) string {
	if strings.TrimSpace(s) == "" {
		return "unknown"
	}
	return s
}
