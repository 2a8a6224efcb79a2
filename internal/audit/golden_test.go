package audit

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/maillog"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenAudit audits testdata/golden: mail.log is a real Postfix 3.7 log
// (captured by TestRealPostfixLog… with STRAY_CAPTURE_MAILLOG), and
// mail.log.1.gz an older synthetic one (go run
// ./internal/maillog/synth/synthlog -size 150K -seed 7 -start
// 2024-07-20T06:00:00Z -span 2400h -typo-rate 0.08 | gzip -9n), given
// newest first to show that rotated logs are read oldest first; virtual,
// aliases and board.members are configuration.
func goldenAudit(t *testing.T) (*Report, []Row) {
	t.Helper()
	var inputs []maillog.Input
	for _, name := range []string{"testdata/golden/mail.log", "testdata/golden/mail.log.1.gz"} {
		in, err := maillog.FileInput(name)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, in)
	}
	maillog.SortRotated(inputs)
	a := New(realChecker(t), Options{})
	var rows []Row
	files := []string{"testdata/golden/virtual", "hash:testdata/golden/aliases"}
	for _, f := range files {
		entries, err := ReadConfigFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if r, ok := a.ConfigEntry(e); ok {
				rows = append(rows, r)
			}
		}
	}
	stats, err := maillog.Read(context.Background(), inputs, maillog.Options{Location: time.UTC, Year: 2024}, func(d *maillog.Delivery) error {
		if r, ok := a.Delivery(d); ok {
			rows = append(rows, r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rep := a.Report(stats)
	rep.Generated = time.Date(2024, 12, 1, 9, 30, 0, 0, time.UTC)
	rep.Version = "test"
	rep.ConfigFiles = files
	for _, in := range inputs {
		rep.Inputs = append(rep.Inputs, in.Name)
	}
	return rep, rows
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/audit -run TestGolden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; if the change is intended, run go test ./internal/audit -run TestGolden -update\n--- got:\n%s", path, got)
	}
}

func TestGoldenReportsInEveryFormat(t *testing.T) {
	t.Parallel()
	rep, rows := goldenAudit(t)
	if rep.Leaks == 0 || len(rep.Config) == 0 || len(rep.Months) < 4 {
		t.Fatalf("the golden input should hold leaks over months and configuration findings: %d leaks, %d config, %d months", rep.Leaks, len(rep.Config), len(rep.Months))
	}
	var text, html, jsonl, csv bytes.Buffer
	if err := WriteText(&text, rep); err != nil {
		t.Fatal(err)
	}
	if err := WriteHTML(&html, rep); err != nil {
		t.Fatal(err)
	}
	jw, cw := NewJSONWriter(&jsonl), NewCSVWriter(&csv)
	for _, r := range rows {
		if err := jw.Write(r); err != nil {
			t.Fatal(err)
		}
		if err := cw.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	jw.Flush()
	cw.Flush()
	checkGolden(t, "report.txt", text.Bytes())
	checkGolden(t, "report.html", html.Bytes())
	checkGolden(t, "report.jsonl", jsonl.Bytes())
	checkGolden(t, "report.csv", csv.Bytes())
}
