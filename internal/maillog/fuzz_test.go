package maillog

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// seedLines adds every line of the real logs and of the Exim sample.
func seedLines(f *testing.F) {
	for _, name := range []string{"testdata/postfix-3.7.log", "testdata/postfix-3.7-long-ids.log"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f.Add(sc.Text())
		}
	}
	for _, l := range strings.Split(eximLog, "\n") {
		f.Add(l)
	}
}

// eventStrings are the strings a parser set.
func eventStrings(ev *Event) []string {
	return []string{ev.Host, ev.QueueID, ev.Client, ev.MessageID, ev.From, ev.To, ev.OrigTo, ev.Relay, ev.DSN, ev.Detail}
}

// isHostIP: Exchange's "host[ip]" is made of two of the row's fields.
func isHostIP(line, s string) bool {
	fields, _ := splitCSV(strings.TrimPrefix(line, bom), nil)
	for _, h := range append(fields, "") {
		for _, ip := range append(fields, "") {
			if hostIP(h, ip) == s {
				return true
			}
		}
	}
	return false
}

// checkEvent: an event names a message and says something about it, and
// every string it carries was in the line.
func checkEvent(t *testing.T, line string, ev *Event) {
	t.Helper()
	if ev.Kind == 0 || ev.QueueID == "" || ev.Status >= NumStatus {
		t.Fatalf("%q: empty or bad event %+v", line, ev)
	}
	if ev.Kind&IsRecipient != 0 && ev.Kind&IsDone != 0 {
		t.Fatalf("%q: a recipient and the end at once", line)
	}
	for _, s := range eventStrings(ev) {
		if !strings.Contains(line, s) && !(s == "local" && s == ev.Relay) && !strings.Contains(strings.ReplaceAll(line, `""`, `"`), s) && !isHostIP(line, s) {
			t.Fatalf("%q: field %q is not in the line", line, s)
		}
	}
	if ev.Size < -1 {
		t.Fatalf("%q: size %d", line, ev.Size)
	}
}

// fuzzFormat: any line gives events, nothing, or an error; never a panic,
// never events and an error, and events only hold text from their line.
func fuzzFormat(t *testing.T, f Format, line string) {
	evs, err := f.Parse(line, nil)
	if len(evs) > 0 && err != nil {
		t.Fatalf("%q: events and %v", line, err)
	}
	for i := range evs {
		checkEvent(t, line, &evs[i])
	}
	f.Sniff(line)
}

// FuzzPostfixParse: Postfix lines.
func FuzzPostfixParse(f *testing.F) {
	seedLines(f)
	f.Fuzz(func(t *testing.T, line string) { fuzzFormat(t, Postfix, line) })
}

// FuzzEximParse: Exim main log lines.
func FuzzEximParse(f *testing.F) {
	seedLines(f)
	f.Fuzz(func(t *testing.T, line string) { fuzzFormat(t, Exim, line) })
}

// FuzzExchangeParse: Exchange message tracking rows, with the default
// columns and with those of the sample's header.
func FuzzExchangeParse(f *testing.F) {
	for _, l := range strings.Split(exchangeLog, "\n") {
		f.Add(l)
	}
	custom := Exchange.(Preparer).ForInput("#Fields: event-id,recipient-address,date-time,sender-address\n")
	f.Fuzz(func(t *testing.T, line string) {
		fuzzFormat(t, Exchange, line)
		fuzzFormat(t, custom, line)
	})
}

// FuzzParseStamp: a timestamp that parses is a real date and time,
// followed by a space.
func FuzzParseStamp(f *testing.F) {
	for _, s := range []string{"Nov 22 16:06:26 h", "Jan  2 2006 15:04:05 h", "2006 Jan  2 15:04:05 h",
		"2024-01-31T08:15:00.5+01:00 h", "2024-01-31 08:15:00.123 +0100 1", "Feb 29 23:59:60 h", "2024-02-29T00:00:00Z h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		st, i, ok := parseStamp(s)
		if !ok {
			return
		}
		if i < 1 || i > len(s) || s[i-1] != ' ' {
			t.Fatalf("%q: rest at %d", s, i)
		}
		if !validDate(st.Year, st.Month, st.Day) || st.Hour > 23 || st.Minute > 59 || st.Second > 59 || st.Nanosecond < 0 || st.Nanosecond >= 1e9 {
			t.Fatalf("%q: %+v", s, st)
		}
		c := newClock(nil, 0)
		c.reset(c.ref)
		c.time(&st)
	})
}

// FuzzRead: any stream, in any format, is read to the end: every line is
// counted, malformed ones have their line number, deliveries point at a
// line that exists.
func FuzzRead(f *testing.F) {
	for _, name := range []string{"testdata/postfix-3.7.log", "testdata/postfix-3.7-long-ids.log"} {
		b, _ := os.ReadFile(name)
		f.Add(b)
	}
	f.Add([]byte(eximLog))
	f.Add([]byte(exchangeLog))
	f.Add([]byte("\x1f\x8b\x08\x00\x00\x00\x00\x00"))
	f.Add([]byte("a\r\nb\n\n\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := int64(bytes.Count(data, []byte{'\n'}))
		if len(data) > 0 && data[len(data)-1] != '\n' {
			lines++
		}
		var maxLine int64
		st, err := Read(context.Background(), []Input{ReaderInput("fuzz", bytes.NewReader(data))}, Options{Workers: 2}, func(d *Delivery) error {
			if d.Line < 1 || d.QueueID == "" || d.Status >= NumStatus {
				t.Fatalf("delivery %+v", d)
			}
			maxLine = max(maxLine, d.Line)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(st.InputErrors) > 0 || bytes.HasPrefix(data, magicGzip) || bytes.HasPrefix(data, magicZstd) || bytes.HasPrefix(data, magicBzip2) {
			return // a compressed stream: its lines are not data's
		}
		if st.Lines != lines || maxLine > lines || st.Malformed > st.Lines || st.Events > st.Lines {
			t.Fatalf("lines %d (want %d), last delivery line %d, malformed %d, events %d", st.Lines, lines, maxLine, st.Malformed, st.Events)
		}
		for _, s := range st.Samples {
			if s.Line < 1 || s.Line > lines {
				t.Fatalf("sample %v outside 1..%d", s, lines)
			}
		}
	})
}
