package postconf

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestParseValuesReadsNameEqualsValueLines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		want     map[string]string
		err      bool
	}{
		{"values and empty values", "always_bcc = a@b.example\nsender_bcc_maps =\n", map[string]string{"always_bcc": "a@b.example", "sender_bcc_maps": ""}, false},
		{"a value with = and blanks", "virtual_alias_maps = hash:/x, inline:{ a=b }\n", map[string]string{"virtual_alias_maps": "hash:/x, inline:{ a=b }"}, false},
		{"blank lines", "\n\nalias_maps = hash:/etc/aliases\n", map[string]string{"alias_maps": "hash:/etc/aliases"}, false},
		{"no equals sign", "garbage\n", map[string]string{}, true},
		{"blank in a name", "two words = x\n", map[string]string{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseValues(strings.NewReader(tc.in))
			if (err != nil) != tc.err {
				t.Fatalf("err %v, want error %v", err, tc.err)
			}
			if !tc.err && len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestSourcesFindsTheFilesOfFileBasedMapsOnly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, list     string
		files, skipped []string
	}{
		{"hash and lmdb", "hash:/etc/postfix/virtual, lmdb:/etc/postfix/bcc", []string{"/etc/postfix/virtual", "/etc/postfix/bcc"}, nil},
		{"blanks as separators, texthash and proxy", "texthash:/a  proxy:hash:/b\tregexp:/c", []string{"/a", "/b", "/c"}, nil},
		{"databases are skipped", "ldap:/etc/postfix/ldap.cf, mysql:/etc/m.cf, nis:mail.aliases", nil, []string{"ldap:/etc/postfix/ldap.cf", "mysql:/etc/m.cf", "nis:mail.aliases"}},
		{"an inline map stays whole", "inline:{ a@b.example=c@d.example, e=f }, hash:/v", []string{"/v"}, []string{"inline:{ a@b.example=c@d.example, e=f }"}},
		{"a relative path is not guessed at", "hash:virtual", nil, []string{"hash:virtual"}},
		{"empty", "", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			files, skipped := Sources(tc.list)
			if !slices.Equal(files, tc.files) || !slices.Equal(skipped, tc.skipped) {
				t.Errorf("Sources(%q) = %q, %q; want %q, %q", tc.list, files, skipped, tc.files, tc.skipped)
			}
		})
	}
}

// requirePostconf skips without Postfix's postconf, unless
// STRAY_REQUIRE_POSTFIX is set.
func requirePostconf(t *testing.T) {
	t.Helper()
	if _, err := (Postconf{}).binary(); err != nil {
		if os.Getenv("STRAY_REQUIRE_POSTFIX") != "" {
			t.Fatalf("postconf required: %v", err)
		}
		t.Skip("skipping: no postconf (apt-get install postfix)")
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTargetsReadsEveryParameterThroughTheRealPostconf(t *testing.T) {
	t.Parallel()
	requirePostconf(t)
	dir := t.TempDir()
	virtual := filepath.Join(dir, "virtual")
	write(t, virtual, "# virtual\ninfo@example.com  x@army.ml, y@army.mil\n@old.example @new.example\n")
	write(t, filepath.Join(dir, "sender_bcc"), "ceo@example.com archive@archive.example\n")
	write(t, filepath.Join(dir, "aliases"), "root: admin@example.com\nlist: :include:"+filepath.Join(dir, "members")+"\n")
	write(t, filepath.Join(dir, "members"), "Jane <jane@partner.example>\n")
	write(t, filepath.Join(dir, "main.cf"), strings.Join([]string{
		"compatibility_level = 3.6",
		"always_bcc = copies@gmial.com",
		"sender_bcc_maps = texthash:" + filepath.Join(dir, "sender_bcc"),
		"my_virtual = hash:" + virtual,
		"virtual_alias_maps = $my_virtual, ldap:" + filepath.Join(dir, "ldap.cf"),
		"alias_maps = proxy:hash:" + filepath.Join(dir, "aliases") + ", hash:" + filepath.Join(dir, "missing"),
	}, "\n")+"\n")
	r, err := Postconf{ConfigDir: dir}.Targets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tg := range r.Targets {
		got = append(got, tg.Param+" "+filepath.Base(tg.File)+":"+strconv.Itoa(tg.Line)+" "+tg.Key+" "+tg.Address)
	}
	want := []string{
		"always_bcc main.cf:2 always_bcc copies@gmial.com",
		"sender_bcc_maps sender_bcc:1 ceo@example.com archive@archive.example",
		"virtual_alias_maps virtual:2 info@example.com x@army.ml",
		"virtual_alias_maps virtual:2 info@example.com y@army.mil",
		"virtual_alias_maps virtual:3 @old.example @new.example",
		"alias_maps aliases:1 root admin@example.com",
		"alias_maps members:1 list jane@partner.example",
	}
	if !slices.Equal(got, want) {
		t.Errorf("targets:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(r.Skipped) != 1 || !strings.HasPrefix(r.Skipped[0], "virtual_alias_maps: ldap:") {
		t.Errorf("skipped %q, want the ldap map", r.Skipped)
	}
	if len(r.Problems) != 1 || !strings.Contains(r.Problems[0].Error(), "missing") {
		t.Errorf("problems %v, want the missing alias file", r.Problems)
	}
}

func TestTargetsWithoutPostconfIsErrNotFound(t *testing.T) {
	t.Parallel()
	_, err := Postconf{Path: filepath.Join(t.TempDir(), "postconf")}.Targets(context.Background())
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("err %v, want ErrNotFound", err)
	}
}

func TestTargetsNamesAPostconfThatFails(t *testing.T) {
	t.Parallel()
	requirePostconf(t)
	_, err := Postconf{ConfigDir: filepath.Join(t.TempDir(), "nonexistent")}.Targets(context.Background())
	if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "main.cf") {
		t.Errorf("err %v, want postconf's own complaint about main.cf", err)
	}
}

func FuzzParseValues(f *testing.F) {
	f.Add("always_bcc = a@b.example\nsender_bcc_maps =\n")
	f.Add("virtual_alias_maps = hash:/x, inline:{ a=b }\n")
	f.Add("=\n \n=x")
	f.Fuzz(func(t *testing.T, s string) {
		values, err := ParseValues(strings.NewReader(s))
		if err != nil {
			return
		}
		for name := range values {
			if name == "" || strings.ContainsAny(name, " \t\n=") {
				t.Fatalf("bad name %q", name)
			}
		}
	})
}

func FuzzSources(f *testing.F) {
	f.Add("hash:/etc/postfix/virtual, proxy:lmdb:/b ldap:/c inline:{ a=b, c=d }")
	f.Add("{{{,}")
	f.Fuzz(func(t *testing.T, s string) {
		files, skipped := Sources(s)
		for _, p := range files {
			if !strings.HasPrefix(p, "/") {
				t.Fatalf("relative source %q from %q", p, s)
			}
		}
		if len(files)+len(skipped) > len(s) {
			t.Fatalf("%d maps from %d bytes", len(files)+len(skipped), len(s))
		}
	})
}
