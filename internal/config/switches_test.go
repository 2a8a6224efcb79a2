package config

import (
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// boolKey is one boolean key of the config: its YAML path and where its
// value lives in a Config.
type boolKey struct {
	path  []string
	index []int
}

// boolKeys finds every boolean key (bool or *bool) of t by reflection, so
// that a boolean added later is covered without touching the tests.
func boolKeys(t reflect.Type, path []string, index []int) []boolKey {
	var keys []boolKey
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		p := append(append([]string(nil), path...), name)
		idx := append(append([]int(nil), index...), i)
		ft := f.Type
		switch {
		case ft.Kind() == reflect.Bool, ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Bool:
			keys = append(keys, boolKey{p, idx})
		case ft.Kind() == reflect.Struct:
			keys = append(keys, boolKeys(ft, p, idx)...)
		}
	}
	return keys
}

// value reads a boolean key of c; a nil *bool is reported as unset.
func (k boolKey) value(c *Config) (v, set bool) {
	f := reflect.ValueOf(c).Elem().FieldByIndex(k.index)
	if f.Kind() == reflect.Pointer {
		if f.IsNil() {
			return false, false
		}
		f = f.Elem()
	}
	return f.Bool(), true
}

// yamlSetting is a config file that sets only k to v.
func (k boolKey) yamlSetting(t *testing.T, v bool) string {
	var doc any = v
	for i := len(k.path) - 1; i >= 0; i-- {
		doc = map[string]any{k.path[i]: doc}
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestConfigHasTheSwitchesThatMatter(t *testing.T) {
	t.Parallel()
	var names []string
	for _, k := range boolKeys(reflect.TypeFor[Config](), nil, nil) {
		names = append(names, strings.Join(k.path, "."))
	}
	for _, want := range []string{"detect.builtin", "hold.enabled", "web.dashboard", "web.api"} {
		if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+want+" ") {
			t.Errorf("the reflection walk found %v, not %s", names, want)
		}
	}
}

// TestFlippingOneBooleanKeyLeavesEveryOtherKeyAlone is the guard for issue
// 17 point 1: "web: {dashboard: false}" turned detection off because the
// defaults shared one *bool.
func TestFlippingOneBooleanKeyLeavesEveryOtherKeyAlone(t *testing.T) {
	t.Parallel()
	keys := boolKeys(reflect.TypeFor[Config](), nil, nil)
	defaults, err := Parse(strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	for _, flip := range keys {
		name := strings.Join(flip.path, ".")
		def, _ := flip.value(defaults)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			src := flip.yamlSetting(t, !def)
			c, err := Parse(strings.NewReader(src))
			if err != nil {
				t.Fatalf("Parse(%q): %v", src, err)
			}
			if got, _ := flip.value(c); got != !def {
				t.Errorf("%s: got %v after setting it to %v", name, got, !def)
			}
			for _, other := range keys {
				if strings.Join(other.path, ".") == name {
					continue
				}
				want, _ := other.value(defaults)
				got, set := other.value(c)
				if !set || got != want {
					t.Errorf("setting %s to %v changed %s from %v to %v (set %v)", name, !def, strings.Join(other.path, "."), want, got, set)
				}
			}
			if got, _ := flip.value(Default()); got != def {
				t.Errorf("parsing changed Default(): %s is %v", name, got)
			}
		})
	}
}

func TestDefaultGivesEachBooleanKeyItsOwnValue(t *testing.T) {
	t.Parallel()
	c := Default()
	seen := map[*bool]string{}
	for _, k := range boolKeys(reflect.TypeFor[Config](), nil, nil) {
		f := reflect.ValueOf(c).Elem().FieldByIndex(k.index)
		if f.Kind() != reflect.Pointer || f.IsNil() {
			continue
		}
		name := strings.Join(k.path, ".")
		p := f.Interface().(*bool)
		if other, ok := seen[p]; ok {
			t.Errorf("Default(): %s and %s share one *bool: setting one sets both", other, name)
		}
		seen[p] = name
	}
}

func TestWebDashboardOffLeavesDetectionOn(t *testing.T) {
	t.Parallel()
	c, err := Parse(strings.NewReader("detect:\n  protect: [example.com]\nweb:\n  dashboard: false\n"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := c.Knowledge(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if k.NoBuiltin || !*c.Hold.Enabled || !*c.Web.API || *c.Web.Dashboard {
		t.Errorf("dashboard false gave builtin=%v hold=%v api=%v dashboard=%v; want only the dashboard off",
			!k.NoBuiltin, *c.Hold.Enabled, *c.Web.API, *c.Web.Dashboard)
	}
}
