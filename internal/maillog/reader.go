package maillog

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	DefaultMaxOpen     = 200_000
	DefaultOpenTimeout = 24 * time.Hour
	// MaxLineLen bounds one line; a longer one is malformed and skipped.
	MaxLineLen = 1 << 20
	// maxSamples bounds the malformed lines kept in Stats.
	maxSamples = 20
)

// blockSize is how much of a log a worker parses at once.
const blockSize = 1 << 20

// Options tune Read. The zero value is ready to use.
type Options struct {
	// Format forces a log format; nil picks one per input from its first
	// lines (Postfix when nothing matches).
	Format Format
	// Location is the zone of timestamps that carry none (default
	// time.Local).
	Location *time.Location
	// Year, when set, is the year of each input's first timestamp that
	// has none; otherwise it is inferred from the input's ModTime.
	Year int
	// Workers parse in parallel (default GOMAXPROCS).
	Workers int
	// MaxOpen bounds the messages held open, waiting for their next lines
	// (default DefaultMaxOpen); beyond it the least recently seen go.
	MaxOpen int
	// OpenTimeout evicts a message not seen for this long in log time
	// (default DefaultOpenTimeout). Postfix logs a deferred message's
	// sender again at every retry, so only its client and Message-ID
	// are lost when a message is evicted and later delivered.
	OpenTimeout time.Duration
	// Progress, when set, is called from the reading goroutine after
	// each block read.
	Progress func(Progress)
	// Logger receives debug messages (evictions); nil discards them.
	Logger *slog.Logger
}

// Progress is how far Read got.
type Progress struct {
	Input string // the input being read
	Read  int64  // bytes read so far from all inputs, before decompression
	Total int64  // sum of the inputs' sizes, -1 when one is unknown
}

// Stats describe a Read.
type Stats struct {
	Inputs int
	// Formats counts inputs per format name.
	Formats map[string]int
	// Bytes and Lines read (after decompression).
	Bytes, Lines int64
	// Events counts lines that carried a mail event.
	Events int64
	// Malformed lines were skipped; Samples holds the first ones.
	Malformed int64
	Samples   []*LineError
	// Attempts counts delivery attempts per status.
	Attempts [NumStatus]int64
	// Evicted counts messages dropped while open (OpenTimeout, MaxOpen);
	// Open counts those still open at the end (in flight, deferred, or
	// finished in a later log).
	Evicted, Open int64
	// First and Last are the earliest and latest event times.
	First, Last time.Time
	// NoEvents names inputs that had lines but no mail event (the wrong
	// format, or a log of something else).
	NoEvents []string
	// InputErrors are inputs that could not be opened, or whose reading
	// or decompression failed part way (a truncated .gz): what they gave
	// before is counted, and reading goes on with the next input.
	InputErrors []error
}

// Count returns the delivery attempts with status s.
func (s *Stats) Count(st Status) int64 { return s.Attempts[st] }

type block struct {
	input  int
	format Format
	buf    []byte
	data   []byte
	long   bool // data is the start of one overlong line
	events []Event
	lines  int
	bad    []badLine
	done   chan struct{}
}

type badLine struct {
	line int32
	err  error
	text string
}

// Read reads the inputs in order and calls fn for every delivery attempt,
// in log order. fn must not keep d (copy what it needs); an error from fn
// or the context stops the read and is returned. A malformed line is
// counted in Stats and skipped; an input that cannot be opened or
// decompressed is recorded in Stats.InputErrors and skipped (after what it
// gave), so one bad file never loses the others.
func Read(ctx context.Context, inputs []Input, opt Options, fn func(d *Delivery) error) (*Stats, error) {
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	if opt.MaxOpen <= 0 {
		opt.MaxOpen = DefaultMaxOpen
	}
	if opt.OpenTimeout <= 0 {
		opt.OpenTimeout = DefaultOpenTimeout
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	nblocks := opt.Workers*3 + 2
	free := make(chan *block, nblocks)
	for i := 0; i < nblocks; i++ {
		free <- &block{buf: make([]byte, blockSize), done: make(chan struct{}, 1)}
	}
	work := make(chan *block, nblocks)
	order := make(chan *block, nblocks)

	var wg sync.WaitGroup
	for i := 0; i < opt.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				parseBlock(b)
				b.done <- struct{}{}
			}
		}()
	}

	var inputErrs []error // written by the reading goroutine, read after it
	var read atomic.Int64
	total := int64(0)
	for _, in := range inputs {
		if in.Size < 0 {
			total = -1
			break
		}
		total += in.Size
	}
	go func() {
		defer close(order)
		defer close(work)
		for i, in := range inputs {
			if err := readInput(ctx, i, in, &opt, free, work, order, &read, total); err != nil {
				if ctx.Err() != nil {
					return
				}
				// Keep what was read and go on with the next input.
				inputErrs = append(inputErrs, fmt.Errorf("maillog: %s: %w", in.Name, err))
			}
		}
	}()

	j := newJoiner(inputs, &opt, fn)
	var joinErr error
	for b := range order {
		<-b.done
		if joinErr == nil && ctx.Err() == nil {
			joinErr = j.block(b)
			if joinErr != nil {
				cancel()
			}
		}
		free <- b
	}
	wg.Wait()
	j.finish()
	j.stats.InputErrors = inputErrs
	if joinErr != nil {
		return j.stats, joinErr
	}
	if err := ctx.Err(); err != nil {
		return j.stats, err
	}
	return j.stats, nil
}

// readInput reads one input into blocks cut at line ends.
func readInput(ctx context.Context, idx int, in Input, opt *Options, free, work, order chan *block, read *atomic.Int64, total int64) error {
	rc, err := in.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	br := bufio.NewReaderSize(countingReader{rc, read}, 64<<10)
	r, closeDec, err := decompress(br)
	if err != nil {
		return err
	}
	defer closeDec()
	format := opt.Format
	var carry []byte // a partial line from the previous block
	skipping := false
	first := true
	for {
		var b *block
		select {
		case b = <-free:
		case <-ctx.Done():
			return ctx.Err()
		}
		b.input, b.long, b.lines = idx, false, 0
		b.events, b.bad = b.events[:0], b.bad[:0]
		n := copy(b.buf, carry)
		carry = carry[:0]
		// Fill the block. A decompressor's error (a truncated .gz) ends
		// the input after what it gave is parsed.
		var rerr error
		eof := false
		for n < len(b.buf) {
			m, err := r.Read(b.buf[n:])
			n += m
			if err != nil {
				eof = true
				if err != io.EOF {
					rerr = err
				}
				break
			}
		}
		data := b.buf[:n]
		if skipping {
			// The rest of an overlong line, already reported.
			nl := bytes.IndexByte(data, '\n')
			if nl < 0 {
				free <- b
				if eof {
					return rerr
				}
				continue
			}
			skipping = false
			data = data[nl+1:]
		}
		if !eof {
			nl := bytes.LastIndexByte(data, '\n')
			if nl < 0 {
				// One line fills the block: report it, skip to its end.
				b.long, skipping = true, true
				data = data[:min(len(data), 200)]
			} else {
				carry = append(carry, data[nl+1:]...)
				data = data[:nl+1]
			}
		}
		b.data = data
		if first {
			if format == nil {
				format = sniff(data)
			}
			if p, ok := format.(Preparer); ok {
				format = p.ForInput(string(data[:min(len(data), 64<<10)]))
			}
		}
		first = false
		b.format = format
		if opt.Progress != nil {
			opt.Progress(Progress{Input: in.Name, Read: read.Load(), Total: total})
		}
		select {
		case order <- b:
		case <-ctx.Done():
			free <- b
			return ctx.Err()
		}
		work <- b
		if eof {
			return rerr
		}
	}
}

// sniff picks the format most of the block's first lines match.
func sniff(block []byte) Format {
	formats := Formats()
	hits := make([]int, len(formats))
	data := string(block[:min(len(block), 64<<10)])
	for n := 0; n < 64 && len(data) > 0; n++ {
		line := data
		if nl := strings.IndexByte(data, '\n'); nl >= 0 {
			line, data = data[:nl], data[nl+1:]
		} else {
			data = ""
		}
		for i, f := range formats {
			if f.Sniff(line) {
				hits[i]++
			}
		}
	}
	best := 0
	for i := range formats {
		if hits[i] > hits[best] {
			best = i
		}
	}
	return formats[best]
}

// parseBlock parses a block's lines into events (run by the workers).
// The block is copied into one string, which every line and every event
// field is a substring of: one allocation per block, not one per line.
func parseBlock(b *block) {
	if b.long {
		b.lines = 1
		b.bad = append(b.bad, badLine{line: 1, err: ErrLongLine, text: clip(string(b.data[:min(len(b.data), 200)]))})
		return
	}
	data := string(b.data)
	for len(data) > 0 {
		var line string
		if nl := strings.IndexByte(data, '\n'); nl >= 0 {
			line, data = data[:nl], data[nl+1:]
		} else {
			line, data = data, ""
		}
		b.lines++
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if len(line) == 0 {
			continue
		}
		n := len(b.events)
		evs, err := parseLine(b.format, line, b.events)
		if err != nil {
			b.bad = append(b.bad, badLine{line: int32(b.lines), err: err, text: clip(line)})
			evs = evs[:n]
		}
		for i := n; i < len(evs); i++ {
			evs[i].line = int32(b.lines)
		}
		b.events = evs
	}
}

// parseLine calls f.Parse, turning a panic into a malformed line: one bad
// line must never stop an audit of years of logs.
func parseLine(f Format, line string, evs []Event) (out []Event, err error) {
	n := len(evs)
	defer func() {
		if r := recover(); r != nil {
			out, err = evs[:n], fmt.Errorf("parser failure: %v", r)
		}
	}()
	out, err = f.Parse(line, evs)
	if len(out) < n {
		return evs[:n], fmt.Errorf("parser failure: %s dropped events", f.Name())
	}
	return out, err
}

// clip keeps a malformed line's start, copied so as not to keep its block.
func clip(s string) string {
	const n = 120
	if len(s) > n {
		return strings.Clone(s[:n]) + "…"
	}
	return strings.Clone(s)
}

// openSet holds the open messages per host and queue id. Most logs have
// one host, so a lookup compares the host with the last one and hashes
// only the queue id.
type openSet struct {
	hosts    map[string]*hostOpen
	lastHost string // a copy: never a block's memory
	last     map[string]*openMsg
	n        int
}

type hostOpen struct {
	name string
	m    map[string]*openMsg
}

func (s *openSet) hostMap(host string, create bool) map[string]*openMsg {
	if s.last != nil && host == s.lastHost {
		return s.last
	}
	h := s.hosts[host]
	if h == nil {
		if !create {
			return nil
		}
		h = &hostOpen{name: strings.Clone(host), m: map[string]*openMsg{}}
		s.hosts[h.name] = h
	}
	s.lastHost, s.last = h.name, h.m
	return h.m
}

func (s *openSet) get(host, qid string) *openMsg {
	if m := s.hostMap(host, false); m != nil {
		return m[qid]
	}
	return nil
}

// put adds a message; qid must not share memory with a block.
func (s *openSet) put(host, qid string, o *openMsg) {
	s.hostMap(host, true)[qid] = o
	s.n++
}

func (s *openSet) del(host, qid string) {
	if m := s.hostMap(host, false); m != nil {
		if _, ok := m[qid]; ok {
			delete(m, qid)
			s.n--
			if len(m) == 0 {
				s.dropHost(s.lastHost)
			}
		}
	}
}

// dropHost forgets a host without open messages, so that a log of many
// hosts does not leave a map behind for each.
func (s *openSet) dropHost(name string) {
	if h := s.hosts[name]; h != nil && len(h.m) == 0 {
		delete(s.hosts, name)
		if name == s.lastHost {
			s.lastHost, s.last = "", nil
		}
	}
}

// removeIf removes every message drop returns true for.
func (s *openSet) removeIf(drop func(*openMsg) bool) {
	for name, h := range s.hosts {
		for q, o := range h.m {
			if drop(o) {
				delete(h.m, q)
				s.n--
			}
		}
		s.dropHost(name)
	}
}

// openMsg is what the log said so far about a message not yet finished.
type openMsg struct {
	client, messageID, from string
	hasFrom                 bool
	size                    int64
	last                    int64 // Unix seconds of its last line
}

// joiner joins events into deliveries, in log order.
type joiner struct {
	inputs []Input
	opt    *Options
	fn     func(*Delivery) error
	stats  *Stats
	clock  *clock
	open   openSet
	input  int
	line   int64 // lines of the current input before the current block
	events int64 // events of the current input
	lines  int64

	now, nextSweep int64
	d              Delivery
}

func newJoiner(inputs []Input, opt *Options, fn func(*Delivery) error) *joiner {
	return &joiner{
		inputs: inputs, opt: opt, fn: fn,
		stats: &Stats{Formats: map[string]int{}},
		clock: newClock(opt.Location, opt.Year),
		open:  openSet{hosts: map[string]*hostOpen{}},
		input: -1,
	}
}

func (j *joiner) endInput() {
	if j.input >= 0 && j.lines > 0 && j.events == 0 {
		j.stats.NoEvents = append(j.stats.NoEvents, j.inputs[j.input].Name)
	}
}

func (j *joiner) block(b *block) error {
	if b.input != j.input {
		j.endInput()
		j.input, j.line, j.events, j.lines = b.input, 0, 0, 0
		j.clock.reset(j.inputs[b.input].ModTime)
		j.stats.Inputs++
		j.stats.Formats[b.format.Name()]++
	}
	name := j.inputs[b.input].Name
	j.stats.Bytes += int64(len(b.data))
	j.stats.Lines += int64(b.lines)
	j.lines += int64(b.lines)
	for _, bad := range b.bad {
		j.stats.Malformed++
		if len(j.stats.Samples) < maxSamples {
			j.stats.Samples = append(j.stats.Samples, &LineError{File: name, Line: j.line + int64(bad.line), Err: bad.err, Text: bad.text})
		}
	}
	j.stats.Events += int64(len(b.events))
	j.events += int64(len(b.events))
	for i := range b.events {
		if err := j.event(&b.events[i], name); err != nil {
			return err
		}
	}
	j.line += int64(b.lines)
	return nil
}

func (j *joiner) event(ev *Event, name string) error {
	t := j.clock.time(&ev.Stamp)
	sec := t.Unix()
	if j.stats.First.IsZero() || t.Before(j.stats.First) {
		j.stats.First = t
	}
	if t.After(j.stats.Last) {
		j.stats.Last = t
	}
	if sec > j.now {
		j.now = sec
		if j.nextSweep == 0 {
			j.nextSweep = sec + int64(j.opt.OpenTimeout/time.Second)/4
		}
	}
	o := j.open.get(ev.Host, ev.QueueID)
	if ev.Kind&IsDone != 0 {
		if o != nil {
			j.open.del(ev.Host, ev.QueueID)
		}
		return nil
	}
	// Lines about a message (not its deliveries) open or update its state.
	if ev.Kind&IsRecipient == 0 && ev.Kind&(HasClient|HasMessageID|HasSender) != 0 {
		if o == nil {
			o = &openMsg{size: -1, last: sec}
			j.open.put(ev.Host, strings.Clone(ev.QueueID), o)
			if j.open.n > j.opt.MaxOpen {
				j.sweep(true)
			}
		}
		if ev.Kind&HasClient != 0 {
			o.client = strings.Clone(ev.Client)
		}
		if ev.Kind&HasMessageID != 0 {
			o.messageID = strings.Clone(ev.MessageID)
		}
		if ev.Kind&HasSender != 0 {
			if !o.hasFrom || o.from != ev.From {
				o.from = strings.Clone(ev.From)
			}
			o.hasFrom = true
			if ev.Size >= 0 {
				o.size = ev.Size
			}
		}
	}
	if o != nil {
		o.last = sec
	}
	if j.nextSweep != 0 && j.now >= j.nextSweep {
		j.sweep(false)
	}
	if ev.Kind&IsRecipient == 0 {
		return nil
	}
	j.stats.Attempts[ev.Status]++
	d := &j.d
	*d = Delivery{
		Time: t, Host: ev.Host, QueueID: ev.QueueID,
		To: ev.To, OrigTo: ev.OrigTo, Relay: ev.Relay, DSN: ev.DSN, Status: ev.Status, Detail: ev.Detail,
		Size: -1, File: name, Line: j.line + int64(ev.line),
	}
	if o != nil {
		d.Client, d.MessageID, d.From, d.SenderKnown, d.Size = o.client, o.messageID, o.from, o.hasFrom, o.size
	}
	// A format whose delivery lines say it all (Exchange's rows).
	if ev.Kind&HasSender != 0 {
		d.From, d.SenderKnown = ev.From, true
	}
	if ev.Client != "" {
		d.Client = ev.Client
	}
	if ev.MessageID != "" {
		d.MessageID = ev.MessageID
	}
	if ev.Size >= 0 {
		d.Size = ev.Size
	}
	return j.fn(d)
}

// sweep evicts messages idle for OpenTimeout and, when full (or still over
// MaxOpen), the least recently seen down to nine tenths of MaxOpen.
func (j *joiner) sweep(full bool) {
	timeout := int64(j.opt.OpenTimeout / time.Second)
	j.nextSweep = j.now + max(timeout/4, 1)
	before := j.open.n
	j.open.removeIf(func(o *openMsg) bool { return o.last < j.now-timeout })
	if target := j.opt.MaxOpen * 9 / 10; (full || j.open.n > j.opt.MaxOpen) && j.open.n > target {
		lasts := make([]int64, 0, j.open.n)
		j.open.removeIf(func(o *openMsg) bool { lasts = append(lasts, o.last); return false })
		slices.Sort(lasts)
		cut := lasts[len(lasts)-target]
		j.open.removeIf(func(o *openMsg) bool { return j.open.n > target && o.last < cut })
		j.open.removeIf(func(*openMsg) bool { return j.open.n > target }) // ties at the cut
	}
	if n := before - j.open.n; n > 0 {
		j.stats.Evicted += int64(n)
		j.opt.Logger.Debug("maillog: evicted open messages", "count", n, "open", j.open.n)
	}
}

func (j *joiner) finish() {
	j.endInput()
	j.stats.Open = int64(j.open.n)
}
