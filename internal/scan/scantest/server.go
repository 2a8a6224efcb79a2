// Package scantest runs an in-process DNS server for tests of lookalike
// scanning: it answers every question from one zone, as a recursive
// resolver would after finishing its work, on a loopback address only.
//
// The zone is master-file text (RFC 1035). Besides ordinary records it
// understands wildcards (*.cm answers for every name below cm that has no
// records of its own) and two TXT directives that are never served:
//
//	broken.example.  TXT "stray-test:servfail"     ; answer SERVFAIL
//	slow.example.    TXT "stray-test:delay=2s"     ; answer after 2s
//
// Names not in the zone get NXDOMAIN. It never forwards a question
// anywhere: it is the whole DNS for the process under test.
package scantest

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Server is a running in-process DNS server.
type Server struct {
	// Addr is the HOST:PORT it listens on, for UDP and TCP.
	Addr string

	byName   map[string][]dns.RR // lower-case FQDN → records
	nodes    map[string]bool     // names that exist: owners and their parents (empty non-terminals)
	servfail map[string]bool
	delay    map[string]time.Duration
	queries  atomic.Int64
	udp, tcp *dns.Server
	closed   chan struct{}
	once     sync.Once
}

// Start serves zone on addr, which must be a loopback address
// ("127.0.0.1:0" picks a free port).
func Start(zone, addr string) (*Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("scantest: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("scantest: %s is not a loopback address", host)
	}
	s := &Server{
		byName:   map[string][]dns.RR{},
		nodes:    map[string]bool{},
		servfail: map[string]bool{},
		delay:    map[string]time.Duration{},
		closed:   make(chan struct{}),
	}
	if err := s.load(zone); err != nil {
		return nil, err
	}
	// UDP first on the requested port, then TCP on the port UDP got.
	var pc net.PacketConn
	var l net.Listener
	for try := 0; ; try++ {
		pc, err = net.ListenPacket("udp", addr)
		if err != nil {
			return nil, fmt.Errorf("scantest: %w", err)
		}
		l, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if try == 10 || !strings.HasSuffix(addr, ":0") {
			return nil, fmt.Errorf("scantest: %w", err)
		}
	}
	s.Addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(s.serve)
	s.udp = &dns.Server{PacketConn: pc, Handler: h}
	s.tcp = &dns.Server{Listener: l, Handler: h}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
	}
	return s, nil
}

func (s *Server) load(zone string) error {
	zp := dns.NewZoneParser(strings.NewReader(zone), ".", "zone")
	zp.SetDefaultTTL(300)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		h := rr.Header()
		h.Name = strings.ToLower(h.Name)
		if txt, isTXT := rr.(*dns.TXT); isTXT && len(txt.Txt) == 1 && strings.HasPrefix(txt.Txt[0], "stray-test:") {
			switch d := strings.TrimPrefix(txt.Txt[0], "stray-test:"); {
			case d == "servfail":
				s.servfail[h.Name] = true
			case strings.HasPrefix(d, "delay="):
				dur, err := time.ParseDuration(strings.TrimPrefix(d, "delay="))
				if err != nil {
					return fmt.Errorf("scantest: %s: %w", h.Name, err)
				}
				s.delay[h.Name] = dur
			default:
				return fmt.Errorf("scantest: %s: unknown directive %q", h.Name, d)
			}
			continue
		}
		s.byName[h.Name] = append(s.byName[h.Name], rr)
		for n := h.Name; n != "." && n != ""; {
			s.nodes[n] = true
			_, next := splitFirst(n)
			n = next
		}
	}
	if err := zp.Err(); err != nil {
		return fmt.Errorf("scantest: %w", err)
	}
	return nil
}

// splitFirst splits "a.b.c." into "a" and "b.c.".
func splitFirst(n string) (string, string) {
	i := strings.IndexByte(n, '.')
	if i < 0 || i == len(n)-1 {
		return n, "."
	}
	return n[:i], n[i+1:]
}

// Queries is how many questions the server has answered.
func (s *Server) Queries() int64 { return s.queries.Load() }

// Close stops the server and cuts short any delayed answer.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		close(s.closed)
		err = errors.Join(s.udp.Shutdown(), s.tcp.Shutdown())
	})
	return err
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if d, ok := s.delay[name]; ok {
		select {
		case <-time.After(d):
		case <-s.closed:
			return
		}
	}
	if s.servfail[name] {
		m.Rcode = dns.RcodeServerFailure
		w.WriteMsg(m)
		return
	}
	m.Answer = s.lookup(name, q.Qtype, 0)
	if len(m.Answer) == 0 && !s.nodes[name] && s.wildcard(name) == "" {
		m.Rcode = dns.RcodeNameError
	}
	size := dns.MinMsgSize
	if o := req.IsEdns0(); o != nil {
		size = int(o.UDPSize())
		m.SetEdns0(o.UDPSize(), false)
	}
	if _, isTCP := w.RemoteAddr().(*net.TCPAddr); isTCP {
		size = dns.MaxMsgSize
	}
	m.Truncate(size)
	w.WriteMsg(m)
}

// lookup returns name's records of type qtype, following CNAMEs inside the
// zone, and synthesising from a wildcard when name has no records.
func (s *Server) lookup(name string, qtype uint16, depth int) []dns.RR {
	rrs, owner := s.byName[name], name
	if !s.nodes[name] {
		if wc := s.wildcard(name); wc != "" {
			rrs = s.byName[wc]
		}
	}
	var out []dns.RR
	for _, rr := range rrs {
		t := rr.Header().Rrtype
		if t != qtype && !(t == dns.TypeCNAME && qtype != dns.TypeCNAME) {
			continue
		}
		c := dns.Copy(rr)
		c.Header().Name = owner
		out = append(out, c)
		if cn, ok := rr.(*dns.CNAME); ok && depth < 8 {
			out = append(out, s.lookup(strings.ToLower(cn.Target), qtype, depth+1)...)
		}
	}
	return out
}

// wildcard returns the wildcard owner that answers for name ("*.cm." for
// "gmail.cm."), or "" when none does: the closest existing ancestor of name
// must have a "*" child.
func (s *Server) wildcard(name string) string {
	for _, n := splitFirst(name); ; _, n = splitFirst(n) {
		if s.nodes[n] || n == "." {
			if w := "*." + n; s.byName[w] != nil {
				return w
			}
			return ""
		}
	}
}
