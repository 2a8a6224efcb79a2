package audit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ConfigEntry is one destination address found in a mail configuration
// file: where mail for Key is sent (or copied) to.
type ConfigEntry struct {
	File string
	Line int
	// Key is what the entry matches: an alias name, a virtual or BCC-map
	// pattern; for a member list, the file's base name.
	Key string
	// Address is the destination ("@domain" for a whole-domain rewrite).
	Address string
}

// maxConfigLine bounds one logical line of a configuration file.
const maxConfigLine = 1 << 20

// maxIncludeDepth bounds :include: nesting (and so include loops).
const maxIncludeDepth = 4

// ReadConfigFile reads the destination addresses of a Postfix lookup table
// source or alias file, or of a mailing-list member list, at path. A
// "type:" prefix (hash:, lmdb:, texthash:, regexp:, pcre:) is stripped so
// that main.cf's map names can be pasted. Aliases' ":include:" files are
// read as member lists.
func ReadConfigFile(path string) ([]ConfigEntry, error) {
	return readConfigPath(trimMapType(path), 0)
}

func trimMapType(path string) string {
	if i := strings.IndexByte(path, ':'); i > 0 && !strings.ContainsAny(path[:i], "/\\.") {
		switch path[:i] {
		case "hash", "btree", "lmdb", "cdb", "dbm", "sdbm", "texthash", "regexp", "pcre", "inline", "static":
			return path[i+1:]
		}
	}
	return path
}

func readConfigPath(path string, depth int) ([]ConfigEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries, includes, err := ParseConfig(f, path)
	if err != nil {
		return entries, err
	}
	for _, inc := range includes {
		p := inc.Address
		if depth >= maxIncludeDepth {
			return entries, fmt.Errorf("%s:%d: :include: nested deeper than %d", path, inc.Line, maxIncludeDepth)
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(path), p)
		}
		sub, err := readConfigPath(p, depth+1)
		if err != nil {
			return entries, fmt.Errorf("%s:%d: %w", path, inc.Line, err)
		}
		for i := range sub {
			if sub[i].Key == filepath.Base(p) {
				sub[i].Key = inc.Key
			}
		}
		entries = append(entries, sub...)
	}
	return entries, nil
}

// ParseConfig reads the destination addresses of one configuration file.
// It understands, line by line (a logical line continues on lines that
// start with white space; lines whose first non-blank character is '#' are
// comments, as in Postfix):
//
//	name: dest, dest, "|cmd", /file, :include:/path   aliases(5)
//	pattern dest[, dest…]                              virtual(5), canonical, *_bcc_maps
//	/regexp/flags dest                                 regexp and pcre tables
//	addr | Name <addr> | addr Name…                    mailing-list member lists
//
// Pipes, files and local names (no '@') are not destinations that can
// leak and are skipped. It returns the entries and the :include: files
// named (Address is the path); an error names the line.
func ParseConfig(r io.Reader, name string) (entries, includes []ConfigEntry, err error) {
	br := bufio.NewReaderSize(r, 64*1024)
	base := filepath.Base(name)
	var logical strings.Builder
	start, n := 0, 0
	flush := func() error {
		if logical.Len() == 0 {
			return nil
		}
		s := logical.String()
		logical.Reset()
		return parseConfigLine(s, name, base, start, &entries, &includes)
	}
	for {
		line, rerr := br.ReadString('\n')
		if rerr != nil && rerr != io.EOF {
			return entries, includes, fmt.Errorf("%s:%d: %w", name, n+1, rerr)
		}
		if line == "" && rerr == io.EOF {
			break
		}
		n++
		line = strings.TrimRight(line, "\r\n")
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "" || trimmed[0] == '#':
			// Blank lines and comments end nothing in Postfix, but a
			// comment never continues a line.
		case line[0] == ' ' || line[0] == '\t':
			if logical.Len() == 0 {
				return entries, includes, fmt.Errorf("%s:%d: continuation line without a line to continue", name, n)
			}
			logical.WriteByte(' ')
			logical.WriteString(trimmed)
		default:
			if err := flush(); err != nil {
				return entries, includes, err
			}
			start = n
			logical.WriteString(trimmed)
		}
		if logical.Len() > maxConfigLine {
			return entries, includes, fmt.Errorf("%s:%d: logical line longer than %d bytes", name, n, maxConfigLine)
		}
		if rerr == io.EOF {
			break
		}
	}
	return entries, includes, flush()
}

var errUnterminated = errors.New("unterminated quote or pattern")

func parseConfigLine(s, name, base string, line int, entries, includes *[]ConfigEntry) error {
	fail := func(err error) error { return fmt.Errorf("%s:%d: %w", name, line, err) }
	var key, rest string
	switch {
	case s == "if" || strings.HasPrefix(s, "if ") || strings.HasPrefix(s, "if!") || s == "endif":
		return nil // regexp/pcre conditional blocks
	case s[0] == '/':
		// /pattern/flags result
		end := -1
		for i := 1; i < len(s); i++ {
			if s[i] == '\\' {
				i++
				continue
			}
			if s[i] == '/' {
				end = i
				break
			}
		}
		if end < 0 {
			return fail(errUnterminated)
		}
		j := end + 1
		for j < len(s) && s[j] != ' ' && s[j] != '\t' {
			j++
		}
		key, rest = s[:j], s[j:]
	default:
		k, r, err := splitKey(s)
		if err != nil {
			return fail(err)
		}
		key, rest = k, r
		if strings.HasSuffix(key, ":") {
			key = strings.TrimSuffix(key, ":") // aliases
		} else if !strings.Contains(rest, "@") || strings.Contains(s, "<") && !strings.Contains(key, "@") {
			// No destination after the key: a member-list line, or a map
			// entry to a local name ("info@example.com  jdoe").
			if isListLine(s, rest) {
				if a := listAddress(s); a != "" {
					*entries = append(*entries, ConfigEntry{File: name, Line: line, Key: base, Address: a})
				}
			}
			return nil
		}
	}
	if key == "" {
		return fail(errors.New("empty key"))
	}
	values, err := splitValues(rest)
	if err != nil {
		return fail(err)
	}
	for _, v := range values {
		switch {
		case strings.HasPrefix(v, ":include:"):
			*includes = append(*includes, ConfigEntry{File: name, Line: line, Key: key, Address: strings.TrimSpace(strings.TrimPrefix(v, ":include:"))})
		case strings.HasPrefix(v, "|"), strings.HasPrefix(v, "/"), strings.HasPrefix(v, "\"|"):
			// A pipe or a file.
		case strings.Contains(v, "@"):
			a := strings.Trim(v, "<>")
			*entries = append(*entries, ConfigEntry{File: name, Line: line, Key: key, Address: a})
		}
	}
	return nil
}

// splitKey splits a line into its key (up to the first blank, or to ':'
// for aliases, whose names may be quoted) and the rest.
func splitKey(s string) (key, rest string, err error) {
	if s[0] == '"' {
		end := strings.IndexByte(s[1:], '"')
		if end < 0 {
			return "", "", errUnterminated
		}
		k := s[:end+2]
		r := s[end+2:]
		if strings.HasPrefix(r, ":") {
			return k + ":", r[1:], nil
		}
		if i := strings.IndexAny(r, " \t"); i >= 0 {
			return k + r[:i], r[i:], nil
		}
		return k + r, "", nil
	}
	i := strings.IndexAny(s, " \t:")
	if i < 0 {
		return s, "", nil
	}
	if s[i] == ':' && !strings.HasPrefix(s, ":include:") {
		return s[:i+1], s[i+1:], nil
	}
	if s[i] == ':' {
		i = strings.IndexAny(s, " \t")
		if i < 0 {
			return s, "", nil
		}
	}
	return s[:i], s[i:], nil
}

// splitValues splits a right-hand side on commas and blanks, keeping
// quoted strings ("|/usr/bin/cmd arg") whole.
func splitValues(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			quoted = !quoted
			cur.WriteByte(c)
		case !quoted && (c == ',' || c == ' ' || c == '\t'):
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteByte(c)
		}
	}
	if quoted {
		return nil, errUnterminated
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out, nil
}

// isListLine tells a member-list line ("addr", "Name <addr>", "addr John
// Doe") from a map entry whose result is a local name ("addr jdoe").
func isListLine(s, rest string) bool {
	if strings.Contains(s, "<") {
		return true
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return true
	}
	if len(f) >= 2 {
		return true
	}
	c := f[0][0]
	return c >= 'A' && c <= 'Z' || c == '"' || c == '('
}

// listAddress finds the address of a member-list line.
func listAddress(s string) string {
	if i := strings.LastIndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j > 0 {
			if a := strings.TrimSpace(s[i+1 : i+j]); strings.Contains(a, "@") {
				return a
			}
		}
	}
	for _, f := range strings.Fields(s) {
		if strings.Contains(f, "@") {
			return strings.Trim(f, "<>,;")
		}
	}
	return ""
}
