package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/stray-mail/stray/internal/config"
)

// storeAgreement loads a config file whose store key is s and reports
// whether config validation accepts it, and whether the opener's parser
// takes what the daemon hands it (cfg.StoreDSN()). ok is false when the
// config does not decode at all (s is not a YAML string).
func storeAgreement(t *testing.T, dir, s string) (configOK, runtimeOK, ok bool, why string) {
	body, err := yaml.Marshal(map[string]string{"store": s})
	if err != nil {
		return false, false, false, ""
	}
	path := filepath.Join(dir, "stray.yaml")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(path)
	c, err := config.Parse(f)
	f.Close()
	if err != nil || c.Store != s {
		return false, false, false, ""
	}
	cfg, err := config.Load(path)
	configOK = err == nil
	if err != nil {
		why = err.Error()
		if !strings.Contains(why, "store: ") {
			t.Fatalf("store %q: a problem elsewhere: %v", s, err)
		}
		cfg = c
	}
	_, target, err := parseDSN(cfg.StoreDSN())
	if err != nil {
		why += " / " + err.Error()
	} else if configOK && strings.HasPrefix(cfg.StoreDSN(), "sqlite:") && !filepath.IsAbs(target) {
		t.Errorf("store %q: the SQLite path %q is not resolved against the config's directory", s, target)
	}
	return configOK, err == nil, true, why
}

// Issue 12: the store opener took a bare PATH.db that config validation
// refused, and the config took sqlite: (no file) and sqlite::memory:,
// which the opener refused. Both read the store key with package dsn now:
// each string is accepted by both or refused by both.
func TestStoreSettingMeansTheSameToConfigAndOpener(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		in string
		ok bool
	}{
		{"sqlite:stray.db", true},
		{"sqlite:/var/lib/stray/stray.db", true},
		{"sqlite:///var/lib/stray/stray.db", true},
		{"sqlite://data/stray.db", true},
		{"sqlite:data/quarantine", true},
		{"/var/lib/stray/stray.db", true},
		{"stray.db", true},
		{"data/stray.sqlite3", true},
		{"postgres://stray@127.0.0.1:5432/test?sslmode=disable", true},
		{"postgresql://stray@127.0.0.1/test", true},
		{"sqlite:", false},
		{"sqlite::memory:", false},
		{"sqlite:file:stray.db?mode=ro", false},
		{"/var/lib/stray/store", false},
		{"mysql://root@127.0.0.1/stray", false},
		{"host=127.0.0.1 user=stray", false},
		{"postgres://stray:pw@127.0.0.1:x/test", false},
	}
	for _, tt := range tests {
		configOK, runtimeOK, ok, why := storeAgreement(t, dir, tt.in)
		if !ok {
			t.Fatalf("%q does not survive YAML", tt.in)
		}
		if configOK != tt.ok || runtimeOK != tt.ok {
			t.Errorf("store %q: config accepts %v, opener accepts %v, want %v (%s)", tt.in, configOK, runtimeOK, tt.ok, why)
		}
	}
}

// A bare PATH.db in a config file is the file beside the config, as
// sqlite:PATH is, and opens there.
func TestBarePathInAConfigOpensBesideIt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "stray.yaml")
	if err := os.WriteFile(path, []byte("store: bare.db\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), cfg.StoreDSN())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, "bare.db")); err != nil {
		t.Errorf("the store is not beside the config: %v", err)
	}
}

func FuzzStoreSettingMeansTheSameToConfigAndOpener(f *testing.F) {
	for _, s := range []string{"sqlite:x.db", "sqlite:", "x.db", "x.sqlite3", "postgres://u:p@h/db", "postgresql://[::1", "sqlite:file:x", "sqlite:////x", "a=b"} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, s string) {
		if s == "" {
			return // no store
		}
		configOK, runtimeOK, ok, why := storeAgreement(t, dir, s)
		if ok && configOK != runtimeOK {
			t.Fatalf("store %q: config accepts %v, opener accepts %v (%s)", s, configOK, runtimeOK, why)
		}
	})
}
