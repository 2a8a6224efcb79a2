package config

import (
	"errors"
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
	f.Add("policy:\n  actions: {block: x, ok: reject}\n  scopes: [{senders: [a.b], actions: {hold: y}}]\nlog: {level: z}\n")
	f.Add("d: &d {level: loud}\nlog: *d\nhold: {expire: 3x, on_expiry: keep}\n")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(strings.NewReader(s))
		var p Problems
		if errors.As(err, &p) {
			for _, x := range p {
				if x == "" {
					t.Fatalf("an empty problem for %q", s)
				}
			}
		}
		if err != nil {
			if c != nil {
				t.Fatal("a config with an error")
			}
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

func TestRelaySettingsAreValidatedWithTheirPaths(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want []string // substrings of problems; none: valid
	}{
		{"relay without next hop", "listen: {relay: 127.0.0.1:10025}\n", []string{"relay.next_hop: required"}},
		{"valid relay", "listen: {relay: 127.0.0.1:10025}\nrelay: {next_hop: 127.0.0.1:25, allow: [10.0.0.0/8, 192.0.2.7]}\n", nil},
		{"bad range", "relay: {allow: [ten]}\n", []string{"relay.allow: \"ten\""}},
		{"bad next hop tls", "relay: {next_hop_tls: maybe}\n", []string{"relay.next_hop_tls"}},
		{"cert without key", "relay: {tls_cert: c.pem}\n", []string{"relay.tls_cert and relay.tls_key", "relay.tls_cert: stat"}},
		{"require tls without cert", "relay: {require_tls: true}\n", []string{"relay.require_tls: needs"}},
		{"bad certificate rules", "relay: {allow_certs: [\"*.com\", \"sha256:12\"]}\n", []string{"relay.allow_certs: \"*.com\"", "\"sha256:12\": want 64 hex digits", "relay.allow_certs: needs relay.tls_cert"}},
		{"client ca not PEM", "relay: {client_ca: c.yaml}\n", []string{"relay.client_ca: ", "no PEM certificate"}},
		{"client ca missing", "relay: {client_ca: nope.pem}\n", []string{"relay.client_ca: open"}},
		{"sink without domains", "listen: {sink: 127.0.0.1:2525}\n", []string{"sink.domains: required"}},
		{"pinned next hop", "relay: {next_hop_fingerprint: \"sha256:" + strings.Repeat("0a", 32) + "\", next_hop_helo: out.example.com}\n", nil},
		{"bad pin", "relay: {next_hop_fingerprint: \"0a0b\"}\n", []string{"relay.next_hop_fingerprint: \"0a0b\": want sha256:HEX"}},
		{"pin without TLS", "relay: {next_hop_tls: none, next_hop_fingerprint: \"sha256:" + strings.Repeat("0a", 32) + "\"}\n", []string{"relay.next_hop_fingerprint: needs STARTTLS"}},
		{"helo with a space", "relay: {next_hop_helo: \"a b\"}\n", []string{"relay.next_hop_helo"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "c.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("problems %q lack %q", err, w)
				}
			}
		})
	}
}
