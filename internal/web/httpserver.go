package web

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/stray-mail/stray/internal/connserver"
)

// HTTPLimits bound what one HTTP client may hold: time to send a request,
// an idle keep-alive connection, and the number of open connections.
type HTTPLimits struct {
	// MaxConns caps the open connections (0: no cap). At the cap a new
	// connection takes the place of the one that has gone longest without
	// a request (idle, or still sending its headers or body); when every
	// connection is answering a request the new one gets a 503.
	MaxConns int
	// ReadHeaderTimeout bounds a request's headers (default 10s),
	// ReadTimeout the whole request with its body (default 30s),
	// WriteTimeout the response (default 2m), IdleTimeout a keep-alive
	// connection between requests (default 30s).
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
}

// HTTPServer serves a handler under HTTPLimits.
type HTTPServer struct {
	srv      *http.Server
	maxConns int
	log      *slog.Logger
}

type connKey struct{}

// NewHTTPServer makes a server for h under lim.
func NewHTTPServer(h http.Handler, lim HTTPLimits, log *slog.Logger) *HTTPServer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	or := func(d, def time.Duration) time.Duration {
		if d <= 0 {
			return def
		}
		return d
	}
	return &HTTPServer{
		srv: &http.Server{
			Handler:           tracked(h),
			ReadHeaderTimeout: or(lim.ReadHeaderTimeout, 10*time.Second),
			ReadTimeout:       or(lim.ReadTimeout, 30*time.Second),
			WriteTimeout:      or(lim.WriteTimeout, 2*time.Minute),
			IdleTimeout:       or(lim.IdleTimeout, 30*time.Second),
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
			ConnContext: func(ctx context.Context, c net.Conn) context.Context {
				if tc, ok := c.(*tls.Conn); ok {
					c = tc.NetConn()
				}
				if cc, ok := c.(*connserver.Conn); ok {
					return context.WithValue(ctx, connKey{}, cc)
				}
				return ctx
			},
		},
		maxConns: lim.MaxConns,
		log:      log,
	}
}

// Serve serves connections from l until Shutdown; it then returns
// http.ErrServerClosed. Accept errors are retried, never returned.
func (s *HTTPServer) Serve(l net.Listener) error {
	cl := connserver.NewListener(l, s.maxConns, s.log)
	cl.Refuse = refuse
	return s.srv.Serve(cl)
}

// ServeTLS is Serve over TLS with cfg (its GetCertificate may re-read
// certificate files); the connection cap counts the TCP connections.
func (s *HTTPServer) ServeTLS(l net.Listener, cfg *tls.Config) error {
	cl := connserver.NewListener(l, s.maxConns, s.log)
	s.srv.TLSConfig = cfg
	return s.srv.Serve(tls.NewListener(cl, cfg))
}

// HSTS tells browsers to use https for this host from now on (a year); it
// wraps the handler of a listener that serves TLS.
func HSTS(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		h.ServeHTTP(w, r)
	})
}

// Shutdown stops accepting and waits for requests in progress until ctx
// ends.
func (s *HTTPServer) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

const busyBody = "stray is busy; try again in a moment\n"

// refuse answers a connection refused at the cap.
func refuse(c net.Conn) {
	io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Retry-After: 1\r\nConnection: close\r\nContent-Length: 37\r\n\r\n"+busyBody)
}

// tracked marks a connection busy while its request is answered, so the
// connection cap does not close it, except while the handler waits for
// the request body: a client that trickles a body can give way.
func tracked(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Context().Value(connKey{}).(*connserver.Conn)
		if c == nil {
			h.ServeHTTP(w, r)
			return
		}
		c.Progress()
		c.SetBusy(true)
		defer func() { c.Progress(); c.SetBusy(false) }()
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &bodyReader{ReadCloser: r.Body, c: c}
		}
		h.ServeHTTP(w, r)
	})
}

type bodyReader struct {
	io.ReadCloser
	c *connserver.Conn
}

func (b *bodyReader) Read(p []byte) (int, error) {
	b.c.SetBusy(false)
	defer b.c.SetBusy(true)
	return b.ReadCloser.Read(p)
}
