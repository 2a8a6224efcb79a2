package cli

import (
	"strings"
	"testing"
)

func TestAuditSaysHowManyLinesItSkippedAndKeepsTheFindingsExitStatus(t *testing.T) {
	t.Parallel()
	const bad = "garbage line without a timestamp\n"
	for _, tc := range []struct {
		name   string
		log    string
		format string
		exit   int
		stderr []string
	}{
		{"a leak among skipped lines", cleanLine + bad + bad + leakLine, "text", ExitFlagged,
			[]string{"2 malformed lines skipped", "m.log:2", "m.log:3"}},
		{"clean lines among skipped ones", cleanLine + bad, "text", ExitOK,
			[]string{"1 malformed lines skipped", "m.log:2"}},
		{"JSON rows say it too", bad + leakLine, "json", ExitFlagged,
			[]string{"1 malformed lines skipped", "m.log:1"}},
		{"nothing readable at all", bad + bad + bad, "text", ExitUsage,
			[]string{"3 malformed lines skipped", "no line of the logs could be read"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, _, stderr := run(t, "", auditArgs("--format", tc.format, writeTemp(t, "m.log", tc.log))...)
			if code != tc.exit {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.exit, stderr)
			}
			for _, want := range tc.stderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
		})
	}
}

func TestAuditOfAnEmptyLogIsNotAnError(t *testing.T) {
	t.Parallel()
	if code, _, stderr := run(t, "", auditArgs(writeTemp(t, "empty.log", ""))...); code != ExitOK {
		t.Errorf("exit %d, stderr %s", code, stderr)
	}
}
