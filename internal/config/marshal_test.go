package config

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// updateGolden rewrites testdata/marshal.golden: only for a change that adds
// a key, never to make a typed value marshal differently.
var updateGolden = flag.Bool("update", false, "rewrite testdata/marshal.golden")

// The typed enums (issue 12) write what the strings wrote: a config, its
// policy's effective values and the effective switches marshal to the same
// YAML and JSON as before. testdata/marshal.golden was written by the code
// with string fields.
func TestTypedEnumsMarshalAsTheStringsDid(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	for _, src := range []string{Example, "relay:\n  next_hop_tls: required\nlog: {level: debug, format: json}\npolicy:\n  mode: audit\n  address_literals: hold\n  actions: {warn: log}\n  scopes: [{senders: [a.example], actions: {block: tempfail}}]\n"} {
		c, err := Parse(strings.NewReader(src))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := yaml.Marshal(c)
		out.Write(b)
		fmt.Fprintln(&out, "---")
		b, _ = yaml.Marshal(c.Policy.Effective())
		out.Write(b)
		fmt.Fprintln(&out, "---")
		j, _ := json.Marshal(c)
		out.Write(j)
		fmt.Fprintln(&out)
		j, _ = json.Marshal(c.Effective())
		out.Write(j)
		fmt.Fprintln(&out)
	}
	if *updateGolden {
		if err := os.WriteFile("testdata/marshal.golden", out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("testdata/marshal.golden")
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Errorf("marshalled config differs from testdata/marshal.golden:\n%s", out.String())
	}
}
