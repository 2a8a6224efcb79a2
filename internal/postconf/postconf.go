// Package postconf finds, through Postfix's own postconf command, the
// addresses that Postfix sends mail to after stray's RCPT-time check:
// always_bcc, sender_bcc_maps, recipient_bcc_maps, virtual_alias_maps and
// alias_maps. stray serve checks them at start, because a lookalike there
// leaks mail that stray never sees.
//
// It only reads: main.cf through postconf, and the source files of the
// file-based maps (through internal/audit's configuration reader). It never
// decides whether an address is a typo, and never changes Postfix.
package postconf

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/stray-mail/stray/internal/audit"
)

// ErrNotFound is returned when there is no postconf to run: Postfix is not
// installed here.
var ErrNotFound = errors.New("postconf: not found")

// Postconf runs Postfix's postconf command.
type Postconf struct {
	// Path is the postconf binary; "" looks for postconf in PATH, then in
	// /usr/sbin (where Debian puts it, often outside a daemon's PATH).
	Path string
	// ConfigDir is the Postfix configuration directory (postconf -c);
	// "" is Postfix's default (/etc/postfix).
	ConfigDir string
}

// binary resolves the postconf binary.
func (p Postconf) binary() (string, error) {
	if p.Path != "" {
		if _, err := exec.LookPath(p.Path); err != nil {
			return "", fmt.Errorf("%w: %s", ErrNotFound, p.Path)
		}
		return p.Path, nil
	}
	for _, c := range []string{"postconf", "/usr/sbin/postconf"} {
		if path, err := exec.LookPath(c); err == nil {
			return path, nil
		}
	}
	return "", ErrNotFound
}

// Values runs "postconf -x NAME..." ($names expanded) and returns each
// parameter's value. An unknown name is left out.
func (p Postconf) Values(ctx context.Context, names ...string) (map[string]string, error) {
	bin, err := p.binary()
	if err != nil {
		return nil, err
	}
	args := []string{"-x"}
	if p.ConfigDir != "" {
		args = append(args, "-c", p.ConfigDir)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, append(args, names...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("postconf: %w: %s", err, firstLine(stderr.String()))
	}
	return ParseValues(bytes.NewReader(out))
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// maxValue bounds one parameter's value.
const maxValue = 1 << 20

// ParseValues reads postconf's output: one "name = value" line per
// parameter (the value may be empty).
func ParseValues(r io.Reader) (map[string]string, error) {
	values := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxValue)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return values, fmt.Errorf("postconf: output line %d: want \"name = value\"", n)
		}
		values[name] = strings.TrimSpace(value)
	}
	if err := sc.Err(); err != nil {
		return values, fmt.Errorf("postconf: output line %d: %w", n+1, err)
	}
	return values, nil
}

// fileType reports whether a lookup table type's source is a file that
// audit.ReadConfigFile reads: the indexed types are built by postmap from
// the file named without the type, the others are that file.
func fileType(t string) bool {
	switch t {
	case "hash", "btree", "lmdb", "cdb", "dbm", "sdbm", "texthash", "regexp", "pcre":
		return true
	}
	return false
}

// Sources splits a main.cf map list ("hash:/etc/postfix/virtual,
// proxy:lmdb:/etc/postfix/bcc") into the source files of its file-based
// maps, and the map names it cannot read that way (ldap:, mysql:,
// inline:{...}, nis:, ...). proxy: is looked through.
func Sources(list string) (files, skipped []string) {
	for _, m := range splitMaps(list) {
		name := strings.TrimPrefix(m, "proxy:")
		typ, path, ok := strings.Cut(name, ":")
		if !ok || !fileType(typ) || !strings.HasPrefix(path, "/") {
			skipped = append(skipped, m)
			continue
		}
		files = append(files, path)
	}
	return files, skipped
}

// splitMaps splits a map list on commas and blanks, keeping an inline
// map's {...} whole.
func splitMaps(s string) []string {
	var out []string
	var cur strings.Builder
	depth := 0
	for _, c := range s {
		switch {
		case c == '{':
			depth++
		case c == '}' && depth > 0:
			depth--
		case depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n'):
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
			continue
		}
		cur.WriteRune(c)
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// Target is one address that Postfix sends mail to after the RCPT-time
// check, and where it is configured.
type Target struct {
	// Param is the main.cf parameter: always_bcc, sender_bcc_maps,
	// recipient_bcc_maps, virtual_alias_maps or alias_maps.
	Param string
	// File, Line, Key (what the entry matches) and Address (the
	// destination; "@domain" for a whole-domain rewrite).
	audit.ConfigEntry
}

// Params are the main.cf parameters whose addresses get mail after the
// RCPT-time check, in the order Targets reads them.
func Params() []string {
	return []string{"always_bcc", "sender_bcc_maps", "recipient_bcc_maps", "virtual_alias_maps", "alias_maps"}
}

// Report is what Targets found.
type Report struct {
	Targets []Target
	// Files are the map source files read; Skipped the maps that are not
	// files (ldap:, mysql:, ...), by parameter.
	Files   []string
	Skipped []string
	// Problems are files that could not be read or parsed (what could be
	// read of them is in Targets).
	Problems []error
}

// Targets reads the addresses that Postfix sends mail to besides, or
// instead of, the recipients checked at RCPT time. It fails only when
// postconf cannot be run (ErrNotFound when it is not installed).
func (p Postconf) Targets(ctx context.Context) (*Report, error) {
	values, err := p.Values(ctx, append(Params(), "config_directory")...)
	if err != nil {
		return nil, err
	}
	r := &Report{}
	mainCF := filepath.Join(values["config_directory"], "main.cf")
	if p.ConfigDir != "" {
		mainCF = filepath.Join(p.ConfigDir, "main.cf")
	}
	for _, param := range Params() {
		v := values[param]
		if v == "" {
			continue
		}
		if param == "always_bcc" {
			r.Targets = append(r.Targets, Target{Param: param, ConfigEntry: audit.ConfigEntry{
				File: mainCF, Line: lineOf(mainCF, param), Key: param, Address: v}})
			continue
		}
		files, skipped := Sources(v)
		for _, s := range skipped {
			r.Skipped = append(r.Skipped, param+": "+s)
		}
		for _, f := range files {
			if err := ctx.Err(); err != nil {
				return r, err
			}
			entries, err := audit.ReadConfigFile(f)
			if err != nil {
				r.Problems = append(r.Problems, fmt.Errorf("%s: %w", param, err))
			}
			r.Files = append(r.Files, f)
			for _, e := range entries {
				r.Targets = append(r.Targets, Target{Param: param, ConfigEntry: e})
			}
		}
	}
	return r, nil
}

// lineOf is the number of the main.cf line that sets param, or 0.
func lineOf(mainCF, param string) int {
	f, err := os.Open(mainCF)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), maxValue)
	line := 0
	for n := 1; sc.Scan(); n++ {
		name, _, ok := strings.Cut(sc.Text(), "=")
		if ok && strings.TrimSpace(name) == param && !strings.HasPrefix(name, " ") && !strings.HasPrefix(name, "\t") {
			line = n // the last setting wins, as in Postfix
		}
	}
	return line
}
