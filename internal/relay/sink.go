package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/store"
)

// SinkEventKind is the event-log kind of a refused recipient at the sink.
const SinkEventKind = "sink"

// Sink is an SMTP server for the organisation's own defensive
// registrations (army.ml registered by the owner of army.mil): it accepts
// no mail at all. Every recipient at one of its domains is refused with
// 550 5.1.2 and the address the sender probably meant, any other with 550
// 5.7.1; only metadata (time, client, sender, recipient, the domain
// meant) is recorded, never content.
type Sink struct {
	// Domains maps each lookalike to the domain it imitates (the
	// "DOMAIN INTENDED" lines of stray scan --emit-deny).
	Domains map[string]string
	// Store, when set, gets one "sink" event per refused recipient.
	Store store.Store
	Log   *slog.Logger
	// Domain is the name in the greeting (default: the host name).
	Domain string

	once    sync.Once
	srv     *smtp.Server
	refused *prometheus.CounterVec
	// events queues what record stores; emu guards closing it against a
	// session still running after Shutdown (which then drops its event).
	emu    sync.RWMutex
	closed bool
	events chan store.Event
	done   chan struct{}
}

// NewSink makes a sink; reg may be nil.
func NewSink(domains map[string]string, st store.Store, log *slog.Logger, reg prometheus.Registerer) *Sink {
	s := &Sink{Domains: domains, Store: st, Log: log.With("frontend", "sink")}
	s.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stray_sink_refused_total",
		Help: "Recipients refused by the defensive-registration sink, by kind (lookalike: one of its domains; other).",
	}, []string{"kind"})
	if reg != nil {
		reg.MustRegister(s.refused)
	}
	return s
}

func (s *Sink) init() {
	s.once.Do(func() {
		if s.Domain == "" {
			s.Domain = hostname()
		}
		srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
			return &sinkSession{s: s, client: clientIP(c.Conn().RemoteAddr())}, nil
		}))
		srv.Domain = s.Domain
		srv.MaxMessageBytes = 1 << 20
		srv.MaxRecipients = 100
		srv.ReadTimeout = 30 * time.Second
		srv.WriteTimeout = 30 * time.Second
		srv.EnableSMTPUTF8 = true
		srv.ErrorLog = errorLog{s.Log}
		s.srv = srv
		s.events = make(chan store.Event, 1024)
		s.done = make(chan struct{})
		go s.record()
	})
}

// record writes events in the background, so that a slow store never
// holds a connection.
// queue hands ev to record without waiting: a full queue, or one closed by
// Shutdown, drops it with a log line.
func (s *Sink) queue(ev store.Event) {
	s.emu.RLock()
	defer s.emu.RUnlock()
	if s.closed {
		s.Log.Warn("sink stopping; event not recorded")
		return
	}
	select {
	case s.events <- ev:
	default:
		s.Log.Warn("sink event queue full; event not recorded")
	}
}

func (s *Sink) record() {
	defer close(s.done)
	for ev := range s.events {
		if s.Store == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := s.Store.AddEvent(ctx, ev); err != nil {
			s.Log.Error("cannot record a sink event", "err", err)
		}
		cancel()
	}
}

// Serve accepts connections on l until Shutdown.
func (s *Sink) Serve(l net.Listener) error {
	s.init()
	err := s.srv.Serve(l)
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, closes the sessions when ctx ends, and writes
// the events still queued.
func (s *Sink) Shutdown(ctx context.Context) error {
	s.init()
	err := s.srv.Shutdown(ctx)
	if ctx.Err() != nil {
		s.srv.Close()
	}
	s.emu.Lock()
	if !s.closed {
		s.closed = true
		close(s.events)
	}
	s.emu.Unlock()
	<-s.done
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

func clientIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	return a.String()
}

type sinkSession struct {
	s      *Sink
	client string
	from   string
}

func (x *sinkSession) Reset()        {}
func (x *sinkSession) Logout() error { return nil }
func (x *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	x.from = from
	return nil
}

func (x *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s := x.s
	var local, domain string
	i := strings.LastIndexByte(to, '@')
	ok := i > 0
	if ok {
		local, domain = to[:i], to[i+1:]
	}
	intended := ""
	if ok {
		if d, err := detect.NormalizeDomain(domain); err == nil {
			intended, ok = s.Domains[d]
			domain = d
		} else {
			ok = false
		}
	}
	if !ok {
		s.refused.WithLabelValues("other").Inc()
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "this server accepts no mail"}
	}
	s.refused.WithLabelValues("lookalike").Inc()
	meant := ""
	if intended != "" {
		meant = local + "@" + intended
	}
	s.Log.Info("refused", "client", x.client, "sender", clip(x.from), "rcpt", clip(to), "intended", intended)
	detail, _ := json.Marshal(map[string]string{"client": x.client, "sender": clip(x.from), "recipient": clip(to), "intended": intended})
	s.queue(store.Event{Time: time.Now(), Kind: SinkEventKind, Actor: "sink", Detail: string(detail)})
	msg := fmt.Sprintf("<%s>: %s is not in use; check the address", clip(to), domain)
	if meant != "" {
		msg = fmt.Sprintf("<%s>: you probably meant %s", clip(to), clip(meant))
	}
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 2}, Message: asciiOnly(msg)}
}

func (x *sinkSession) Data(r io.Reader) error {
	io.Copy(io.Discard, r)
	return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "this server accepts no mail"}
}

func clip(s string) string {
	if len(s) > 256 {
		return s[:256] + "..."
	}
	return s
}

// asciiOnly keeps an SMTP reply printable ASCII.
func asciiOnly(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 0x20 && r < 0x7f {
			b.WriteRune(r)
		} else {
			b.WriteByte('?')
		}
	}
	return b.String()
}
