package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, Stdio{In: strings.NewReader(stdin), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

func TestCheckJSONPrintsOneObjectPerInputLineInOrder(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 10*1024) + "@gmail.com"
	lines := []string{"j@army.ml", "", "a@b@c", long, "\xff\xfe@x.com", `"quoted local"@gmial.com`, "<J@GMAIL.COM.>",
		"a@xn--gmil-63d.com", "a@gmаil.com", "   ", "k@army.mil"}
	code, out, _ := run(t, strings.Join(lines, "\n")+"\n", "check", "--protect", "mil", "--format", "json")
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(got) != len(lines) {
		t.Fatalf("got %d output lines for %d input lines:\n%s", len(got), len(lines), out)
	}
	wantVerdict := []string{"block", "invalid", "invalid", "invalid", "invalid", "hold", "ok", "block", "block", "invalid", "ok"}
	wantError := []bool{false, true, true, true, true, false, false, false, false, true, false}
	for i, l := range got {
		var o map[string]any
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatalf("line %d: not JSON: %v: %s", i, err, l)
		}
		if o["verdict"] != wantVerdict[i] {
			t.Errorf("line %d (%q): verdict %v, want %s", i, lines[i], o["verdict"], wantVerdict[i])
		}
		if _, hasErr := o["error"]; hasErr != wantError[i] {
			t.Errorf("line %d (%q): error present %v, want %v: %s", i, lines[i], hasErr, wantError[i], l)
		}
		for _, k := range []string{"address", "verdict", "intended", "suggestion", "score", "reasons"} {
			if _, ok := o[k]; !ok {
				t.Errorf("line %d: missing %q: %s", i, k, l)
			}
		}
	}
	if !strings.Contains(got[0], `"suggestion":"j@army.mil"`) {
		t.Errorf("army.ml suggestion missing: %s", got[0])
	}
	if code != ExitFlagged {
		t.Errorf("exit %d, want %d (flagged and invalid lines)", code, ExitFlagged)
	}
}

// Issue 11: an unparsable address was reported with verdict ok next to its
// error, and one bad line made the whole run exit 2 as if it were a usage
// error.
func TestUnparsableAddressIsInvalidNotOkAndTheRunGoesOn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, stdin string
		args        []string
		wantCode    int
		wantOut     []string
	}{
		{"json among good lines", "a@gmail.com\nnot an address\nb@ymail.com\n", []string{"check", "--format", "json"}, ExitFlagged,
			[]string{`"verdict":"ok"`, `"verdict":"invalid"`, `"error":`}},
		{"text among good lines", "a@gmail.com\nnot an address\nb@gmial.com\n", []string{"check"}, ExitFlagged,
			[]string{"ok     a@gmail.com", "invalid not an address:", "hold   b@gmial.com"}},
		{"argument", "", []string{"check", "--format", "json", "a@b@c"}, ExitFlagged,
			[]string{`"verdict":"invalid"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out, _ := run(t, tc.stdin, tc.args...)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d:\n%s", code, tc.wantCode, out)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if tc.args[len(tc.args)-1] == "json" && strings.Count(out, "\n") != strings.Count(tc.stdin, "\n") {
				t.Errorf("want one output line per input line:\n%s", out)
			}
		})
	}
}

func TestCheckExitStatusIsLikeGrep(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"check", "a@gmail.com"}, ExitOK},
		{[]string{"check", "a@gmail.com", "b@gmial.com"}, ExitFlagged},
		{[]string{"check", "a@b@c"}, ExitFlagged}, // invalid counts as flagged
		{[]string{"check", "--format", "xml", "a@gmail.com"}, ExitUsage},
		{[]string{"check", "--known", "/nonexistent", "a@gmail.com"}, ExitUsage},
		{[]string{"check", "--nope"}, ExitUsage},
		{[]string{"check", "--help"}, ExitOK},
		{[]string{"frobnicate"}, ExitUsage},
		{[]string{}, ExitUsage},
		{[]string{"help"}, ExitOK},
		{[]string{"version"}, ExitOK},
	} {
		if code, _, _ := run(t, "", tc.args...); code != tc.want {
			t.Errorf("%v: exit %d, want %d", tc.args, code, tc.want)
		}
	}
}

func TestCheckTextSaysVerdictSuggestionAndWhy(t *testing.T) {
	t.Parallel()
	// Flags after addresses work too.
	code, out, _ := run(t, "", "check", "j@army.ml", "--protect", "mil")
	if code != ExitFlagged {
		t.Errorf("exit %d", code)
	}
	for _, want := range []string{"block", "j@army.ml", "did you mean j@army.mil?", "tld-confusion:"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestCheckHelpHasSynopsisAndExamples(t *testing.T) {
	t.Parallel()
	_, out, _ := run(t, "", "check", "--help")
	for _, want := range []string{"usage: stray check", "Examples:", "--protect", "--known", "--format", "Exit status"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestCheckReadsKnownFilesAndConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	known := filepath.Join(dir, "known.txt")
	os.WriteFile(known, []byte("# ours\nwestlandhigh.school.nz 120\n"), 0o644)
	cfg := filepath.Join(dir, "stray.yaml")
	os.WriteFile(cfg, []byte("detect:\n  protect: [example.com]\n  known: [known.txt]\n"), 0o644)

	code, out, _ := run(t, "", "check", "--known", known, "--format", "json", "a@wstlandhigh.school.nz")
	if code != ExitFlagged || !strings.Contains(out, `"intended":"westlandhigh.school.nz"`) {
		t.Errorf("--known: exit %d, %s", code, out)
	}
	code, out, _ = run(t, "a@wstlandhigh.school.nz\nb@example.cm\n", "check", "--config", cfg, "--format", "json")
	if code != ExitFlagged || !strings.Contains(out, `"intended":"westlandhigh.school.nz"`) || !strings.Contains(out, `"verdict":"block"`) {
		t.Errorf("--config: exit %d, %s", code, out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("detect:\n  protekt: [x]\n"), 0o644)
	if code, _, errOut := run(t, "", "check", "--config", bad, "a@b.com"); code != ExitUsage || !strings.Contains(errOut, "protekt") {
		t.Errorf("unknown key: exit %d, %s", code, errOut)
	}
}

func TestEachLineHandlesCRLFNoFinalNewlineAndHugeLines(t *testing.T) {
	t.Parallel()
	in := "a@b.com\r\n" + strings.Repeat("y", 200*1024) + "\nlast@x.org"
	var got []string
	if err := eachLine(context.Background(), strings.NewReader(in), func(s string) { got = append(got, s) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0] != "a@b.com" || got[2] != "last@x.org" || len(got[1]) > maxLine {
		t.Errorf("got %d lines: %q, len(middle)=%d", len(got), got[0], len(got[1]))
	}
}

func TestCheckDenyFileFromScanBlocksRegisteredLookalikes(t *testing.T) {
	t.Parallel()
	deny := filepath.Join(t.TempDir(), "deny.txt")
	os.WriteFile(deny, []byte("# stray scan: registered lookalikes that accept mail\n# DOMAIN ORIGINAL # why\narmymil.com army.mil # missing-dot, registered, MX mx.armymil.com\n"), 0o644)
	code, out, _ := run(t, "", "check", "--deny", deny, "--format", "json", "a@armymil.com")
	if code != ExitFlagged || !strings.Contains(out, `"verdict":"block"`) || !strings.Contains(out, `"suggestion":"a@army.mil"`) || !strings.Contains(out, "registered-lookalike") {
		t.Errorf("exit %d: %s", code, out)
	}
}

func TestBlankInputLinesNeitherFlagNorDisappearFromJSON(t *testing.T) {
	t.Parallel()
	in := "ok@gmail.com\n\n   \nfine@example.org\n\n"
	code, out, errOut := run(t, in, "check")
	if code != ExitOK || out != "ok     ok@gmail.com\nok     fine@example.org\n" {
		t.Fatalf("text: exit %d, %q %q; want 0 and the two addresses only", code, out, errOut)
	}
	code, out, _ = run(t, in, "check", "--format", "json")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != ExitOK || len(lines) != 5 || !strings.Contains(lines[1], `"verdict":"invalid"`) || !strings.Contains(lines[1], "blank line") {
		t.Fatalf("json: exit %d, %d lines: %q", code, len(lines), out)
	}
	if code, _, _ := run(t, in+"j@gmial.com\n", "check"); code != ExitFlagged {
		t.Fatalf("a flagged address after blank lines: exit %d, want 1", code)
	}
}

func TestALongInvalidAddressIsClippedInTheOutput(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 10*1024) + "@@x"
	for _, format := range []string{"text", "json"} {
		code, out, _ := run(t, long+"\n", "check", "--format", format)
		if code != ExitFlagged || len(out) > 1024 || !strings.Contains(out, "(10243 bytes)") {
			t.Errorf("%s: exit %d, %d bytes of output: %.200q", format, code, len(out), out)
		}
	}
}

func TestCheckWithoutProtectedDomainsSaysSoOnce(t *testing.T) {
	t.Parallel()
	_, out, errOut := run(t, "j.smith@army.ml\nk@army.ml\n", "check")
	if strings.Count(errOut, "no protected domains") != 1 || strings.Contains(out, "no protected") {
		t.Fatalf("without --protect: stdout %q, stderr %q; want the hint once, on stderr", out, errOut)
	}
	if _, _, errOut := run(t, "j.smith@army.ml\n", "check", "--protect", "mil"); errOut != "" {
		t.Fatalf("with --protect: stderr %q, want nothing", errOut)
	}
}

// Issue 17: with army.ml in a known file, stray check said ok.
func TestCheckWithAKnownLookalikeOfAProtectedDomainStillBlocks(t *testing.T) {
	t.Parallel()
	known := filepath.Join(t.TempDir(), "k.txt")
	if err := os.WriteFile(known, []byte("army.ml 1\npartner.example 40\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := run(t, "", "check", "--protect", "mil", "--known", known, "j@army.ml", "x@partner.example")
	if code != 1 || !strings.HasPrefix(out, "block  j@army.ml") || !strings.Contains(out, "ok     x@partner.example") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}
