package detect

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCheck: any input line gives either a parse error or a finding whose
// fields are consistent; never a panic.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"j@army.ml", "a@gmial.com", "a@gmаil.com", "a@xn--gmil-63d.com", "a@b@c", "", "<a@gmail.con>",
		`"x y"@example.cm`, "a@uscompany.com", "a@[192.0.2.1]", "a@яндекс.рф", "a@x.y.z.ml", "a@-.com", "a@gmail.com.", "\xff"} {
		f.Add(s)
	}
	c := mustChecker(f, Knowledge{Protected: []string{"mil", "example.com"}, Known: map[string]int{"jble.af.mil": 3, "partner.co.uk": 9}})
	f.Fuzz(func(t *testing.T, s string) {
		fd, err := c.Check(s)
		if err != nil {
			return
		}
		if fd.Verdict > Block || fd.Score < 0 || fd.Score > 1 {
			t.Fatalf("%q: bad verdict/score %v %v", s, fd.Verdict, fd.Score)
		}
		if fd.Verdict == OK && (fd.Suggestion != "" || len(fd.Reasons) != 0) {
			t.Fatalf("%q: ok with suggestion %q reasons %v", s, fd.Suggestion, fd.Reasons)
		}
		if fd.Verdict != OK && len(fd.Reasons) == 0 {
			t.Fatalf("%q: flagged without a reason", s)
		}
		if fd.Suggestion != "" && (fd.Intended == fd.Domain || !strings.HasSuffix(fd.Suggestion, "@"+fd.Intended)) {
			t.Fatalf("%q: suggestion %q does not fit intended %q", s, fd.Suggestion, fd.Intended)
		}
		for _, r := range fd.Reasons {
			if r.Kind == "" || !utf8.ValidString(r.Message) {
				t.Fatalf("%q: bad reason %+v", s, r)
			}
		}
	})
}

// FuzzReadKnown: any file is read or refused with an error naming a line.
func FuzzReadKnown(f *testing.F) {
	f.Add("example.com 3\n# c\nfoo.org\n")
	f.Add("a.com x\n")
	f.Add("\xff\x00 1\n")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ReadKnown(strings.NewReader(s))
		if err != nil {
			if !strings.Contains(err.Error(), "line ") {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		for d, n := range m {
			if n < 0 || d == "" || strings.ToLower(d) != d {
				t.Fatalf("bad entry %q %d", d, n)
			}
		}
	})
}
