// Package synth writes realistic Postfix logs, deterministically, for
// benchmarks and tests: an outbound submission relay that also receives
// mail for its own domain. Its line shapes are copied from a real Postfix
// 3.7 (submission smtpd with TLS and SASL, cleanup, qmgr, smtp with TLS,
// LMTP to Dovecot, bounce notifications, deferrals retried later,
// postscreen, anvil, NOQUEUE rejects, warnings), interleaved as concurrent
// sessions interleave. A small share of recipients are typos of the
// domains they meant; the generator counts, as ground truth, what was
// delivered where.
//
// It is test support: nothing in the product imports it.
package synth

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"
)

// Options shape a log.
type Options struct {
	// Size is the number of bytes to write (at least; the last message is
	// finished).
	Size int64
	// Seed makes the log; the same seed and options give the same bytes.
	Seed uint64
	// Start is the time of the first line (default 2024-10-01 00:00 UTC);
	// Span about the time the log covers (default 150 days, across a new
	// year).
	Start time.Time
	Span  time.Duration
	// ISO writes RFC 3339 timestamps instead of classic syslog ones.
	ISO bool
	// TypoRate is the share of outbound recipients that are typos
	// (default 0.003).
	TypoRate float64
	// Host is the logging host (default "mx1").
	Host string
}

// Truth is what the log contains.
type Truth struct {
	Lines, Messages int64
	// Sent counts status=sent lines (what grep -c status=sent counts).
	Sent int64
	// Bounced and Deferred count those attempts.
	Bounced, Deferred int64
	// TypoSent counts delivered typo recipients per typo domain.
	TypoSent map[string]int64
	// TypoNotSent counts typo recipients that were not delivered (bounced).
	TypoNotSent int64
}

// Typos are the mistyped domains the generator uses, with the domain each
// imitates; those whose TLD does not exist bounce.
var Typos = map[string]string{
	"gmial.com":      "gmail.com",
	"gmail.co":       "gmail.com",
	"gmai.com":       "gmail.com",
	"outlok.com":     "outlook.com",
	"hotmial.com":    "hotmail.com",
	"yaho.com":       "yahoo.com",
	"army.ml":        "army.mil",
	"navy.ml":        "navy.mil",
	"gmail.con":      "gmail.com",
	"partner-1.cm":   "partner-1.com",
	"uscompany.com":  "us.company.com",
	"outlook.co":     "outlook.com",
	"protonmial.com": "protonmail.com",
}

var typoList = func() []string {
	l := make([]string, 0, len(Typos))
	for d := range Typos {
		l = append(l, d)
	}
	sort.Strings(l)
	return l
}()

func bounces(d string) bool { return d[len(d)-4:] == ".con" }

var providers = []string{"gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "army.mil", "navy.mil",
	"us.company.com", "protonmail.com", "icloud.com", "gmx.de", "web.de", "orange.fr", "comcast.net"}

const ownDomain = "corp.example"

type line struct {
	after int // lines of other messages to wait for before this one
	text  func(g *gen) []byte
}

type message struct {
	lines []line
	// then is resumed some time after this message's last line (a
	// deferred message's retry).
	then *message
}

type gen struct {
	o     Options
	r     *rand.Rand
	w     *bufio.Writer
	truth *Truth
	t     time.Time
	qn    uint64
	buf   []byte
	// partners is a Zipf-ish list of correspondent domains.
	partners []string
	senders  []string
	retry    []*message // deferred messages, resumed later
}

// Write writes a log to w.
func Write(w io.Writer, o Options) (*Truth, error) {
	if o.Start.IsZero() {
		o.Start = time.Date(2024, 10, 1, 0, 0, 0, 0, time.UTC)
	}
	if o.Span <= 0 {
		o.Span = 150 * 24 * time.Hour
	}
	if o.TypoRate <= 0 {
		o.TypoRate = 0.003
	}
	if o.Host == "" {
		o.Host = "mx1"
	}
	g := &gen{o: o, r: rand.New(rand.NewPCG(o.Seed, 0x5eed)), w: bufio.NewWriterSize(w, 1<<20),
		truth: &Truth{TypoSent: map[string]int64{}}, t: o.Start}
	lines := o.Size / 165
	if lines < 1 {
		lines = 1
	}
	for i := 0; i < 3000; i++ {
		g.partners = append(g.partners, fmt.Sprintf("partner-%d.%s", i, []string{"com", "org", "net", "de", "co.uk", "fr"}[i%6]))
	}
	first := []string{"john", "mary", "ahmed", "li", "olga", "pedro", "sara", "tom", "anna", "kofi", "yuki", "ivan"}
	last := []string{"smith", "garcia", "chen", "muller", "rossi", "nowak", "kim", "diallo", "silva", "brown"}
	for i := 0; i < 2400; i++ {
		g.senders = append(g.senders, fmt.Sprintf("%s.%s%d@%s", first[i%len(first)], last[(i/len(first))%len(last)], i/120, ownDomain))
	}
	// Sessions come in bursts of up to a dozen that interleave line by
	// line a second or so apart; the quiet gaps between bursts spread the
	// log over Span. A message's lines are seconds apart, as in real logs
	// (a deferred message is resumed in a later burst).
	const inflight = 12
	const linesPerBurst = 55
	gap := time.Duration(float64(o.Span) / (float64(lines) / linesPerBurst))
	// Lines of a burst are about a second apart, less in a big log, so
	// that bursts take at most about half of Span.
	step := min(time.Second, time.Duration(float64(o.Span)/float64(lines)/2))
	var written int64
	for written < o.Size || len(g.retry) > 0 {
		var active []*message
		for n := 1 + g.r.IntN(inflight); len(active) < n; {
			if written >= o.Size {
				if len(g.retry) == 0 {
					break
				}
				active, g.retry = append(active, g.retry...), nil // finish what waits
				break
			}
			active = append(active, g.next())
		}
		for len(active) > 0 {
			i := g.r.IntN(len(active))
			m := active[i]
			if l := &m.lines[0]; l.after > 0 && len(active) > 1 {
				l.after-- // let other sessions go first
				continue
			}
			g.t = g.t.Add(time.Duration(g.r.Int64N(int64(2*step) + 1)))
			b := m.lines[0].text(g)
			n, err := g.w.Write(b)
			if err != nil {
				return g.truth, err
			}
			written += int64(n)
			g.truth.Lines++
			m.lines = m.lines[1:]
			if len(m.lines) == 0 {
				active = append(active[:i], active[i+1:]...)
				if m.then != nil {
					g.retry = append(g.retry, m.then)
				}
			}
		}
		g.t = g.t.Add(time.Duration(g.r.ExpFloat64() * float64(gap)))
	}
	return g.truth, g.w.Flush()
}

func (g *gen) stamp() []byte {
	b := g.buf[:0]
	if g.o.ISO {
		b = g.t.AppendFormat(b, "2006-01-02T15:04:05.000000-07:00")
	} else {
		b = g.t.AppendFormat(b, time.Stamp)
	}
	b = append(b, ' ')
	b = append(b, g.o.Host...)
	b = append(b, ' ')
	return b
}

func (g *gen) pid(base int) string { return strconv.Itoa(base + g.r.IntN(40)) }

func (g *gen) qid() string {
	g.qn++
	return fmt.Sprintf("%011X", (g.qn*0x5DEECE66D+0xB)&(1<<44-1))
}

func (g *gen) ip() string {
	return fmt.Sprintf("%d.%d.%d.%d", 11+g.r.IntN(200), g.r.IntN(256), g.r.IntN(256), 1+g.r.IntN(254))
}

// text makes a line from a format evaluated when the line is written.
func (g *gen) text(format string, args ...any) func(*gen) []byte {
	return func(g *gen) []byte {
		b := g.stamp()
		b = fmt.Appendf(b, format, args...)
		g.buf = append(b, '\n')
		return g.buf
	}
}

func (g *gen) delay() string {
	a, b, c, d := g.r.IntN(30), g.r.IntN(5), g.r.IntN(40), g.r.IntN(90)
	return fmt.Sprintf("delay=%.2g, delays=%.2g/%.2g/%.2g/%.2g", float64(a+b+c+d)/100, float64(a)/100, float64(b)/100, float64(c)/100, float64(d)/100)
}

func (g *gen) recipient() (string, bool) {
	local := fmt.Sprintf("%s%d", []string{"info", "sales", "j.doe", "contact", "office", "m.lee", "hr", "a.kumar", "support", "ops"}[g.r.IntN(10)], g.r.IntN(400))
	if g.r.Float64() < g.o.TypoRate {
		return local + "@" + typoList[g.r.IntN(len(typoList))], true
	}
	if g.r.IntN(3) == 0 {
		return local + "@" + providers[g.r.IntN(len(providers))], false
	}
	// Zipf-ish: a few partners get most of the mail.
	i := int(float64(len(g.partners)) * g.r.Float64() * g.r.Float64() * g.r.Float64())
	return local + "@" + g.partners[i], false
}

func domainOf(a string) string {
	for i := len(a) - 1; i >= 0; i-- {
		if a[i] == '@' {
			return a[i+1:]
		}
	}
	return a
}

// next makes the lines of one session: outbound submission (60%),
// inbound (30%), or noise (10%: postscreen, a NOQUEUE reject, anvil).
func (g *gen) next() *message {
	if len(g.retry) > 0 && g.r.IntN(8) == 0 {
		m := g.retry[0]
		g.retry = g.retry[1:]
		return m
	}
	switch k := g.r.IntN(10); {
	case k < 6:
		return g.outbound()
	case k < 9:
		return g.inbound()
	default:
		return g.noise()
	}
}

func (g *gen) outbound() *message {
	g.truth.Messages++
	m := &message{}
	add := func(after int, f func(*gen) []byte) { m.lines = append(m.lines, line{after, f}) }
	q := g.qid()
	host := fmt.Sprintf("ws-%d.corp.example", g.r.IntN(900))
	ip := fmt.Sprintf("10.%d.%d.%d", g.r.IntN(20), g.r.IntN(256), 1+g.r.IntN(254))
	spid := g.pid(20000)
	sender := g.senders[g.r.IntN(len(g.senders))]
	user := sender[:len(sender)-len(ownDomain)-1]
	n := 1 + g.r.IntN(3)
	if g.r.IntN(20) == 0 {
		n += 3 + g.r.IntN(8)
	}
	size := 900 + g.r.IntN(60000)
	add(0, g.text("postfix/submission/smtpd[%s]: connect from %s[%s]", spid, host, ip))
	add(0, g.text("postfix/submission/smtpd[%s]: Anonymous TLS connection established from %s[%s]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256", spid, host, ip))
	add(0, g.text("postfix/submission/smtpd[%s]: %s: client=%s[%s], sasl_method=PLAIN, sasl_username=%s", spid, q, host, ip, user))
	add(0, g.text("postfix/cleanup[%s]: %s: message-id=<%08x.%d@%s>", g.pid(21000), q, g.r.Uint32(), g.r.IntN(1e6), host))
	add(0, g.text("postfix/qmgr[1123]: %s: from=<%s>, size=%d, nrcpt=%d (queue active)", q, sender, size, n))
	add(0, g.text("postfix/submission/smtpd[%s]: disconnect from %s[%s] ehlo=2 starttls=1 auth=1 mail=1 rcpt=%d data=1 quit=1 commands=%d", spid, host, ip, n, 7+n))
	var deferred []string
	for i := 0; i < n; i++ {
		to, typo := g.recipient()
		d := domainOf(to)
		mx := "mx" + strconv.Itoa(1+g.r.IntN(3)) + "." + d
		mip := g.ip()
		smtp := g.pid(22000)
		switch {
		case typo && bounces(d):
			g.truth.Bounced++
			g.truth.TypoNotSent++
			add(1, g.text("postfix/smtp[%s]: %s: to=<%s>, relay=none, %s, dsn=5.4.4, status=bounced (Host or domain name not found. Name service error for name=%s type=MX: Host not found)", smtp, q, to, g.delay(), d))
			m.lines = append(m.lines, g.bounce(q, sender)...)
		case !typo && g.r.IntN(60) == 0:
			g.truth.Deferred++
			add(2, g.text("postfix/smtp[%s]: connect to %s[%s]:25: Connection timed out", smtp, mx, mip))
			add(0, g.text("postfix/smtp[%s]: %s: to=<%s>, relay=none, %s, dsn=4.4.1, status=deferred (connect to %s[%s]:25: Connection timed out)", smtp, q, to, g.delay(), mx, mip))
			deferred = append(deferred, to)
		case !typo && g.r.IntN(80) == 0:
			g.truth.Bounced++
			add(1, g.text("postfix/smtp[%s]: %s: to=<%s>, relay=%s[%s]:25, %s, dsn=5.1.1, status=bounced (host %s[%s] said: 550 5.1.1 <%s>: Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command))", smtp, q, to, mx, mip, g.delay(), mx, mip, to))
			m.lines = append(m.lines, g.bounce(q, sender)...)
		default:
			g.truth.Sent++
			if typo {
				g.truth.TypoSent[d]++
			}
			if g.r.IntN(2) == 0 {
				add(1, g.text("postfix/smtp[%s]: Trusted TLS connection established to %s[%s]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature ECDSA (P-256) server-digest SHA256", smtp, mx, mip))
			}
			add(1, g.text("postfix/smtp[%s]: %s: to=<%s>, relay=%s[%s]:25, %s, dsn=2.0.0, status=sent (250 2.0.0 OK  %d %s - gsmtp)", smtp, q, to, mx, mip, g.delay(), 1700000000+g.r.IntN(1e8), strconv.FormatUint(g.r.Uint64()>>20, 36)))
		}
	}
	if len(deferred) == 0 {
		add(0, g.text("postfix/qmgr[1123]: %s: removed", q))
		return m
	}
	// Retried later: qmgr activates the message again and delivers.
	r := &message{}
	r.lines = append(r.lines, line{0, g.text("postfix/qmgr[1123]: %s: from=<%s>, size=%d, nrcpt=%d (queue active)", q, sender, size, n)})
	for _, to := range deferred {
		d := domainOf(to)
		g.truth.Sent++
		r.lines = append(r.lines, line{1, g.text("postfix/smtp[%s]: %s: to=<%s>, relay=mx1.%s[%s]:25, %s, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as %X)", g.pid(22000), q, to, d, g.ip(), g.delay(), g.r.Uint32())})
	}
	r.lines = append(r.lines, line{0, g.text("postfix/qmgr[1123]: %s: removed", q)})
	m.then = r
	return m
}

// bounce is Postfix's non-delivery notification back to a local sender.
func (g *gen) bounce(q, sender string) []line {
	b := g.qid()
	g.truth.Sent++
	return []line{
		{0, g.text("postfix/cleanup[%s]: %s: message-id=<%s.%s@mx1.corp.example>", g.pid(21000), b, g.t.Format("20060102150405"), b)},
		{0, g.text("postfix/bounce[%s]: %s: sender non-delivery notification: %s", g.pid(23000), q, b)},
		{0, g.text("postfix/qmgr[1123]: %s: from=<>, size=%d, nrcpt=1 (queue active)", b, 2500+g.r.IntN(4000))},
		{1, g.text("postfix/lmtp[%s]: %s: to=<%s>, relay=mail.corp.example[private/dovecot-lmtp], %s, dsn=2.0.0, status=sent (250 2.0.0 <%s> %s Saved)", g.pid(24000), b, sender, g.delay(), sender, strconv.FormatUint(g.r.Uint64()>>16, 36))},
		{0, g.text("postfix/qmgr[1123]: %s: removed", b)},
	}
}

func (g *gen) inbound() *message {
	g.truth.Messages++
	m := &message{}
	add := func(after int, f func(*gen) []byte) { m.lines = append(m.lines, line{after, f}) }
	q := g.qid()
	from := g.partners[g.r.IntN(len(g.partners))]
	host := fmt.Sprintf("mail-%s.outbound.%s", strconv.FormatUint(g.r.Uint64()>>40, 36), from)
	ip := g.ip()
	spid := g.pid(25000)
	to := g.senders[g.r.IntN(len(g.senders))]
	add(0, g.text("postfix/postscreen[%s]: CONNECT from [%s]:%d to [192.0.2.25]:25", g.pid(26000), ip, 1024+g.r.IntN(60000)))
	add(0, g.text("postfix/postscreen[%s]: PASS OLD [%s]:%d", g.pid(26000), ip, 1024+g.r.IntN(60000)))
	add(0, g.text("postfix/smtpd[%s]: connect from %s[%s]", spid, host, ip))
	add(0, g.text("postfix/smtpd[%s]: Anonymous TLS connection established from %s[%s]: TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256", spid, host, ip))
	add(0, g.text("postfix/smtpd[%s]: %s: client=%s[%s]", spid, q, host, ip))
	add(0, g.text("postfix/cleanup[%s]: %s: message-id=<CA+%s@mail.%s>", g.pid(21000), q, strconv.FormatUint(g.r.Uint64(), 36), from))
	add(0, g.text("postfix/qmgr[1123]: %s: from=<news%d@%s>, size=%d, nrcpt=1 (queue active)", q, g.r.IntN(50), from, 2000+g.r.IntN(90000)))
	add(0, g.text("postfix/smtpd[%s]: disconnect from %s[%s] ehlo=2 starttls=1 mail=1 rcpt=1 bdat=1 quit=1 commands=7", spid, host, ip))
	g.truth.Sent++
	add(1, g.text("postfix/lmtp[%s]: %s: to=<%s>, relay=mail.corp.example[private/dovecot-lmtp], %s, dsn=2.0.0, status=sent (250 2.0.0 <%s> %s Saved)", g.pid(24000), q, to, g.delay(), to, strconv.FormatUint(g.r.Uint64()>>16, 36)))
	add(0, g.text("postfix/qmgr[1123]: %s: removed", q))
	return m
}

func (g *gen) noise() *message {
	m := &message{}
	ip := g.ip()
	switch g.r.IntN(4) {
	case 0:
		spid := g.pid(25000)
		m.lines = []line{
			{0, g.text("postfix/smtpd[%s]: connect from unknown[%s]", spid, ip)},
			{0, g.text("postfix/smtpd[%s]: NOQUEUE: reject: RCPT from unknown[%s]: 554 5.7.1 Service unavailable; Client host [%s] blocked using zen.spamhaus.org; from=<spam%d@bulk-%d.example> to=<info@%s> proto=ESMTP helo=<localhost>", spid, ip, ip, g.r.IntN(1000), g.r.IntN(1000), ownDomain)},
			{0, g.text("postfix/smtpd[%s]: disconnect from unknown[%s] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4", spid, ip)},
		}
	case 1:
		m.lines = []line{
			{0, g.text("postfix/postscreen[%s]: CONNECT from [%s]:%d to [192.0.2.25]:25", g.pid(26000), ip, 1024+g.r.IntN(60000))},
			{0, g.text("postfix/postscreen[%s]: DNSBL rank 3 for [%s]:%d", g.pid(26000), ip, 1024+g.r.IntN(60000))},
			{0, g.text("postfix/postscreen[%s]: DISCONNECT [%s]:%d", g.pid(26000), ip, 1024+g.r.IntN(60000))},
		}
	case 2:
		m.lines = []line{{0, g.text("postfix/anvil[%s]: statistics: max connection rate 4/60s for (smtp:%s) at %s", g.pid(27000), ip, g.t.Format(time.Stamp))}}
	default:
		m.lines = []line{{0, g.text("postfix/smtpd[%s]: warning: hostname host-%d.example does not resolve to address %s: Name or service not known", g.pid(25000), g.r.IntN(1e5), ip)}}
	}
	return m
}
