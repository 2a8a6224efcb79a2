package maillog

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/stray-mail/stray/internal/maillog/synth"
)

func readAll(t testing.TB, inputs []Input, opt Options) ([]Delivery, *Stats) {
	t.Helper()
	var got []Delivery
	st, err := Read(context.Background(), inputs, opt, func(d *Delivery) error {
		got = append(got, *d)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, st
}

func stringInput(name, s string) Input { return ReaderInput(name, strings.NewReader(s)) }

func TestReadJoinsARealPostfixLog(t *testing.T) {
	t.Parallel()
	in, err := FileInput("testdata/postfix-3.7.log")
	if err != nil {
		t.Fatal(err)
	}
	got, st := readAll(t, []Input{in}, Options{Year: 2026, Location: time.UTC})
	if st.Malformed != 0 || st.Lines != 108 || st.Open != 1 || st.Evicted != 0 {
		t.Fatalf("stats %+v", st)
	}
	if st.Count(Sent) != 20 || st.Count(Bounced) != 2 || st.Count(Deferred) != 1 || st.Count(Discarded) != 1 {
		t.Errorf("attempts %v", st.Attempts)
	}
	// Every delivery knows its message: sender, size, client, Message-ID.
	for _, d := range got {
		if !d.SenderKnown || d.Size <= 0 || d.MessageID == "" || d.QueueID == "" || d.Host != "stray-test" || d.Time.Year() != 2026 {
			t.Errorf("%s:%d %s: not joined: %+v", d.File, d.Line, d.To, d)
		}
		if d.From == "" && !strings.HasSuffix(d.MessageID, "@stray-test.localdomain>") && d.MessageID != "<m8@corp.example>" {
			t.Errorf("%s: null sender on a message that is not a bounce: %+v", d.To, d)
		}
	}
	i := slices.IndexFunc(got, func(d Delivery) bool { return d.To == "a@gmial.com" })
	if i < 0 || got[i].OrigTo != "team@corp.example" || got[i].From != "erin@corp.example" || got[i].MessageID != "<m4@corp.example>" || got[i].Client != "localhost[127.0.0.1]" {
		t.Errorf("alias expansion: %+v", got[i])
	}
}

func TestReadJoinsLongQueueIDs(t *testing.T) {
	t.Parallel()
	in, err := FileInput("testdata/postfix-3.7-long-ids.log")
	if err != nil {
		t.Fatal(err)
	}
	got, st := readAll(t, []Input{in}, Options{Year: 2026})
	if st.Malformed != 0 || len(got) != 14 || st.Count(Sent) != 7 || st.Count(Discarded) != 1 {
		t.Fatalf("%d deliveries, stats %+v", len(got), st)
	}
	for _, d := range got {
		if !strings.Contains(d.QueueID, "z") || !d.SenderKnown {
			t.Errorf("%+v", d)
		}
	}
}

func TestReadCountsAndSkipsMalformedLinesWithTheirLineNumbers(t *testing.T) {
	t.Parallel()
	log := "Nov 22 16:11:59 h postfix/qmgr[1]: ABCDE12345: from=<a@corp.example>, size=10, nrcpt=1 (queue active)\n" +
		"\x00\x00\x00\x00\x00\x00\x00\x00 after a crash\n" +
		"Nov 22 16:11:59 h postfix/smtp[2]: ABCDE12345: to=<x@y.com, relay=none\n" +
		"\n" +
		"Nov 22 16:12:00 h postfix/smtp[2]: ABCDE12345: to=<b@gmial.com>, relay=r, delay=1, delays=1/0/0/0, dsn=2.0.0, status=sent (ok)\r\n" +
		"Nov 22 16:12:00 h postfix/qmgr[1]: ABCDE12345: removed"
	got, st := readAll(t, []Input{stringInput("mail.log", log)}, Options{Year: 2024})
	if len(got) != 1 || got[0].To != "b@gmial.com" || got[0].From != "a@corp.example" || got[0].Line != 5 || got[0].Detail != "ok" {
		t.Fatalf("deliveries %+v", got)
	}
	if st.Lines != 6 || st.Malformed != 2 || len(st.Samples) != 2 {
		t.Fatalf("stats %+v", st)
	}
	if s := st.Samples[0]; s.File != "mail.log" || s.Line != 2 || !errors.Is(s, ErrTimestamp) {
		t.Errorf("first sample %v", s)
	}
	if s := st.Samples[1]; s.Line != 3 || !errors.Is(s, ErrAddress) || !strings.Contains(s.Error(), "mail.log:3: unterminated address") {
		t.Errorf("second sample %v", s)
	}
}

func TestReadSkipsAnOverlongLineAndKeepsCounting(t *testing.T) {
	t.Parallel()
	line := func(n int) string {
		return fmt.Sprintf("Nov 22 16:12:00 h postfix/smtp[2]: ABCDE1234%d: to=<b%d@x.com>, relay=r, delay=1, delays=1/0/0/0, dsn=2.0.0, status=sent (ok)\n", n, n)
	}
	for _, long := range []int{blockSize - 10, blockSize + 10, 3*blockSize + 7} {
		log := line(1) + strings.Repeat("y", long) + "\n" + line(2) + strings.Repeat("z", long) + "\n" + line(3)
		got, st := readAll(t, []Input{stringInput("big", log)}, Options{Year: 2024})
		var lines []int64
		for _, d := range got {
			lines = append(lines, d.Line)
		}
		// Both long lines are malformed: too long, or without a timestamp.
		want := ErrTimestamp
		if long+1 > blockSize {
			want = ErrLongLine
		}
		if !slices.Equal(lines, []int64{1, 3, 5}) || st.Lines != 5 || st.Malformed != 2 ||
			st.Samples[0].Line != 2 || st.Samples[1].Line != 4 || !errors.Is(st.Samples[1], want) {
			t.Errorf("line of %d bytes: delivery lines %v, stats lines %d malformed %d %v", long, lines, st.Lines, st.Malformed, st.Samples)
		}
	}
}

// splitLog writes a synthetic log as three rotated files, the oldest
// gzip-compressed, the middle one zstd-compressed.
func splitLog(t *testing.T, dir string, log []byte) []Input {
	t.Helper()
	// Cut inside messages, at line ends.
	a := bytes.IndexByte(log[len(log)/3:], '\n') + len(log)/3 + 1
	b := bytes.IndexByte(log[2*len(log)/3:], '\n') + 2*len(log)/3 + 1
	var gz, zs bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(log[:a])
	zw.Close()
	enc, _ := zstd.NewWriter(&zs)
	enc.Write(log[a:b])
	enc.Close()
	files := map[string][]byte{"mail.log.2.gz": gz.Bytes(), "mail.log.1": zs.Bytes(), "mail.log": log[b:]}
	var inputs []Input
	for _, name := range []string{"mail.log", "mail.log.2.gz", "mail.log.1"} { // not in order
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			t.Fatal(err)
		}
		in, err := FileInput(p)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, in)
	}
	return inputs
}

func TestReadJoinsMessagesAcrossRotatedCompressedFiles(t *testing.T) {
	t.Parallel()
	var log bytes.Buffer
	truth, err := synth.Write(&log, synth.Options{Size: 400 << 10, Seed: 5, ISO: true, TypoRate: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	whole, wst := readAll(t, []Input{stringInput("whole", log.String())}, Options{})
	inputs := splitLog(t, t.TempDir(), log.Bytes())
	SortRotated(inputs)
	var names []string
	for _, in := range inputs {
		names = append(names, filepath.Base(in.Name))
	}
	if !slices.Equal(names, []string{"mail.log.2.gz", "mail.log.1", "mail.log"}) {
		t.Fatalf("order %v", names)
	}
	parts, pst := readAll(t, inputs, Options{})
	if len(parts) != len(whole) || pst.Lines != wst.Lines || pst.Attempts != wst.Attempts || pst.Inputs != 3 {
		t.Fatalf("split: %d deliveries %+v; whole: %d %+v", len(parts), pst, len(whole), wst)
	}
	for i := range whole {
		w, p := whole[i], parts[i]
		w.File, w.Line, p.File, p.Line = "", 0, "", 0
		if w != p {
			t.Fatalf("delivery %d differs:\n whole %+v\n split %+v", i, w, p)
		}
	}
	if wst.Count(Sent) != truth.Sent || wst.Count(Bounced) != truth.Bounced || wst.Count(Deferred) != truth.Deferred {
		t.Errorf("attempts %v, truth %+v", wst.Attempts, truth)
	}
}

func TestReadMatchesTheSynthesisersTruthWithAnyNumberOfWorkers(t *testing.T) {
	t.Parallel()
	var log bytes.Buffer
	// A busy server's two days: no message waits a day between lines.
	truth, err := synth.Write(&log, synth.Options{Size: 3 << 20, Seed: 11, TypoRate: 0.02, Span: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var first []Delivery
	for _, workers := range []int{1, 2, 7} {
		got, st := readAll(t, []Input{stringInput("synth", log.String())}, Options{Workers: workers, Year: 2024})
		typos := map[string]int64{}
		for _, d := range got {
			if !d.SenderKnown {
				t.Fatalf("%d workers: delivery without its sender: %+v", workers, d)
			}
			dom := d.To[strings.LastIndexByte(d.To, '@')+1:]
			if _, ok := synth.Typos[dom]; ok && d.Delivered() {
				typos[dom]++
			}
		}
		if st.Count(Sent) != truth.Sent || st.Count(Bounced) != truth.Bounced || st.Count(Deferred) != truth.Deferred ||
			st.Lines != truth.Lines || st.Malformed != 0 || st.Open != 0 || st.Evicted != 0 {
			t.Errorf("%d workers: stats %+v, truth %+v", workers, st, truth)
		}
		for dom, n := range truth.TypoSent {
			if typos[dom] != n {
				t.Errorf("%d workers: %s delivered %d times, truth %d", workers, dom, typos[dom], n)
			}
		}
		if first == nil {
			first = got
		} else if !slices.Equal(first, got) {
			t.Errorf("%d workers: deliveries differ from 1 worker's", workers)
		}
	}
}

func TestReadBoundsTheMessagesItHoldsOpen(t *testing.T) {
	t.Parallel()
	// 30,000 messages that never finish (clients that drop after DATA),
	// one a second, then one that does.
	var b strings.Builder
	start := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 30000; i++ {
		fmt.Fprintf(&b, "%s h postfix/smtpd[1]: %010X: client=c[10.0.0.1]\n", start.Add(time.Duration(i)*time.Second).Format(time.RFC3339), 0xA000000000+i)
	}
	end := start.Add(30000 * time.Second).Format(time.RFC3339)
	fmt.Fprintf(&b, "%s h postfix/qmgr[2]: FFFFF00001: from=<a@b.com>, size=1, nrcpt=1 (queue active)\n", end)
	fmt.Fprintf(&b, "%s h postfix/smtp[3]: FFFFF00001: to=<c@d.com>, relay=r, delay=1, delays=1/0/0/0, dsn=2.0.0, status=sent (ok)\n", end)
	for _, tc := range []struct {
		name     string
		opt      Options
		maxOpen  int64
		evictAny bool
	}{
		{"by count", Options{MaxOpen: 1000, OpenTimeout: 1000 * time.Hour}, 1000, true},
		{"by age", Options{OpenTimeout: time.Hour}, 3600 + 3600/4 + 1, true},
		{"neither", Options{}, 30001, false},
	} {
		got, st := readAll(t, []Input{stringInput("drops", b.String())}, tc.opt)
		if len(got) != 1 || got[0].From != "a@b.com" {
			t.Errorf("%s: deliveries %+v", tc.name, got)
		}
		if st.Open > tc.maxOpen || (st.Evicted > 0) != tc.evictAny || st.Open+st.Evicted != 30001 {
			t.Errorf("%s: open %d evicted %d, want open ≤ %d", tc.name, st.Open, st.Evicted, tc.maxOpen)
		}
	}
}

func TestReadStopsOnAnErrorFromTheCallbackOrTheContext(t *testing.T) {
	t.Parallel()
	var log bytes.Buffer
	synth.Write(&log, synth.Options{Size: 4 << 20, Seed: 1})
	stop := errors.New("stop")
	n := 0
	_, err := Read(context.Background(), []Input{stringInput("s", log.String())}, Options{}, func(*Delivery) error {
		n++
		if n == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 10 {
		t.Errorf("err %v after %d deliveries", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n = 0
	_, err = Read(ctx, []Input{stringInput("s", log.String())}, Options{}, func(*Delivery) error {
		if n++; n == 5 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestReadRecordsAnInputThatCannotBeReadAndGoesOn(t *testing.T) {
	t.Parallel()
	good := "2024-03-01T10:00:00Z h postfix/smtp[1]: ABCDE12345: to=<a@b.com>, relay=r, delay=1, delays=1/0/0/0, dsn=2.0.0, status=sent (ok)\n"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(strings.Repeat(good, 1000)))
	zw.Close()
	truncated := gz.Bytes()[:gz.Len()/2]
	for _, tc := range []struct {
		name, data, want string
		delivered        int
	}{
		{"x.xz", "\xfd7zXZ\x00rest", "xz -dc", 0},
		{"x.gz", "\x1f\x8b\x08\x00garbage", "x.gz", 0},
		{"x.zst", "\x28\xb5\x2f\xfd\x00\x00garbage", "x.zst", 0},
		{"half.gz", string(truncated), "unexpected EOF", -1},
	} {
		bad := stringInput(tc.name, tc.data)
		got, st := readAll(t, []Input{bad, stringInput("next.log", good)}, Options{})
		if len(st.InputErrors) != 1 || !strings.Contains(st.InputErrors[0].Error(), tc.name) || !strings.Contains(st.InputErrors[0].Error(), tc.want) {
			t.Errorf("%s: input errors %v", tc.name, st.InputErrors)
		}
		// What the bad input gave is kept; the next input is read.
		if len(got) == 0 || got[len(got)-1].File != "next.log" || (tc.delivered >= 0 && len(got) != tc.delivered+1) || (tc.delivered < 0 && len(got) < 100) {
			t.Errorf("%s: %d deliveries", tc.name, len(got))
		}
	}
	gone := Input{Name: "gone.log", Open: func() (io.ReadCloser, error) { return nil, os.ErrNotExist }}
	if _, st := readAll(t, []Input{gone}, Options{}); len(st.InputErrors) != 1 || !strings.Contains(st.InputErrors[0].Error(), "gone.log") {
		t.Errorf("unopenable: %v", st.InputErrors)
	}
	if _, err := FileInput(t.TempDir()); err == nil {
		t.Error("a directory is not a log")
	}
	if _, err := FileInput(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Error("a missing file is an error")
	}
}

func TestReadPicksTheFormatPerInputAndSaysWhenNoneMatched(t *testing.T) {
	t.Parallel()
	pf, _ := os.ReadFile("testdata/postfix-3.7.log")
	_, st := readAll(t, []Input{stringInput("exim", eximLog), stringInput("postfix", string(pf)), stringInput("other", "hello\nworld\n")}, Options{Year: 2026})
	if st.Formats["exim"] != 1 || st.Formats["postfix"] != 2 || !slices.Equal(st.NoEvents, []string{"other"}) {
		t.Errorf("formats %v, no events %v", st.Formats, st.NoEvents)
	}
	// Forcing the wrong format finds nothing, and says so.
	got, st := readAll(t, []Input{stringInput("exim", eximLog)}, Options{Format: Postfix})
	if len(got) != 0 || len(st.NoEvents) != 1 {
		t.Errorf("forced postfix on exim: %d deliveries, %v", len(got), st.NoEvents)
	}
}

type panicky struct{}

func (panicky) Name() string                                 { return "panicky" }
func (panicky) Sniff(string) bool                            { return true }
func (panicky) Parse(l string, evs []Event) ([]Event, error) { panic(l) }

func TestReadTurnsAParserPanicIntoAMalformedLine(t *testing.T) {
	t.Parallel()
	_, st := readAll(t, []Input{stringInput("p", "a\nb\n")}, Options{Format: panicky{}})
	if st.Malformed != 2 || !strings.Contains(st.Samples[1].Error(), "parser failure: b") {
		t.Errorf("stats %+v", st)
	}
}

func TestSortRotatedPutsTheOldestFirst(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want []string }{
		{[]string{"mail.log", "mail.log.1", "mail.log.2.gz", "mail.log.10.gz"}, []string{"mail.log.10.gz", "mail.log.2.gz", "mail.log.1", "mail.log"}},
		{[]string{"maillog", "maillog-20240108", "maillog-20240101.gz"}, []string{"maillog-20240101.gz", "maillog-20240108", "maillog"}},
		{[]string{"b.log", "a.log.1", "a.log", "b.log.1.zst"}, []string{"b.log.1.zst", "b.log", "a.log.1", "a.log"}},
		{[]string{"x", "y", "(stdin)"}, []string{"x", "y", "(stdin)"}},
		{[]string{"/var/log/mail.log.1", "/var/log/./mail.log"}, []string{"/var/log/mail.log.1", "/var/log/./mail.log"}},
	} {
		in := make([]Input, len(tc.in))
		for i, n := range tc.in {
			in[i] = Input{Name: n}
		}
		SortRotated(in)
		var got []string
		for _, x := range in {
			got = append(got, x.Name)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%v: %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestReadReportsProgressUpToTheTotal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var log bytes.Buffer
	synth.Write(&log, synth.Options{Size: 3 << 20, Seed: 2})
	p := filepath.Join(dir, "mail.log")
	os.WriteFile(p, log.Bytes(), 0o644)
	in, _ := FileInput(p)
	var last Progress
	calls := 0
	readAll(t, []Input{in}, Options{Progress: func(pr Progress) { last = pr; calls++ }})
	if calls < 3 || last.Total != int64(log.Len()) || last.Read != last.Total || last.Input != p {
		t.Errorf("%d calls, last %+v, size %d", calls, last, log.Len())
	}
}

func TestOpenSetForgetsHostsWithoutOpenMessages(t *testing.T) {
	t.Parallel()
	s := openSet{hosts: map[string]*hostOpen{}}
	for i := 0; i < 1000; i++ {
		h := fmt.Sprintf("host%d", i)
		s.put(h, "ABCDE12345", &openMsg{last: int64(i)})
		s.put(h, "ABCDE12346", &openMsg{last: int64(i)})
		if s.get(h, "ABCDE12345") == nil {
			t.Fatal("lost a message")
		}
		s.del(h, "ABCDE12345")
		s.del(h, "ABCDE12345") // twice: no harm
	}
	if s.n != 1000 || len(s.hosts) != 1000 {
		t.Fatalf("n %d hosts %d", s.n, len(s.hosts))
	}
	s.removeIf(func(o *openMsg) bool { return o.last < 500 })
	if s.n != 500 || len(s.hosts) != 500 || s.get("host10", "ABCDE12346") != nil || s.get("host900", "ABCDE12346") == nil {
		t.Fatalf("after eviction: n %d hosts %d", s.n, len(s.hosts))
	}
	for i := 500; i < 1000; i++ {
		s.del(fmt.Sprintf("host%d", i), "ABCDE12346")
	}
	if s.n != 0 || len(s.hosts) != 0 {
		t.Fatalf("empty: n %d hosts %d", s.n, len(s.hosts))
	}
}
