package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/stray-mail/stray/detect"
)

const checkHelp = `usage: stray check [--protect DOMAIN]... [--known FILE]... [--deny FILE]... [--config FILE] [--format text|json] [ADDRESS...]

Checks recipient addresses for mistyped domains and suggests the address the
sender most likely meant. Addresses come from the arguments, or one per line
from standard input when there are none. Each gets a verdict:

  ok       no reason to doubt it
  warn     a weak signal
  hold     a likely typo: ask the sender before delivering
  block    near-certain and leaking (a lookalike of your own domain outside
           it, a homoglyph of a domain you mean)
  invalid  not an address at all: it cannot be parsed

Knowledge: --protect names your own domains or whole suffixes (mail to a
lookalike outside them leaks); --known names files of domains you write to
("DOMAIN [COUNT]" lines, # comments); --deny names lists of registered
lookalikes (from stray scan --emit-deny), blocked outright; popular
providers are built in.

--format json prints exactly one JSON object per input line, in input order:
{"address","verdict","intended","suggestion","score","reasons":[{"kind","message"}]}
and, for an address that cannot be parsed, an "error" with verdict
"invalid" (text output: a line "invalid ADDRESS: why"; an address longer
than 256 bytes is shown clipped). Invalid lines never stop the run: every
other line is still checked and reported. A blank line on standard input
is not an address: text output skips it, JSON gives it an "invalid" object
(one object per line), and it never changes the exit status.

Exit status: 0 nothing flagged, 1 something flagged or invalid, 2 usage
error (bad flags, unreadable knowledge or config, unreadable input).

Examples:
  stray check --protect mil j.smith@army.ml
  stray check j@gmial.com k@gmаil.com
  stray check --known known.txt --format json < recipients.txt
`

func runCheck(ctx context.Context, args []string, std Stdio) int {
	fs := newFlagSet("check", checkHelp, std)
	df := addDetectFlags(fs, "YAML config `FILE` (its detect section)")
	format := fs.String("format", "text", "output format: text or json")
	addrs, err := parseInterleaved(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(std.Err, "stray check: --format %q: want text or json\n", *format)
		return ExitUsage
	}
	checker, err := df.checker()
	if err != nil {
		fmt.Fprintf(std.Err, "stray check: %v\n", err)
		return ExitUsage
	}
	if len(checker.Protected()) == 0 {
		fmt.Fprintln(std.Err, noProtectHint)
	}
	out := bufio.NewWriterSize(std.Out, 64*1024)
	defer out.Flush()
	emit := emitText
	if *format == "json" {
		emit = emitJSON
	}
	code := ExitOK
	one := func(line string) {
		if strings.TrimSpace(line) == "" {
			// A blank line (a file's trailing newline, a paragraph break)
			// is not an address: it must not turn a clean run into 1.
			if *format == "json" {
				emit(out, detect.Finding{}, errBlankLine)
			}
			return
		}
		f, err := checker.Check(line)
		f.Address = strings.TrimSpace(line)
		if err != nil {
			f.Address = clip(f.Address, maxShown)
		}
		emit(out, f, err)
		if (err != nil || f.Flagged()) && code == ExitOK {
			code = ExitFlagged // an invalid address counts as flagged
		}
	}
	if len(addrs) > 0 {
		for _, a := range addrs {
			one(a)
		}
		return code
	}
	err = eachLine(ctx, std.In, one)
	if err != nil {
		out.Flush()
		fmt.Fprintf(std.Err, "stray check: reading input: %v\n", err)
		return ExitUsage
	}
	return code
}

// noProtectHint is said once when no protected domain is configured: the
// organisation's own lookalikes (army.ml for army.mil) are then unknown.
const noProtectHint = "stray: no protected domains (--protect or detect.protect): checking against popular providers only; name your own domains to catch their lookalikes"

// errBlankLine is the error of a blank input line.
var errBlankLine = errors.New("blank line: not an address")

// maxShown bounds an invalid address as printed back: a 10 kB line of
// garbage is not worth echoing whole.
const maxShown = 256

// clip shortens s to at most n bytes (on a rune boundary), saying how long
// it was.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:cut], len(s))
}

// maxLine bounds one input line; longer lines are cut (and then fail to parse
// as an address) but never stop the run or desynchronise the output.
const maxLine = 64 * 1024

// eachLine calls fn for every line of r, without its line ending.
func eachLine(ctx context.Context, r io.Reader, fn func(string)) error {
	br := bufio.NewReaderSize(r, 64*1024)
	var buf []byte
	for n := 0; ; n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		buf = buf[:0]
		var err error
		for {
			var chunk []byte
			chunk, err = br.ReadSlice('\n')
			if len(buf)+len(chunk) <= maxLine {
				buf = append(buf, chunk...)
			}
			if err != bufio.ErrBufferFull {
				break
			}
		}
		if len(buf) == 0 && err == io.EOF {
			return nil
		}
		line := strings.TrimSuffix(strings.TrimSuffix(string(buf), "\n"), "\r")
		fn(line)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

type jsonError struct {
	Address    string          `json:"address"`
	Error      string          `json:"error"`
	Verdict    string          `json:"verdict"`
	Intended   *string         `json:"intended"`
	Suggestion *string         `json:"suggestion"`
	Score      float64         `json:"score"`
	Reasons    []detect.Reason `json:"reasons"`
}

func emitJSON(w *bufio.Writer, f detect.Finding, err error) {
	var b []byte
	if err != nil {
		b, _ = json.Marshal(jsonError{Address: f.Address, Error: err.Error(), Verdict: detect.Invalid, Reasons: []detect.Reason{}})
	} else {
		b, _ = json.Marshal(f)
	}
	w.Write(b)
	w.WriteByte('\n')
}

func emitText(w *bufio.Writer, f detect.Finding, err error) {
	switch {
	case err != nil:
		fmt.Fprintf(w, "%-6s %s: %v\n", detect.Invalid, f.Address, err)
	case !f.Flagged():
		fmt.Fprintf(w, "%-6s %s\n", "ok", f.Address)
	default:
		fmt.Fprintf(w, "%-6s %s", f.Verdict, f.Address)
		if f.Suggestion != "" {
			fmt.Fprintf(w, "  did you mean %s?", f.Suggestion)
		}
		fmt.Fprintf(w, "  (score %.2f)\n", f.Score)
		for _, r := range f.Reasons {
			fmt.Fprintf(w, "       %s: %s\n", r.Kind, r.Message)
		}
	}
}
