package detect

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
)

// Knowledge is what the engine knows about the sender's world, beyond its
// built-in lists.
type Knowledge struct {
	// Protected are the organisation's own domains or whole suffixes
	// ("mil", "army.mil", "example.com"). Everything under them is the
	// organisation's space; lookalikes outside it are leaks.
	Protected []string
	// Known are correspondent domains the organisation really writes to,
	// with how often (a count of at least 1).
	Known map[string]int
	// Deny maps lookalike domains known to be registered and to accept
	// mail (from `stray scan --emit-deny`) to the domain they imitate
	// ("" when unknown). A recipient at one of them, or below one, is
	// blocked.
	Deny map[string]string
	// NoBuiltin leaves out the built-in provider list.
	NoBuiltin bool
}

// ReadKnown reads a known-correspondents file: one "DOMAIN [COUNT]" a line,
// blank lines and "#" comments ignored. A missing count means 1. Domains are
// normalised to lower-case ASCII; repeated domains add up.
func ReadKnown(r io.Reader) (map[string]int, error) {
	known := map[string]int{}
	err := readLines(r, "known", "DOMAIN [COUNT]", func(f []string) error {
		d, err := NormalizeDomain(f[0])
		if err != nil {
			return err
		}
		count := 1
		if len(f) == 2 {
			count, err = strconv.Atoi(f[1])
			if err != nil || count < 0 {
				return fmt.Errorf("count %q is not a non-negative integer", f[1])
			}
		}
		known[d] += count
		return nil
	})
	if err != nil {
		return nil, err
	}
	return known, nil
}

// ReadDeny reads a deny file: one "DOMAIN [INTENDED]" a line, "#" comments
// (the format `stray scan --emit-deny` writes).
func ReadDeny(r io.Reader) (map[string]string, error) {
	deny := map[string]string{}
	err := readLines(r, "deny", "DOMAIN [INTENDED]", func(f []string) error {
		d, err := NormalizeDomain(f[0])
		if err != nil {
			return err
		}
		intended := ""
		if len(f) == 2 {
			if intended, err = NormalizeDomain(f[1]); err != nil {
				return err
			}
		}
		deny[d] = intended
		return nil
	})
	if err != nil {
		return nil, err
	}
	return deny, nil
}

// readLines calls fn with the one or two fields of every line that is not
// blank or a comment; errors name the file kind and the line.
func readLines(r io.Reader, kind, want string, fn func(fields []string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) > 2 {
			return fmt.Errorf("%s: line %d: want \"%s\", got %d fields", kind, n, want, len(f))
		}
		if err := fn(f); err != nil {
			return fmt.Errorf("%s: line %d: %w", kind, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: line %d: %w", kind, n+1, err)
	}
	return nil
}

var domainProfile = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.Transitional(false))

// NormalizeDomain returns the lower-case ASCII (A-label) form of a domain,
// without a trailing dot. A leading "." (a suffix such as ".mil") is allowed
// and dropped.
func NormalizeDomain(d string) (string, error) {
	d = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(d), "."), ".")
	if d == "" {
		return "", fmt.Errorf("empty domain")
	}
	a, err := domainProfile.ToASCII(d)
	if err != nil {
		return "", fmt.Errorf("domain %q: %w", d, err)
	}
	a = strings.ToLower(a)
	for _, l := range strings.Split(a, ".") {
		if l == "" || len(l) > 63 {
			return "", fmt.Errorf("domain %q: empty or overlong label", d)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", fmt.Errorf("domain %q: invalid character %q", d, c)
			}
		}
	}
	return a, nil
}
