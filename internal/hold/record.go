package hold

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/store"
)

// Recorder implements gate.Recorder on a store: delivered recipient domains
// feed the learned correspondents (so a first-time domain is known without
// a log import), flagged decisions go to the event log. It queues and writes
// in the background; when the store cannot keep up, records are dropped
// and counted, never blocking mail.
type Recorder struct {
	st      store.Store
	log     *slog.Logger
	q       chan func(context.Context) error
	dropped sync.Mutex
	drops   int
	done    chan struct{}
}

// NewRecorder starts a recorder; Close stops it after writing what is
// queued.
func NewRecorder(st store.Store, log *slog.Logger) *Recorder {
	r := &Recorder{st: st, log: log, q: make(chan func(context.Context) error, 4096), done: make(chan struct{})}
	go r.run()
	return r
}

func (r *Recorder) run() {
	defer close(r.done)
	for f := range r.q {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := f(ctx); err != nil {
			r.log.Warn("recording failed", "err", err)
		}
		cancel()
	}
}

func (r *Recorder) enqueue(f func(context.Context) error) {
	select {
	case r.q <- f:
	default:
		r.dropped.Lock()
		r.drops++
		n := r.drops
		r.dropped.Unlock()
		if n%1000 == 1 {
			r.log.Warn("recorder queue full; dropping records", "dropped", n)
		}
	}
}

// Delivered implements gate.Recorder.
func (r *Recorder) Delivered(sender string, rcpts []string) {
	seen := map[string]bool{}
	var domains []string
	for _, a := range rcpts {
		if i := strings.LastIndexByte(a, '@'); i >= 0 {
			d := strings.ToLower(a[i+1:])
			if !seen[d] {
				seen[d] = true
				domains = append(domains, d)
			}
		}
	}
	if len(domains) == 0 {
		return
	}
	now := time.Now()
	r.enqueue(func(ctx context.Context) error { return r.st.AddDeliveries(ctx, sender, domains, now) })
}

// Flagged implements gate.Recorder.
func (r *Recorder) Flagged(queueID, sender string, res gate.RcptResult) {
	d := res.Decision
	ev := store.Event{Time: time.Now(), Kind: "decision", Actor: "gate",
		Detail: fmt.Sprintf("queue_id=%s sender=%s rcpt=%s verdict=%s intended=%s action=%s rule=%s",
			queueID, sender, res.Recipient, d.Finding.Verdict, d.Finding.Intended, d.Action, d.Rule)}
	r.enqueue(func(ctx context.Context) error { return r.st.AddEvent(ctx, ev) })
}

// Close writes what is queued and stops.
func (r *Recorder) Close() {
	close(r.q)
	<-r.done
}
