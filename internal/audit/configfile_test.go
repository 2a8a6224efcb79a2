package audit

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseConfigFindsDestinationsInEveryKindOfFile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		want     []ConfigEntry // File is "f"
		includes []string
	}{
		{"virtual", "# comment\nsales@corp.example  j.doe@gmai.com, archive@corp.example\n\n@old.example @new.example\n",
			[]ConfigEntry{{Line: 2, Key: "sales@corp.example", Address: "j.doe@gmai.com"}, {Line: 2, Key: "sales@corp.example", Address: "archive@corp.example"},
				{Line: 4, Key: "@old.example", Address: "@new.example"}}, nil},
		{"continuation lines", "board@corp.example  chair@army.ml,\n   secretary@corp.example\n\t,treasurer@gmial.com\nnext@x.com y@z.com\n",
			[]ConfigEntry{{Line: 1, Key: "board@corp.example", Address: "chair@army.ml"}, {Line: 1, Key: "board@corp.example", Address: "secretary@corp.example"},
				{Line: 1, Key: "board@corp.example", Address: "treasurer@gmial.com"}, {Line: 4, Key: "next@x.com", Address: "y@z.com"}}, nil},
		{"a comment does not continue a line", "a@x.com b@y.com\n# c\n  c@z.com\n",
			[]ConfigEntry{{Line: 1, Key: "a@x.com", Address: "b@y.com"}, {Line: 1, Key: "a@x.com", Address: "c@z.com"}}, nil},
		{"aliases", "postmaster: root\nroot: admin@corp.example\nsupport: \"|/usr/bin/ticket --q a,b\", helpdesk@outlok.com, /var/spool/x\n\"odd name\": o@gmial.com\nlist: :include:/etc/mail/list.members\n",
			[]ConfigEntry{{Line: 2, Key: "root", Address: "admin@corp.example"}, {Line: 3, Key: "support", Address: "helpdesk@outlok.com"},
				{Line: 4, Key: `"odd name"`, Address: "o@gmial.com"}}, []string{"/etc/mail/list.members"}},
		{"member list", "jane@gmial.com\nJane Roe <jane.roe@army.ml>\n\"Kim, Lee\" <lee@x.org>\nbob@partner.com Bob Builder\n",
			[]ConfigEntry{{Line: 1, Key: "f", Address: "jane@gmial.com"}, {Line: 2, Key: "f", Address: "jane.roe@army.ml"},
				{Line: 3, Key: "f", Address: "lee@x.org"}, {Line: 4, Key: "f", Address: "bob@partner.com"}}, nil},
		{"regexp table", "if /^sales/\n/^sales-(.*)@corp\\.example$/  ${1}@gmial.com\nendif\n/a b/i x@y.com\n",
			[]ConfigEntry{{Line: 2, Key: `/^sales-(.*)@corp\.example$/`, Address: "${1}@gmial.com"}, {Line: 4, Key: "/a b/i", Address: "x@y.com"}}, nil},
		{"local results are not destinations", "info@corp.example  jdoe\ncorp.example  anything\nroot: admin, ops\n", nil, nil},
		{"CRLF and no final newline", "a@x.com b@gmial.com\r\nc@x.com d@y.com", []ConfigEntry{{Line: 1, Key: "a@x.com", Address: "b@gmial.com"}, {Line: 2, Key: "c@x.com", Address: "d@y.com"}}, nil},
	} {
		got, inc, err := ParseConfig(strings.NewReader(tc.in), "f")
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		for i := range tc.want {
			tc.want[i].File = "f"
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
		var incs []string
		for _, x := range inc {
			incs = append(incs, x.Address)
		}
		if !slices.Equal(incs, tc.includes) {
			t.Errorf("%s: includes %v, want %v", tc.name, incs, tc.includes)
		}
	}
}

func TestParseConfigErrorsNameTheLine(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"  starts with a continuation\n":        "f:1: continuation line without a line to continue",
		"ok@x.com y@z.com\n/unterminated x@y\n": "f:2: unterminated quote or pattern",
		"a: b\n\"unterminated: x@y.com\n":       "f:2: unterminated",
		"a: \"|cmd x@y.com\n":                   "f:1: unterminated",
		": x@y.com\n":                           "f:1: empty key",
	} {
		if _, _, err := ParseConfig(strings.NewReader(in), "f"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

func TestReadConfigFileFollowsIncludesStripsMapTypesAndStopsLoops(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("aliases", "board: :include:board.list, chair@corp.example\n")
	write("board.list", "Jane <jane@gmial.com>\n")
	got, err := ReadConfigFile("hash:" + filepath.Join(dir, "aliases"))
	if err != nil {
		t.Fatal(err)
	}
	want := []ConfigEntry{{File: filepath.Join(dir, "aliases"), Line: 1, Key: "board", Address: "chair@corp.example"},
		{File: filepath.Join(dir, "board.list"), Line: 1, Key: "board", Address: "jane@gmial.com"}}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	write("loop", "x: :include:loop\n")
	if _, err := ReadConfigFile(filepath.Join(dir, "loop")); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Errorf("include loop: %v", err)
	}
	write("missing", "x: :include:nope.list\n")
	if _, err := ReadConfigFile(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing:1") {
		t.Errorf("missing include: %v", err)
	}
	if _, err := ReadConfigFile(filepath.Join(dir, "absent")); err == nil {
		t.Error("absent file: no error")
	}
}

// FuzzParseConfig: any file is read or refused with an error naming its
// line; every entry found is an address with an '@' from a line that
// exists.
func FuzzParseConfig(f *testing.F) {
	for _, name := range []string{"testdata/golden/virtual", "testdata/golden/aliases", "testdata/golden/board.members"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("/^(.*)@x$/ ${1}@y.com\nif !/a/\nendif\n")
	f.Add("a: \"|cmd, x\", b@c\n  , d@e\n")
	f.Fuzz(func(t *testing.T, s string) {
		entries, includes, err := ParseConfig(strings.NewReader(s), "f")
		lines := strings.Count(s, "\n") + 1
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f:") {
				t.Fatalf("error without its line: %v", err)
			}
			return
		}
		for _, e := range append(entries, includes...) {
			if e.Line < 1 || e.Line > lines || e.File != "f" {
				t.Fatalf("entry %+v outside 1..%d", e, lines)
			}
		}
		for _, e := range entries {
			if !strings.Contains(e.Address, "@") || e.Key == "" {
				t.Fatalf("entry %+v is not an address", e)
			}
			// Continuation lines join with a blank; every word is the file's.
			for _, w := range strings.Fields(e.Address) {
				if !strings.Contains(s, w) {
					t.Fatalf("entry %+v is not from the file", e)
				}
			}
		}
	})
}
