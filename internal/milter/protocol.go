// Package milter is stray's milter front end for Postfix and Sendmail: a
// small, fuzzed implementation of the milter protocol (version 6) that
// translates MAIL, RCPT, DATA and end-of-message into calls of a Session
// (a gate.Session, through GateSessions) and its answers into milter
// replies; with hold and confirm, it hands a held message's content to a
// Holder (hold.Holder), which builds what the store keeps.
//
// It decides nothing itself. It asks the MTA only for the stages stray needs
// (no connect, helo, headers or body), accepts a clean message at DATA so
// its content is never streamed, and keeps per-message state across
// recipients: a rejected recipient does not reset the others. It asks for
// the macros it needs (the queue id, the SASL login {auth_authen} at MAIL,
// the resolved recipient {rcpt_addr} at RCPT) and hands them to the session.
//
// Postfix opens a milter connection per SMTP session, so a connection's
// cost is measured (BenchmarkCleanMessagePerConnection, make perf-milter
// against a C libmilter no-op): it reads and writes its socket with raw
// system calls through the runtime's poller (rawio_linux.go), reads
// packets in place, allocates nothing per packet of a clean message,
// formats the connection's log attributes only for a line it logs, and
// moves its deadlines only in steps; the daemon accepts its unix socket
// with connserver.ListenUnix.
package milter

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Commands from the MTA.
const (
	cmdAbort   = 'A'
	cmdBody    = 'B'
	cmdConnect = 'C'
	cmdMacro   = 'D'
	cmdEOM     = 'E'
	cmdHelo    = 'H'
	cmdQuitNC  = 'K'
	cmdHeader  = 'L'
	cmdMail    = 'M'
	cmdEOH     = 'N'
	cmdOptneg  = 'O'
	cmdQuit    = 'Q'
	cmdRcpt    = 'R'
	cmdData    = 'T'
	cmdUnknown = 'U'
)

// Replies to the MTA.
const (
	respAccept     = 'a'
	respContinue   = 'c'
	respTempfail   = 't'
	respReplyCode  = 'y'
	respAddHeader  = 'h'
	respQuarantine = 'q'
	respOptneg     = 'O'
	respDelRcpt    = '-'
	respDiscard    = 'd'
)

// Actions (what the milter may do at end of message).
const (
	actAddHeader  = 0x01
	actDelRcpt    = 0x08
	actQuarantine = 0x20
	actSetSymList = 0x100 // the milter names the macros it wants per stage
)

// Macro stages (SMFIM_*) and the macros stray asks for at each, in the
// option negotiation: the queue id, the SASL login at MAIL (for the
// policy's scopes) and, at RCPT, the address the MTA resolved the
// recipient to (Postfix: after its percent hack, bang path and quoted
// routing), which the gate checks too.
const (
	stageMail = 2
	stageRcpt = 3
)

var wantMacros = []struct {
	stage uint32
	names string
}{
	{stageMail, "i {auth_authen}"},
	{stageRcpt, "i {rcpt_addr}"},
}

// Protocol flags: steps the MTA should skip, and replies it should not wait
// for.
const (
	protNoConnect = 0x01
	protNoHelo    = 0x02
	protNoBody    = 0x10
	protNoHeaders = 0x20
	protNoEOH     = 0x40
	protNoUnknown = 0x100
	protNRHeader  = 0x80
	protNRMail    = 0x4000 // no reply to MAIL: one round trip less per message
	protNREOH     = 0x40000
	protNRBody    = 0x80000
)

// Version is the milter protocol version stray speaks.
const Version = 6

// MaxPacket bounds one packet; the MTA's body chunks are at most 64 KiB.
const MaxPacket = 1 << 20

// ErrPacketTooLarge is returned for a packet over MaxPacket.
var ErrPacketTooLarge = errors.New("milter: packet too large")

// Packet is one milter message: a command or reply code and its data.
type Packet struct {
	Code byte
	Data []byte
}

// ReadPacket reads one packet: a 4-byte big-endian length (code + data),
// the code, the data.
func ReadPacket(r *bufio.Reader) (Packet, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Packet{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return Packet{}, errors.New("milter: empty packet")
	}
	if n > MaxPacket {
		return Packet{}, ErrPacketTooLarge
	}
	if n > smallPacket && int(n) > r.Buffered() {
		return readLargePacket(r, int(n))
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return Packet{}, truncated(err)
	}
	return Packet{Code: buf[0], Data: buf[1:]}, nil
}

// readPacket is ReadPacket without a copy when the packet fits in r's
// buffer (every packet of a clean message does): its Data is r's buffer,
// valid until the next read from r.
func readPacket(r *bufio.Reader) (Packet, error) {
	hdr, err := r.Peek(4)
	if err != nil {
		if len(hdr) > 0 && err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Packet{}, err
	}
	n := binary.BigEndian.Uint32(hdr)
	if n == 0 || n > MaxPacket || int(n)+4 > r.Size() {
		return ReadPacket(r)
	}
	b, err := r.Peek(4 + int(n))
	if err != nil {
		return Packet{}, truncated(err)
	}
	r.Discard(4 + int(n))
	return Packet{Code: b[4], Data: b[5 : 4+n]}, nil
}

// smallPacket is the largest packet read into a buffer of its announced
// length at once: a body chunk from the MTA (at most 65535 bytes and its
// code).
const smallPacket = 64 << 10

// readLargePacket reads a packet of n bytes into a buffer that grows as the
// bytes arrive: a peer that announces a mebibyte and sends a few bytes costs
// a few bytes, not the mebibyte.
func readLargePacket(r *bufio.Reader, n int) (Packet, error) {
	buf := make([]byte, 0, min(n, max(4096, r.Buffered())))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(2*cap(buf), n))
			copy(grown, buf)
			buf = grown
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil && len(buf) < n {
			return Packet{}, truncated(err)
		}
	}
	return Packet{Code: buf[0], Data: buf[1:]}, nil
}

func truncated(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("milter: truncated packet: %w", err)
}

// WritePacket writes one packet.
func WritePacket(w io.Writer, code byte, data []byte) error {
	if len(data) <= 64 {
		var buf [69]byte
		binary.BigEndian.PutUint32(buf[:], uint32(1+len(data)))
		buf[4] = code
		n := copy(buf[5:], data)
		_, err := w.Write(buf[:5+n])
		return err
	}
	buf := make([]byte, 5+len(data))
	binary.BigEndian.PutUint32(buf, uint32(1+len(data)))
	buf[4] = code
	copy(buf[5:], data)
	_, err := w.Write(buf)
	return err
}

// writePacket writes one packet to w without allocating.
func writePacket(w *bufio.Writer, code byte, data []byte) {
	var hdr [5]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(1+len(data)))
	hdr[4] = code
	w.Write(hdr[:])
	w.Write(data)
}

// optneg is an option negotiation packet's contents.
type optneg struct {
	version, actions, protocol uint32
}

func parseOptneg(data []byte) (optneg, error) {
	if len(data) < 12 {
		return optneg{}, fmt.Errorf("milter: option negotiation of %d bytes, want 12", len(data))
	}
	return optneg{
		version:  binary.BigEndian.Uint32(data[0:4]),
		actions:  binary.BigEndian.Uint32(data[4:8]),
		protocol: binary.BigEndian.Uint32(data[8:12]),
	}, nil
}

func (o optneg) bytes() []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint32(b[0:4], o.version)
	binary.BigEndian.PutUint32(b[4:8], o.actions)
	binary.BigEndian.PutUint32(b[8:12], o.protocol)
	return b
}

// macroRequest appends the macro lists stray wants to an option
// negotiation reply (protocol 6, with actSetSymList).
func macroRequest(b []byte) []byte {
	for _, m := range wantMacros {
		b = binary.BigEndian.AppendUint32(b, m.stage)
		b = append(b, m.names...)
		b = append(b, 0)
	}
	return b
}

// splitNUL splits NUL-terminated strings ("a\x00b\x00" → a, b). A missing
// final NUL is tolerated.
func splitNUL(data []byte) []string {
	if len(data) == 0 {
		return nil
	}
	data = bytes.TrimSuffix(data, []byte{0})
	parts := bytes.Split(data, []byte{0})
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = string(p)
	}
	return out
}

// firstNUL is the first of NUL-terminated strings (splitNUL(data)[0], ""
// when there is none) without splitting the rest.
func firstNUL(data []byte) string {
	if i := bytes.IndexByte(data, 0); i >= 0 {
		data = data[:i]
	}
	return string(data)
}

// parseMacros parses a macro packet: the command it precedes, then
// name/value pairs. Names lose their braces ({i} → i).
func parseMacros(data []byte) (byte, map[string]string, error) {
	if len(data) < 1 {
		return 0, nil, errors.New("milter: empty macro packet")
	}
	kv := splitNUL(data[1:])
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		name := kv[i]
		if len(name) > 2 && name[0] == '{' && name[len(name)-1] == '}' {
			name = name[1 : len(name)-1]
		}
		m[name] = kv[i+1]
	}
	return data[0], m, nil
}

// macroValue finds a macro's value in name/value pairs without allocating
// a map; name matches with or without braces ({i} or i).
func macroValue(pairs []byte, name string) (string, bool) {
	for len(pairs) > 0 {
		k := bytes.IndexByte(pairs, 0)
		if k < 0 {
			return "", false
		}
		key := pairs[:k]
		pairs = pairs[k+1:]
		v := bytes.IndexByte(pairs, 0)
		if v < 0 {
			v = len(pairs)
		}
		val := pairs[:v]
		if v < len(pairs) {
			pairs = pairs[v+1:]
		} else {
			pairs = nil
		}
		if len(key) > 2 && key[0] == '{' && key[len(key)-1] == '}' {
			key = key[1 : len(key)-1]
		}
		if string(key) == name {
			return string(val), true
		}
	}
	return "", false
}

// nul joins strings as NUL-terminated fields.
func nul(ss ...string) []byte {
	var b []byte
	for _, s := range ss {
		b = append(b, s...)
		b = append(b, 0)
	}
	return b
}
