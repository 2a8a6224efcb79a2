package maillog

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Input is one log to read.
type Input struct {
	// Name is used in messages and in Delivery.File.
	Name string
	// Open opens the log; the reader closes it.
	Open func() (io.ReadCloser, error)
	// Size is the number of bytes Open returns before decompression, for
	// progress; -1 when unknown.
	Size int64
	// ModTime is when the log was last written: its lines without a year
	// end around it. Zero means now.
	ModTime time.Time
}

// FileInput describes the file at path ("-" is standard input).
func FileInput(path string) (Input, error) {
	if path == "-" {
		return ReaderInput("(stdin)", os.Stdin), nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return Input{}, fmt.Errorf("maillog: %w", err)
	}
	if st.IsDir() {
		return Input{}, fmt.Errorf("maillog: %s is a directory", path)
	}
	return Input{
		Name:    path,
		Open:    func() (io.ReadCloser, error) { return os.Open(path) },
		Size:    st.Size(),
		ModTime: st.ModTime(),
	}, nil
}

// ReaderInput reads r (standard input, a pipe); its lines without a year
// are taken to end now.
func ReaderInput(name string, r io.Reader) Input {
	return Input{Name: name, Size: -1, Open: func() (io.ReadCloser, error) { return io.NopCloser(r), nil }}
}

// Rotation classes, oldest first.
const (
	rotNumbered = iota // mail.log.1, mail.log.2.gz
	rotDated           // mail.log-20240102, mail.log-20240102.gz
	rotBase            // mail.log (also mail.log.gz)
)

// rotation splits a log file name into its base, its rotation class and
// its number or date.
func rotation(name string) (base string, class int, n int64) {
	s := filepath.Clean(name)
	for _, ext := range []string{".gz", ".zst", ".bz2"} {
		s = strings.TrimSuffix(s, ext)
	}
	if i := strings.LastIndexByte(s, '.'); i > 0 && allDigits(s[i+1:]) && len(s)-i-1 <= 6 {
		v, _ := strconv.ParseInt(s[i+1:], 10, 64)
		return s[:i], rotNumbered, v
	}
	if i := strings.LastIndexByte(s, '-'); i > 0 && allDigits(s[i+1:]) && len(s)-i-1 >= 8 && len(s)-i-1 <= 14 {
		v, _ := strconv.ParseInt(s[i+1:], 10, 64)
		return s[:i], rotDated, v
	}
	return s, rotBase, 0
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// SortRotated orders inputs oldest first, as logrotate and newsyslog name
// them, so that a message whose lines span a rotation is joined: per base
// name, "mail.log.3.gz", "mail.log.2", "mail.log.1", then dated
// "mail.log-20240101", "mail.log-20240108", then "mail.log". Groups of
// different base names keep the order in which they first appear; so do
// inputs that compare equal.
func SortRotated(in []Input) {
	type key struct {
		group, class int
		n            int64
	}
	groups := map[string]int{}
	keys := make([]key, len(in))
	idx := make([]int, len(in))
	for i := range in {
		idx[i] = i
		base, class, n := rotation(in[i].Name)
		g, ok := groups[base]
		if !ok {
			g = len(groups)
			groups[base] = g
		}
		if class == rotNumbered {
			n = -n // higher numbers are older
		}
		keys[i] = key{g, class, n}
	}
	sort.SliceStable(idx, func(a, b int) bool {
		x, y := keys[idx[a]], keys[idx[b]]
		if x.group != y.group {
			return x.group < y.group
		}
		if x.class != y.class {
			return x.class < y.class
		}
		return x.n < y.n
	})
	out := make([]Input, len(in))
	for i, j := range idx {
		out[i] = in[j]
	}
	copy(in, out)
}

// countingReader counts the bytes read from the underlying file.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicBzip2 = []byte("BZh")
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0}
)

// decompress recognises gzip, zstd and bzip2 by their magic numbers,
// whatever the file is called, and returns the plain text stream.
func decompress(br *bufio.Reader) (io.Reader, func(), error) {
	head, _ := br.Peek(6)
	switch {
	case bytes.HasPrefix(head, magicGzip):
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return z, func() { z.Close() }, nil
	case bytes.HasPrefix(head, magicZstd):
		z, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return z, z.Close, nil
	case bytes.HasPrefix(head, magicBzip2) && len(head) >= 4 && head[3] >= '1' && head[3] <= '9':
		return bzip2.NewReader(br), func() {}, nil
	case bytes.HasPrefix(head, magicXz):
		return nil, nil, errors.New("xz-compressed: decompress it first (xz -dc FILE | stray audit -)")
	}
	return br, func() {}, nil
}
