package store

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenExistingRefusesToCreateASQLiteStore(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "stray.db")
	_, err := OpenExisting(context.Background(), "sqlite:"+path)
	if !errors.Is(err, ErrNoStore) || !strings.Contains(err.Error(), path) {
		t.Fatalf("OpenExisting on a missing file: %v, want ErrNoStore naming the path", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenExisting created %s", path)
	}
	s, err := Open(context.Background(), "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenExisting(context.Background(), "sqlite:"+path)
	if err != nil {
		t.Fatalf("OpenExisting on the created store: %v", err)
	}
	s.Close()
}
