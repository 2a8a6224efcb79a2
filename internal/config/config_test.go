package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestUnknownKeysAreErrors(t *testing.T) {
	t.Parallel()
	if _, err := Parse(strings.NewReader("detect:\n  protekt: [mil]\n")); err == nil || !strings.Contains(err.Error(), "protekt") {
		t.Errorf("got %v, want an error naming protekt", err)
	}
}

func TestValidateReportsEveryProblemWithItsPath(t *testing.T) {
	t.Parallel()
	c, err := Parse(strings.NewReader("detect:\n  protect: [mil, 'bad domain', '']\n  known: [/nonexistent/a, /nonexistent/b]\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	for _, want := range []string{"detect.protect[1]", "detect.protect[2]", "detect.known[0]", "detect.known[1]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
}

func TestDefaultsAndRelativeKnownPaths(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "k.txt"), []byte("partner.example 4\n"), 0o644)
	path := filepath.Join(dir, "stray.yaml")
	os.WriteFile(path, []byte("detect:\n  protect: [army.mil]\n  known: [k.txt]\n"), 0o644)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := c.Knowledge([]string{"example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if k.NoBuiltin || len(k.Protected) != 2 || k.Known["partner.example"] != 4 {
		t.Errorf("got %+v", k)
	}
	empty, err := Parse(strings.NewReader(""))
	if err != nil || empty.Detect.Builtin == nil || !*empty.Detect.Builtin {
		t.Errorf("empty config: %+v, %v", empty, err)
	}
}

func FuzzConfig(f *testing.F) {
	f.Add("detect:\n  protect: [mil]\n  known: [k.txt]\n  builtin: false\n")
	f.Add("detect: [")
	f.Add("{}")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(strings.NewReader(s))
		if err != nil {
			return
		}
		if c.Detect.Builtin == nil {
			t.Fatal("builtin default lost")
		}
		seen := map[*bool]string{}
		for _, k := range boolKeys(reflect.TypeFor[Config](), nil, nil) {
			f := reflect.ValueOf(c).Elem().FieldByIndex(k.index)
			if f.Kind() != reflect.Pointer || f.IsNil() {
				continue
			}
			name := strings.Join(k.path, ".")
			if other, ok := seen[f.Interface().(*bool)]; ok {
				t.Fatalf("%s and %s share one value after parsing %q", other, name, s)
			}
			seen[f.Interface().(*bool)] = name
		}
		_ = c.Validate()
	})
}

func TestExampleDecodesStrictlyAndValidates(t *testing.T) {
	t.Parallel()
	c, err := Parse(strings.NewReader(Example))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	d := Default()
	if c.Listen != d.Listen || c.Log != d.Log || c.ShutdownTimeout != d.ShutdownTimeout {
		t.Errorf("the example's values differ from the defaults: %+v vs %+v", c, d)
	}
}
