package connserver

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMain runs the benchmark's client when the benchmark starts this
// test binary as one (benchClientEnv set), and the tests otherwise.
func TestMain(m *testing.M) {
	if os.Getenv(benchClientEnv) != "" {
		if err := benchClient(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const benchClientEnv = "CONNSERVER_BENCH_CLIENT"

// benchClient is the benchmark's peer, in a process of its own so that
// the server's CPU time is its own: it opens STRAY_BENCH_N connections to
// STRAY_BENCH_ADDR on STRAY_BENCH_NETWORK, STRAY_BENCH_SESSIONS at a time,
// and on each has two exchanges of a line, then waits for the server to
// close: a milter conversation for one message per SMTP session, in
// miniature.
func benchClient() error {
	network, addr := os.Getenv("STRAY_BENCH_NETWORK"), os.Getenv("STRAY_BENCH_ADDR")
	n, _ := strconv.Atoi(os.Getenv("STRAY_BENCH_N"))
	sessions, _ := strconv.Atoi(os.Getenv("STRAY_BENCH_SESSIONS"))
	var (
		mu    sync.Mutex
		left  = n
		first error
		wg    sync.WaitGroup
	)
	for range sessions {
		wg.Go(func() {
			for {
				mu.Lock()
				if left == 0 || first != nil {
					mu.Unlock()
					return
				}
				left--
				mu.Unlock()
				if err := exchange(network, addr); err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

func exchange(network, addr string) error {
	nc, err := net.Dial(network, addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	r := bufio.NewReaderSize(nc, 64)
	for _, line := range []string{"hello\n", "quit\n"} {
		if _, err := io.WriteString(nc, line); err != nil {
			return err
		}
		if got, err := r.ReadString('\n'); err != nil || got != line {
			return fmt.Errorf("reply %q, %v; want %q", got, err, line)
		}
	}
	if _, err := r.ReadByte(); err != io.EOF {
		return fmt.Errorf("after quit: %v, want EOF", err)
	}
	return nil
}

// untilQuit echoes lines until "quit", which it answers before it ends
// the connection.
func untilQuit(c *Conn) {
	r := bufio.NewReaderSize(c, 64)
	for {
		c.SetReadDeadline(c.IdleDeadline(10 * time.Second))
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if _, err := io.WriteString(c, line); err != nil || line == "quit\n" {
			return
		}
	}
}

// serverCPU is this process's CPU time so far (user and system).
func serverCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkConnectionPerSession is the accept path's cost as Postfix
// pays it with one message per SMTP session: a connection, two short
// exchanges, and close, over loopback TCP and a unix socket, from a
// client in another process, one connection at a time ("serial") and ten
// at once ("sessions10", smtp-source -s 10 in the throughput test).
// Besides the wall time it reports the server process's CPU time per
// connection (cpu-ns/op, getrusage): the figure to compare, since wall
// time moves with whatever else runs on the machine. "unix" listens as the
// daemon does (ListenUnix); "unix-net" with net's Accept, for comparison.
func BenchmarkConnectionPerSession(b *testing.B) {
	for _, kind := range []string{"tcp", "unix", "unix-net"} {
		network := strings.TrimSuffix(kind, "-net")
		for _, sessions := range []int{1, 10} {
			name := kind + "/serial"
			if sessions > 1 {
				name = fmt.Sprintf("%s/sessions%d", kind, sessions)
			}
			b.Run(name, func(b *testing.B) {
				var l net.Listener
				if kind == "unix-net" {
					nl, err := net.Listen("unix", filepath.Join(b.TempDir(), "s.sock"))
					if err != nil {
						b.Fatal(err)
					}
					l = nl
				} else {
					l = listenOn(b, kind)
				}
				s := &Server{Handle: untilQuit}
				go s.Serve(l)
				b.Cleanup(func() { s.Shutdown(context.Background()) })
				client := exec.Command(os.Args[0], "-test.run=^$")
				client.Env = append(os.Environ(), benchClientEnv+"=1",
					"STRAY_BENCH_NETWORK="+network, "STRAY_BENCH_ADDR="+l.Addr().String(),
					"STRAY_BENCH_N="+strconv.Itoa(b.N), "STRAY_BENCH_SESSIONS="+strconv.Itoa(sessions))
				client.Stderr = os.Stderr
				b.ReportAllocs()
				b.ResetTimer()
				cpu := serverCPU(b)
				if err := client.Run(); err != nil {
					b.Fatalf("client: %v", err)
				}
				cpu = serverCPU(b) - cpu
				b.StopTimer()
				b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}
