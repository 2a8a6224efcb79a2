package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkNewWithLargeKnownFile is a daemon's start (config, knowledge
// files, engine; no store, no listener) with a 200 000-line known file: the
// cost issue 12's double read of the knowledge files doubled. Compare two
// trees in alternating rounds with scripts/daemon-start-ab.sh.
func BenchmarkNewWithLargeKnownFile(b *testing.B) {
	dir := b.TempDir()
	var known strings.Builder
	for i := range 200_000 {
		fmt.Fprintf(&known, "corr%06d-partner.example %d\n", i, 1+i%50)
	}
	kf := filepath.Join(dir, "known.txt")
	if err := os.WriteFile(kf, []byte(known.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	cfg := filepath.Join(dir, "stray.yaml")
	body := fmt.Sprintf("store: \"\"\ndetect:\n  protect: [example.com]\n  known: [%s]\nlisten:\n  milter: \"\"\n  policy: \"\"\n  http: \"\"\n", kf)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		d, err := New(context.Background(), Options{ConfigPath: cfg})
		if err != nil {
			b.Fatal(err)
		}
		d.Close()
	}
}
