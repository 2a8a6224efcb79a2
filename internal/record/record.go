package record

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/policy"
	"github.com/stray-mail/stray/internal/store"
)

// Recorder implements gate.Recorder on a store: clean delivered recipient
// domains feed the learned correspondents (so a first-time domain is known
// without a log import), a recipient released as typed becomes a
// per-sender allow, flagged decisions go to the event log. It queues and writes
// in the background; when the store cannot keep up, records are dropped
// and counted, never blocking mail. Deliveries are summed in memory per
// sender, domain and day and written every LearnFlush in one transaction
// (one commit a second, not one a message: a commit waits for the disk,
// beside the MTA's own queue writes); every decision is counted per day,
// verdict and action in memory and the counts are added to the store every
// CountFlush.
type Recorder struct {
	st      store.Store
	log     *slog.Logger
	q       chan func(context.Context) error
	dropped sync.Mutex
	drops   int
	done    chan struct{}

	counts   sync.Mutex
	pending  map[countKey]int64
	learnMu  sync.Mutex
	learning map[deliveryKey]deliverySpan
	stop     chan struct{}
	flushed  chan struct{}
	stopOnce sync.Once

	onAllow func()
}

// OnSenderAllow installs f, called (in the background) after a release as
// typed stored a new per-sender allow, so that the daemon rebuilds its
// policy at once. Set it before the recorder sees traffic.
func (r *Recorder) OnSenderAllow(f func()) { r.onAllow = f }

type countKey struct {
	day             time.Time
	verdict, action string
}

// deliveryKey is what deliveries are summed by until they are written.
type deliveryKey struct {
	sender, domain string
	day            time.Time
}

// deliverySpan is deliveries summed: how many, the first and the last.
type deliverySpan struct {
	n           int64
	first, last time.Time
}

// add is s with m more deliveries from first to last.
func (s deliverySpan) add(m int64, first, last time.Time) deliverySpan {
	if s.n == 0 {
		return deliverySpan{m, first, last}
	}
	if first.Before(s.first) {
		s.first = first
	}
	if last.After(s.last) {
		s.last = last
	}
	s.n += m
	return s
}

const (
	// CountFlush is how often the decision counts are written.
	CountFlush = 10 * time.Second
	// LearnFlush is how often the deliveries summed in memory are written:
	// what a crash can lose of the learning, which needs several senders
	// over several days anyway.
	LearnFlush = time.Second
	// maxLearning bounds the (sender, domain, day) sums held between
	// writes, while the store is down say; more are dropped and counted.
	maxLearning = 100_000
)

// New starts a recorder; Close stops it after writing what is
// queued.
func New(st store.Store, log *slog.Logger) *Recorder {
	r := &Recorder{st: st, log: log, q: make(chan func(context.Context) error, 4096), done: make(chan struct{}),
		pending: map[countKey]int64{}, learning: map[deliveryKey]deliverySpan{}, stop: make(chan struct{}), flushed: make(chan struct{})}
	go r.run()
	go r.flushLoop()
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

func (r *Recorder) flushLoop() {
	defer close(r.flushed)
	counts := time.NewTicker(CountFlush)
	defer counts.Stop()
	learn := time.NewTicker(LearnFlush)
	defer learn.Stop()
	for {
		select {
		case <-counts.C:
			r.flushCounts()
		case <-learn.C:
			r.flushLearning()
		case <-r.stop:
			r.Flush()
			return
		}
	}
}

// Flush writes the deliveries and decision counts gathered so far, as a
// reload does before it reads what was learned. On a store error they are
// kept and written with the next flush.
func (r *Recorder) Flush() {
	r.flushLearning()
	r.flushCounts()
}

func (r *Recorder) flushLearning() {
	flushSums(r, &r.learnMu, &r.learning, "learned deliveries",
		func(ctx context.Context, batch map[deliveryKey]deliverySpan) error {
			cs := make([]store.DeliveryCount, 0, len(batch))
			for k, s := range batch {
				cs = append(cs, store.DeliveryCount{Domain: k.domain, Sender: k.sender, N: s.n, First: s.first, Last: s.last})
			}
			return r.st.AddDeliveryCounts(ctx, cs)
		}, r.addLearning)
}

// addLearning adds s to the sums under k, or drops it when maxLearning
// sums are held already. The caller holds learnMu.
func (r *Recorder) addLearning(k deliveryKey, s deliverySpan) {
	old, ok := r.learning[k]
	if !ok && len(r.learning) >= maxLearning {
		r.drop()
		return
	}
	r.learning[k] = old.add(s.n, s.first, s.last)
}

func (r *Recorder) flushCounts() {
	flushSums(r, &r.counts, &r.pending, "decision counts",
		func(ctx context.Context, batch map[countKey]int64) error {
			var cs []store.DecisionCount
			for k, n := range batch {
				cs = append(cs, store.DecisionCount{Day: k.day, Verdict: k.verdict, Action: k.action, N: n})
			}
			return r.st.AddDecisionCounts(ctx, cs)
		}, func(k countKey, n int64) { r.pending[k] += n })
}

// flushSums writes the sums gathered in *sums (guarded by mu) with write,
// leaving an empty map to gather the next ones. On a store error it logs
// and gives them back to add (called with mu held), for the next try.
func flushSums[K comparable, V any](r *Recorder, mu *sync.Mutex, sums *map[K]V, what string,
	write func(context.Context, map[K]V) error, add func(K, V)) {
	mu.Lock()
	if len(*sums) == 0 {
		mu.Unlock()
		return
	}
	batch := *sums
	*sums = map[K]V{}
	mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := write(ctx, batch); err != nil {
		r.log.Warn("writing "+what+" failed; keeping them for the next try", "err", err)
		mu.Lock()
		for k, v := range batch {
			add(k, v)
		}
		mu.Unlock()
	}
}

// Decided implements gate.Recorder.
func (r *Recorder) Decided(v detect.Verdict, a policy.Action) {
	k := countKey{day: time.Now().UTC().Truncate(24 * time.Hour), verdict: v.String(), action: a.String()}
	r.counts.Lock()
	r.pending[k]++
	r.counts.Unlock()
}

func (r *Recorder) enqueue(f func(context.Context) error) {
	select {
	case r.q <- f:
	default:
		r.drop()
	}
}

// drop counts a record that could not be kept, and says so now and then.
func (r *Recorder) drop() {
	r.dropped.Lock()
	r.drops++
	n := r.drops
	r.dropped.Unlock()
	if n%1000 == 1 {
		r.log.Warn("recorder cannot keep up; dropping records", "dropped", n)
	}
}

// Delivered implements gate.Recorder. Only clean recipients feed the
// learned correspondents: one let through by an allow rule teaches nothing
// beyond the rule, and one released as typed becomes a per-sender allow of
// that one address (the sender confirmed it; nobody else did).
func (r *Recorder) Delivered(sender string, rcpts []gate.Delivery) {
	seen := map[string]bool{}
	var domains []string
	var released []releasedTo
	for _, d := range rcpts {
		switch d.Passed {
		case gate.PassedClean:
			if i := strings.LastIndexByte(d.Recipient, '@'); i >= 0 {
				dom := strings.ToLower(d.Recipient[i+1:])
				if !seen[dom] {
					seen[dom] = true
					domains = append(domains, dom)
				}
			}
		case gate.PassedReleased:
			if rc, err := policy.NormalizePattern(d.Recipient); err == nil && strings.Contains(rc, "@") {
				released = append(released, releasedTo{rc, d.By})
			}
		}
	}
	now := time.Now()
	if len(domains) > 0 {
		// What the store would refuse is dropped here, alone, not with
		// the batch it would poison.
		learn := domains[:0]
		for _, d := range domains {
			if err := (store.DeliveryCount{Domain: d, Sender: sender, N: 1}).Check(); err != nil {
				r.log.Warn("delivery not learned", "err", err)
				continue
			}
			learn = append(learn, d)
		}
		today := now.UTC().Truncate(24 * time.Hour)
		r.learnMu.Lock()
		for _, d := range learn {
			r.addLearning(deliveryKey{sender, d, today}, deliverySpan{1, now, now})
		}
		r.learnMu.Unlock()
	}
	from := strings.ToLower(sender)
	if from == "" || len(released) == 0 {
		return
	}
	r.enqueue(func(ctx context.Context) error {
		for _, rc := range released {
			err := r.st.AddSenderAllow(ctx, &store.SenderAllow{Sender: from, Recipient: rc.rcpt, Note: "released as typed",
				CreatedBy: rc.createdBy(), CreatedAt: now})
			switch {
			case errors.Is(err, store.ErrExists):
			case err != nil:
				return err
			case r.onAllow != nil:
				r.onAllow()
			}
		}
		return nil
	})
}

// releasedTo is a recipient released as typed, and who released it.
type releasedTo struct{ rcpt, by string }

// createdBy names the sender allow's author: the administrator who
// released the message ("admin:NAME"), or "release" for the sender's own
// confirmation (and when who released it is unknown).
func (r releasedTo) createdBy() string {
	if strings.HasPrefix(r.by, "admin:") {
		return r.by
	}
	return "release"
}

// Decision is the detail of a "decision" event, as JSON.
type Decision struct {
	QueueID    string `json:"queue_id,omitempty"`
	Sender     string `json:"sender"`
	Recipient  string `json:"rcpt"`
	Verdict    string `json:"verdict"`
	Intended   string `json:"intended,omitempty"`
	Suggestion string `json:"suggestion,omitempty"`
	Action     string `json:"action"`
	Rule       string `json:"rule,omitempty"`
}

// Flagged implements gate.Recorder.
func (r *Recorder) Flagged(queueID, sender string, res gate.RcptResult) {
	d := res.Decision
	detail, _ := json.Marshal(Decision{QueueID: queueID, Sender: sender, Recipient: res.Recipient,
		Verdict: d.Finding.Verdict.String(), Intended: d.Finding.Intended, Suggestion: d.Finding.Suggestion,
		Action: d.Action.String(), Rule: d.Rule})
	ev := store.Event{Time: time.Now(), Kind: "decision", Actor: "gate", Detail: string(detail)}
	r.enqueue(func(ctx context.Context) error { return r.st.AddEvent(ctx, ev) })
}

// Close writes what is queued, flushes the counts and stops.
func (r *Recorder) Close() {
	close(r.q)
	<-r.done
	r.stopOnce.Do(func() { close(r.stop) })
	<-r.flushed
}
