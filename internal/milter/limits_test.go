package milter

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/connserver"
	"github.com/stray-mail/stray/internal/gate/gatetest"
	"github.com/stray-mail/stray/internal/policy"
)

// packet encodes one packet whose announced length is announce (code +
// data) followed by the given data.
func packet(announce uint32, code byte, data []byte) []byte {
	b := make([]byte, 5, 5+len(data))
	binary.BigEndian.PutUint32(b, announce)
	b[4] = code
	return append(b, data...)
}

// Not parallel: it measures the bytes allocated by the process.
func TestReadPacketAnnouncingAMebibyteAllocatesOnlyWhatArrives(t *testing.T) {
	in := packet(MaxPacket, cmdBody, bytes.Repeat([]byte("x"), 100))
	const runs = 20
	readers := make([]*bufio.Reader, runs)
	for i := range readers {
		readers[i] = bufio.NewReader(bytes.NewReader(in))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, r := range readers {
		if _, err := ReadPacket(r); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("ReadPacket of a truncated packet: %v, want io.ErrUnexpectedEOF", err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 16<<10 {
		t.Fatalf("a packet announcing %d bytes with 100 sent allocated %d bytes; want what arrived, not what was announced", MaxPacket, per)
	}
}

func TestReadPacketReadsPacketsOfEverySizeWhole(t *testing.T) {
	t.Parallel()
	for _, size := range []int{0, 1, 100, 4095, 4096, 64 << 10, 64<<10 + 1, 300 << 10, MaxPacket - 1} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i * 7)
		}
		in := append(packet(uint32(size+1), cmdBody, data), packet(1, cmdQuit, nil)...)
		for name, r := range map[string]io.Reader{"whole": bytes.NewReader(in), "trickled": iotest.HalfReader(bytes.NewReader(in))} {
			br := bufio.NewReader(r)
			p, err := ReadPacket(br)
			if err != nil {
				t.Fatalf("%d bytes %s: %v", size, name, err)
			}
			if p.Code != cmdBody || !bytes.Equal(p.Data, data) {
				t.Fatalf("%d bytes %s: got code %q and %d bytes, want the packet back", size, name, p.Code, len(p.Data))
			}
			if p, err := ReadPacket(br); err != nil || p.Code != cmdQuit {
				t.Fatalf("%d bytes %s: the next packet: %q, %v", size, name, p.Code, err)
			}
		}
	}
}

// closedWithin reports whether the server closed nc within d.
func closedWithin(nc net.Conn, d time.Duration) bool {
	nc.SetReadDeadline(time.Now().Add(d))
	_, err := io.ReadAll(nc)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

func TestStalledOrSilentPeersAreClosedAfterThePacketTimeout(t *testing.T) {
	t.Parallel()
	g := newGate(t, detect.Knowledge{}, policy.Config{})
	s := &Server{Sessions: GateSessions(g), IdleTimeout: time.Minute, PacketTimeout: 300 * time.Millisecond}
	addr := gatetest.Serve(t, s)
	tests := []struct {
		name string
		send func(c *testClient)
	}{
		{"SilentAfterConnecting", func(*testClient) {}},
		{"HalfAPacketAnnouncingAMebibyte", func(c *testClient) {
			c.nc.Write(packet(MaxPacket, cmdBody, []byte("abc")))
		}},
		{"HalfAPacketAfterNegotiating", func(c *testClient) {
			c.negotiate()
			c.nc.Write(packet(100, cmdRcpt, []byte("<a@")))
		}},
		{"ThreeBytesOfALength", func(c *testClient) { c.nc.Write([]byte{0, 0, 1}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, addr)
			tt.send(c)
			if !closedWithin(c.nc, 5*time.Second) {
				t.Fatal("the connection was still open after 5s; want it closed after the 300ms packet timeout")
			}
		})
	}
	// An idle, negotiated connection waits for the MTA's next message.
	c := dial(t, addr)
	c.negotiate()
	if closedWithin(c.nc, time.Second) {
		t.Fatal("an idle negotiated connection was closed before IdleTimeout")
	}
	c.nc.SetDeadline(time.Now().Add(5 * time.Second))
	c.mail("a@example.org", "Q")
	if code, _ := c.rcpt("b@gmail.com"); code != respContinue {
		t.Fatalf("after idling: %q", code)
	}
}

func TestAtTheConnectionCapASilentPeerMakesRoomForTheMTA(t *testing.T) {
	t.Parallel()
	g := newGate(t, detect.Knowledge{}, policy.Config{})
	s := &Server{Sessions: GateSessions(g), MaxConns: 2}
	addr := gatetest.Serve(t, s)
	silent := []*testClient{dial(t, addr), dial(t, addr)}
	time.Sleep(connserver.DefaultStall + 200*time.Millisecond)
	c := dial(t, addr)
	c.negotiate()
	c.mail("a@army.mil", "Q1")
	if code, _ := c.rcpt("c@army.mil"); code != respContinue {
		t.Fatalf("rcpt at the cap: %q", code)
	}
	n := 0
	for _, sc := range silent {
		if closedWithin(sc.nc, 100*time.Millisecond) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d silent connections closed, want the 1 that made room", n)
	}
}

// FuzzReadLargePacket: a packet read as its bytes arrive is the packet
// read at once, whatever the announced length, the bytes sent and how
// they are split.
func FuzzReadLargePacket(f *testing.F) {
	f.Add(uint32(smallPacket+1), []byte("abc"), uint8(1))
	f.Add(uint32(200), bytes.Repeat([]byte("x"), 300), uint8(7))
	f.Add(uint32(MaxPacket), []byte{}, uint8(0))
	f.Fuzz(func(t *testing.T, announce uint32, data []byte, split uint8) {
		announce %= 1 << 17 // around smallPacket, not every size up to MaxPacket
		if announce == 0 {
			return
		}
		// Repeat the data so that large lengths can be reached.
		in := data
		for len(in) > 0 && len(in) < int(announce)+16 && len(in) < 1<<18 {
			in = append(in, in...)
		}
		var want Packet
		wantErr := true
		if len(in) >= int(announce) {
			want, wantErr = Packet{Code: in[0], Data: in[1:announce]}, false
		}
		var r io.Reader = bytes.NewReader(in)
		if split%2 == 1 {
			r = iotest.HalfReader(r)
		}
		got, err := readLargePacket(bufio.NewReaderSize(r, 16+int(split)), int(announce))
		if (err != nil) != wantErr {
			t.Fatalf("announce %d, %d bytes: err %v, want error %v", announce, len(in), err, wantErr)
		}
		if err == nil && (got.Code != want.Code || !bytes.Equal(got.Data, want.Data)) {
			t.Fatalf("announce %d, %d bytes: got %q+%d bytes, want %q+%d bytes", announce, len(in), got.Code, len(got.Data), want.Code, len(want.Data))
		}
	})
}

// FuzzReadPacketInPlace: the copy-free read gives the same packets and the
// same errors as ReadPacket, whatever the bytes and however the reader's
// buffer splits them, and firstNUL agrees with splitNUL.
func FuzzReadPacketInPlace(f *testing.F) {
	f.Add([]byte{0, 0, 0, 13, 'O', 0, 0, 0, 6, 0, 0, 1, 0xff, 0, 0x1f, 0xff, 0xff}, uint16(16))
	f.Add(append([]byte{0, 0, 0, 12, 'D', 'M'}, nul("{i}", "ABC")...), uint16(0))
	f.Add([]byte{0, 0, 0, 9, 'R', '<', 'a', '@', 'b', '>', 0, 0, 0, 0, 0, 0, 1, 'Q'}, uint16(5))
	f.Add([]byte{0, 0, 0, 0}, uint16(0))
	f.Add([]byte{0, 0, 1, 0, 'B', 'x'}, uint16(20))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, uint16(0))
	f.Fuzz(func(t *testing.T, b []byte, size uint16) {
		a := bufio.NewReader(bytes.NewReader(b))
		// A small buffer sends the larger packets down the copying path.
		c := bufio.NewReaderSize(iotest.HalfReader(bytes.NewReader(b)), 16+int(size))
		for i := 0; i < 100; i++ {
			want, werr := ReadPacket(a)
			got, gerr := readPacket(c)
			if (werr == nil) != (gerr == nil) || werr != nil && werr.Error() != gerr.Error() {
				t.Fatalf("packet %d: error %v, ReadPacket's %v", i, gerr, werr)
			}
			if werr != nil {
				return
			}
			if got.Code != want.Code || !bytes.Equal(got.Data, want.Data) {
				t.Fatalf("packet %d: %q %q, ReadPacket's %q %q", i, got.Code, got.Data, want.Code, want.Data)
			}
			// MAIL's and RCPT's first argument, taken without a split.
			if args := splitNUL(got.Data); len(args) > 0 && firstNUL(got.Data) != args[0] {
				t.Fatalf("firstNUL(%q) = %q, splitNUL's first %q", got.Data, firstNUL(got.Data), args[0])
			}
		}
	})
}
