package scan

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func exposed(d, orig string, st Status, mx, ns []string, accepts bool) Result {
	return Result{Domain: d, Original: orig, Kind: "tld-swap", Status: st, A: []string{}, AAAA: []string{}, MX: mx, NS: ns, AcceptsMail: &accepts}
}

var (
	t0 = time.Date(2026, 7, 1, 3, 0, 0, 0, time.UTC)
	t1 = t0.Add(7 * 24 * time.Hour)
)

// The .ml hand-over of July 2023: the same lookalikes, new name servers and
// a new mail server, one gone, one new, one whose lookup failed.
func TestDiffReportsNewGoneAndChangedAndKeepsUnknownsAsTheyWere(t *testing.T) {
	t.Parallel()
	first := []Result{
		exposed("army.ml", "army.mil", Registered, []string{"mail.army.ml"}, []string{"ns.freenom.example"}, true),
		exposed("army.il", "army.mil", Registered, []string{}, []string{"ns.il.example"}, true),
		exposed("gmail.cm", "gmail.com", Registered, []string{}, []string{"ns.cm.example"}, false),
		exposed("gamil.com", "gmail.com", Registered, []string{}, []string{"ns.x.example"}, true),
	}
	s0 := (&State{Version: StateVersion, Domains: map[string]Record{}}).Next(first, t0)
	if d := DiffSince(&State{Domains: map[string]Record{}}, first, t0); len(d.New) != 4 || !d.Alert() {
		t.Fatalf("first scan: %d new, alert %v; want all 4 new", len(d.New), d.Alert())
	}
	second := []Result{
		exposed("army.ml", "army.mil", Registered, []string{"mx.mali.example"}, []string{"ns.ml.example"}, true),
		{Domain: "army.il", Original: "army.mil", Status: Unregistered},
		{Domain: "gamil.com", Original: "gmail.com", Status: Unknown, Errors: []string{"NS gamil.com: SERVFAIL"}},
		exposed("gmail.cm", "gmail.com", Registered, []string{}, []string{"ns.cm.example"}, false),
		exposed("armym.il", "army.mil", Registered, []string{}, []string{"ns.x.example"}, true),
	}
	d := DiffSince(s0, second, t1)
	if len(d.New) != 1 || d.New[0].Domain != "armym.il" {
		t.Errorf("new: %+v, want armym.il", d.New)
	}
	if len(d.Gone) != 1 || d.Gone[0].Domain != "army.il" {
		t.Errorf("gone: %+v, want army.il", d.Gone)
	}
	if len(d.Changed) != 1 || d.Changed[0].Domain != "army.ml" {
		t.Fatalf("changed: %+v, want army.ml", d.Changed)
	}
	fields := map[string]FieldChange{}
	for _, f := range d.Changed[0].Fields {
		fields[f.Field] = f
	}
	if f := fields["ns"]; len(f.Added) != 1 || f.Added[0] != "ns.ml.example" || f.Removed[0] != "ns.freenom.example" {
		t.Errorf("ns change: %+v", f)
	}
	if _, ok := fields["mx"]; !ok {
		t.Errorf("mx change missing: %+v", d.Changed[0].Fields)
	}
	if !d.Alert() {
		t.Error("new lookalike and NS change: no alert")
	}
	s1 := s0.Next(second, t1)
	if _, ok := s1.Domains["army.il"]; ok {
		t.Error("army.il kept after NXDOMAIN")
	}
	if r, ok := s1.Domains["gamil.com"]; !ok || r.LastSeen != t0 {
		t.Errorf("gamil.com (lookup failed) not kept as it was: %+v", r)
	}
	if r := s1.Domains["army.ml"]; r.FirstSeen != t0 || r.LastSeen != t1 || r.MX[0] != "mx.mali.example" {
		t.Errorf("army.ml: %+v", r)
	}
	// The same results again: nothing to say.
	if d := DiffSince(s1, second, t1); !d.Empty() || d.Alert() {
		t.Errorf("unchanged scan: %+v", d)
	}
}

func TestAddressChangesAloneDoNotAlert(t *testing.T) {
	t.Parallel()
	r := exposed("gmail.co", "gmail.com", Registered, []string{}, []string{"ns.example"}, true)
	r.A = []string{"192.0.2.1"}
	s := (&State{Domains: map[string]Record{}}).Next([]Result{r}, t0)
	r.A = []string{"192.0.2.2"}
	d := DiffSince(s, []Result{r}, t1)
	if len(d.Changed) != 1 || d.Alert() {
		t.Errorf("address move: %d changed, alert %v; want 1 change, no alert", len(d.Changed), d.Alert())
	}
}

func TestStateSurvivesSaveAndLoad(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.json")
	empty, err := LoadState(path)
	if err != nil || len(empty.Domains) != 0 {
		t.Fatalf("missing file: %v, %+v", err, empty)
	}
	s := empty.Next([]Result{exposed("army.ml", "army.mil", Registered, []string{"mail.army.ml"}, []string{"ns1.army.ml"}, true)}, t0)
	if err := s.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if r := back.Domains["army.ml"]; r.MX[0] != "mail.army.ml" || !*r.AcceptsMail || !r.FirstSeen.Equal(t0) {
		t.Errorf("round trip: %+v", r)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestReadStateRejectsWhatItDidNotWrite(t *testing.T) {
	t.Parallel()
	for name, in := range map[string]string{
		"not JSON":       "army.ml registered",
		"unknown field":  `{"version":1,"domains":{},"extra":1}`,
		"old version":    `{"version":0,"domains":{}}`,
		"bad domain":     `{"version":1,"domains":{"Army.ML":{"status":"registered"}}}`,
		"bad status":     `{"version":1,"domains":{"army.ml":{"status":"unknown"}}}`,
		"bad record":     `{"version":1,"domains":{"army.ml":{"status":"registered","mx":["a b"]}}}`,
		"trailing data":  `{"version":1,"domains":{}} {}`,
		"empty":          ``,
		"wrong type":     `{"version":"1"}`,
		"domain too big": `{"version":1,"domains":{"` + strings.Repeat("a", 64) + `.com":{"status":"registered"}}}`,
	} {
		if _, err := ReadState(strings.NewReader(in)); err == nil {
			t.Errorf("%s: accepted %q", name, in)
		}
	}
}

func TestDenyListHasMailAcceptingLookalikesOutsideTheProtectedSpace(t *testing.T) {
	t.Parallel()
	rs := []Result{
		exposed("army.ml", "army.mil", Registered, []string{"mail.army.ml"}, nil, true),
		exposed("armymil.com", "army.mil", Registered, nil, nil, false), // null MX
		exposed("amry.mil", "army.mil", Registered, nil, nil, true),     // inside mil
		exposed("gmail.om", "gmail.com", Wildcard, []string{"mx.w.example"}, nil, true),
		{Domain: "gmial.com", Original: "gmail.com", Status: Unknown},
		{Domain: "gmal.com", Original: "gmail.com", Status: Unregistered},
	}
	var b bytes.Buffer
	if err := WriteDeny(&b, rs, []string{"mil"}, t0); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range strings.Split(b.String(), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			got = append(got, strings.Fields(l)[0]+" "+strings.Fields(l)[1])
		}
	}
	if strings.Join(got, ",") != "army.ml army.mil,gmail.om gmail.com" {
		t.Errorf("deny list: %q\n%s", got, b.String())
	}
}
