package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stray-mail/stray/internal/config"
)

var update = flag.Bool("update", false, "rewrite docs/cli.md and docs/config.md and golden files")

// TestGeneratedDocsAreCurrent: docs/cli.md is every command's --help and
// docs/config.md the annotated example config; CI fails when they are stale.
// Regenerate with: go test ./internal/cli -run TestGeneratedDocs -update
func TestGeneratedDocsAreCurrent(t *testing.T) {
	var cli bytes.Buffer
	cli.WriteString("# stray command-line reference\n\nGenerated from the code (`go test ./internal/cli -run TestGeneratedDocs -update`); do not edit.\n\n")
	var usage bytes.Buffer
	Run(context.Background(), []string{"help"}, Stdio{In: strings.NewReader(""), Out: &usage, Err: &usage})
	fmt.Fprintf(&cli, "```\n%s```\n", usage.String())
	for _, c := range commands() {
		var out bytes.Buffer
		Run(context.Background(), []string{c.name, "--help"}, Stdio{In: strings.NewReader(""), Out: &out, Err: &out})
		fmt.Fprintf(&cli, "\n## stray %s\n\n```\n%s```\n", c.name, out.String())
	}
	cfg := "# stray configuration reference\n\nGenerated from the code (`internal/config/example.go`); do not edit.\n" +
		"Every key, with its default or a typical value:\n\n```yaml\n" + config.Example + "```\n"
	for path, want := range map[string]string{"../../docs/cli.md": cli.String(), "../../docs/config.md": cfg} {
		if *update {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("%s is stale: run go test ./internal/cli -run TestGeneratedDocs -update", path)
		}
	}
}
