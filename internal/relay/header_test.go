package relay

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestReadHeadCountsHopsAndUnfoldsWantedFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		in       string
		max      int
		hops     int
		release  []string
		headLen  int // -1: the whole header including the empty line
		bodyRest string
	}{
		{"plain", "Received: a\r\nReceived: b\r\nSubject: x\r\n\r\nbody\r\n", 1 << 20, 2, nil, -1, "body\r\n"},
		{"folded release", "X-Stray-Release: abc\r\n def\r\nReceived: a\r\n\r\nb", 1 << 20, 1, []string{"abc def"}, -1, "b"},
		{"bare LF", "received: a\nX-Stray-Release: v\n\nb\n", 1 << 20, 1, []string{"v"}, -1, "b\n"},
		{"no empty line", "Subject: x\r\nbody without header end\r\n", 1 << 20, 0, nil, -1, ""},
		{"only header", "Subject: x\r\n", 1 << 20, 0, nil, -1, ""},
		{"bound", "Received: a\r\nReceived: b\r\nReceived: c\r\n\r\nb", 20, 2, nil, 26, "Received: c\r\n\r\nb"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := bufio.NewReaderSize(strings.NewReader(tc.in), 16)
			h, err := ReadHead(r, tc.max, "x-stray-release")
			if err != nil {
				t.Fatal(err)
			}
			if h.Hops != tc.hops {
				t.Errorf("hops %d, want %d", h.Hops, tc.hops)
			}
			if strings.Join(h.Fields["x-stray-release"], "|") != strings.Join(tc.release, "|") {
				t.Errorf("release %q, want %q", h.Fields["x-stray-release"], tc.release)
			}
			rest, _ := io.ReadAll(r)
			if string(h.Raw)+string(rest) != tc.in {
				t.Errorf("header and rest do not rebuild the message: %q + %q", h.Raw, rest)
			}
			if tc.bodyRest != "" && string(rest) != tc.bodyRest {
				t.Errorf("rest %q, want %q", rest, tc.bodyRest)
			}
		})
	}
}

// FuzzReadHead: any input, split anywhere by the buffer, is returned whole
// (header plus what is left), and the hop count never exceeds the lines.
func FuzzReadHead(f *testing.F) {
	f.Add([]byte("Received: a\r\nX-Stray-Release: v\r\n w\r\n\r\nbody"), 64)
	f.Add([]byte("\r\n"), 16)
	f.Add([]byte(":\n \n\t\n"), 16)
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		if max < 0 || max > 1<<16 {
			max = 1 << 16
		}
		r := bufio.NewReaderSize(bytes.NewReader(in), 16)
		h, err := ReadHead(r, max, "x-stray-release")
		if err != nil {
			t.Fatal(err)
		}
		rest, _ := io.ReadAll(r)
		if !bytes.Equal(append(h.Raw, rest...), in) {
			t.Fatalf("lost bytes: %q + %q != %q", h.Raw, rest, in)
		}
		if h.Hops > bytes.Count(h.Raw, []byte("\n"))+1 {
			t.Fatalf("%d hops in %q", h.Hops, h.Raw)
		}
	})
}
