package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// What learn writes, stray check --known reads: a slip of a learnt domain
// is caught, which it was not before.
func TestLearnOutputFeedsCheckKnown(t *testing.T) {
	t.Parallel()
	known := filepath.Join(t.TempDir(), "known.txt")
	code, stdout, stderr := run(t, "", "learn", "--protect", "mil", "--protect", "corp.example", "--year", "2024", "--output", known, realLog, olderLog)
	if code != ExitOK || stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	b, err := os.ReadFile(known)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# stray learn: known correspondents from ", "partner.example.com 1  # senders=1 days=1 first=2024-11-22 last=2024-11-22\n", "gmail.com "} {
		if !strings.Contains(string(b), want) {
			t.Errorf("known file lacks %q:\n%s", want, b)
		}
	}
	for _, leftOut := range []string{"\ngmial.com ", "\narmy.ml ", "\nnavy.ml "} {
		if strings.Contains(string(b), leftOut) {
			t.Errorf("flagged domain %q learnt:\n%s", leftOut, b)
		}
	}
	if !strings.Contains(stderr, "flagged, left out (check them with stray audit): ") || !strings.Contains(stderr, "gmial.com (") {
		t.Errorf("stderr does not name the flagged domains left out:\n%s", stderr)
	}
	// A slip of partner.example.com: unknown before, caught after.
	if code, out, _ := run(t, "", "check", "j@partner.exmaple.com"); code != ExitOK {
		t.Fatalf("without the learnt list: exit %d %s", code, out)
	}
	code, out, _ := run(t, "", "check", "--known", known, "--format", "json", "j@partner.exmaple.com")
	if code != ExitFlagged || !strings.Contains(out, `"intended":"partner.example.com"`) {
		t.Errorf("with the learnt list: exit %d %s", code, out)
	}
}

func TestLearnJSONAndThresholds(t *testing.T) {
	t.Parallel()
	code, out, _ := run(t, "", "learn", "--protect", "corp.example", "--year", "2024", "--format", "json", "--min-deliveries", "3", realLog)
	objs := jsonLines(t, out)
	if code != ExitOK || len(objs) != 1 || objs[0]["domain"] != "gmail.com" || objs[0]["deliveries"] != 3.0 || objs[0]["senders"] != 3.0 {
		t.Errorf("exit %d: %v", code, objs)
	}
	for _, k := range []string{"domain", "deliveries", "senders", "days", "first", "last"} {
		if _, ok := objs[0][k]; !ok {
			t.Errorf("no %q", k)
		}
	}
	// gmail.com's three deliveries fall on one day: --min-days 2 leaves
	// it out.
	if objs[0]["days"] != 1.0 {
		t.Errorf("gmail.com on %v days, want 1", objs[0]["days"])
	}
	code, out, _ = run(t, "", "learn", "--protect", "corp.example", "--year", "2024", "--format", "json", "--min-deliveries", "3", "--min-days", "2", realLog)
	if objs := jsonLines(t, out); code != ExitOK || len(objs) != 0 {
		t.Errorf("--min-days 2: exit %d: %v", code, objs)
	}
}

func TestLearnExitStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"learn", "--help"}, ExitOK},
		{[]string{"learn", "--format", "yaml", realLog}, ExitUsage},
		{[]string{"learn", "--min-senders", "-1", realLog}, ExitUsage},
		{[]string{"learn", "--min-days", "-1", realLog}, ExitUsage},
		{[]string{"learn", "--min-deliveries", "0", realLog}, ExitUsage},
		{[]string{"learn", "/nonexistent"}, ExitUsage},
		{[]string{"learn", "--output", "/nonexistent/dir/known.txt", realLog}, ExitUsage},
		{[]string{"learn", "--year", "2024", realLog}, ExitOK},
	} {
		if code, _, stderr := run(t, "", tc.args...); code != tc.want {
			t.Errorf("%v: exit %d, want %d: %s", tc.args, code, tc.want, stderr)
		}
	}
	// Standard input, when no file is given.
	code, out, _ := run(t, cleanLine, "learn")
	if code != ExitOK || !strings.Contains(out, "\ngmail.com 1  # senders=0") {
		t.Errorf("stdin: exit %d\n%s", code, out)
	}
}
