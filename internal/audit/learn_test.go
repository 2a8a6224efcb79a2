package audit

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/maillog"
)

func TestLearnCountsDeliveriesSendersAndDatesAndLeavesOutWhatItMust(t *testing.T) {
	t.Parallel()
	l := NewLearner(realChecker(t), LearnOptions{})
	day := func(n int) time.Time { return t0.AddDate(0, 0, n) }
	for _, d := range []*maillog.Delivery{
		delivery("a@partner.com", "x@corp.example", maillog.Sent, day(0)),
		delivery("b@Partner.COM", "X@corp.example", maillog.Sent, day(5)), // same sender, any case
		delivery("c@partner.com", "y@corp.example", maillog.Sent, day(2)),
		delivery("d@gmial.com", "y@corp.example", maillog.Sent, day(1)),      // flagged
		delivery("e@partner.com", "", maillog.Sent, day(1)),                  // null sender
		delivery("f@partner.com", "y@corp.example", maillog.Bounced, day(1)), // not delivered
		delivery("g@nodomain", "y@corp.example", maillog.Sent, day(1)),       // no dot: ok, learnt
		delivery("h@", "y@corp.example", maillog.Sent, day(1)),               // unparsable
		{Time: day(9), To: "i@partner.com", Status: maillog.Sent},            // sender unknown: counted, no sender
	} {
		l.Delivery(d)
	}
	got := l.Result()
	want := []Correspondent{
		{Domain: "partner.com", Deliveries: 4, Senders: 2, Days: 4, First: day(0), Last: day(9)},
		{Domain: "nodomain", Deliveries: 1, Senders: 1, Days: 1, First: day(1), Last: day(1)},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if l.FlaggedTotal() != 1 || l.Flagged["gmial.com"] != 1 || l.NullSender != 1 || l.NotDelivered != 1 || l.Unparsable != 1 || l.Deliveries != 5 {
		t.Errorf("left out: flagged %v null %d not delivered %d unparsable %d; counted %d", l.Flagged, l.NullSender, l.NotDelivered, l.Unparsable, l.Deliveries)
	}
	l2 := NewLearner(realChecker(t), LearnOptions{MinDeliveries: 2, MinSenders: 2, Since: day(1)})
	l2.Delivery(delivery("a@partner.com", "x@corp.example", maillog.Sent, day(0))) // before --since
	l2.Delivery(delivery("a@partner.com", "x@corp.example", maillog.Sent, day(1)))
	l2.Delivery(delivery("a@partner.com", "y@corp.example", maillog.Sent, day(2)))
	l2.Delivery(delivery("a@solo.com", "x@corp.example", maillog.Sent, day(1)))
	l2.Delivery(delivery("a@solo.com", "x@corp.example", maillog.Sent, day(2)))
	if r := l2.Result(); len(r) != 1 || r[0].Domain != "partner.com" || r[0].Deliveries != 2 {
		t.Errorf("thresholds and --since: %+v", r)
	}
	// Distinct UTC days, as stray serve counts them: two deliveries an
	// hour apart across midnight are two days, two in one day are one.
	l3 := NewLearner(realChecker(t), LearnOptions{MinDays: 2})
	midnight := day(3).UTC().Truncate(24 * time.Hour)
	l3.Delivery(delivery("a@partner.com", "x@corp.example", maillog.Sent, midnight.Add(-30*time.Minute)))
	l3.Delivery(delivery("a@partner.com", "y@corp.example", maillog.Sent, midnight.Add(30*time.Minute)))
	l3.Delivery(delivery("a@solo.com", "x@corp.example", maillog.Sent, midnight.Add(time.Hour)))
	l3.Delivery(delivery("a@solo.com", "y@corp.example", maillog.Sent, midnight.Add(20*time.Hour)))
	if r := l3.Result(); len(r) != 1 || r[0].Domain != "partner.com" || r[0].Days != 2 {
		t.Errorf("--min-days 2: %+v", r)
	}
}

// The known file learn writes is read back by detect.ReadKnown (what
// stray check --known uses) with the same counts, and the comments say
// senders and dates.
func TestLearnedKnownFileIsReadBackByReadKnown(t *testing.T) {
	t.Parallel()
	cs := []Correspondent{
		{Domain: "partner.com", Deliveries: 4211, Senders: 12, Days: 61, First: t0, Last: t0.AddDate(0, 3, 0)},
		{Domain: "xn--mller-kva.de", Deliveries: 3, Senders: 1, Days: 1, First: t0, Last: t0},
	}
	var buf bytes.Buffer
	if err := WriteKnown(&buf, cs, []string{"from mail.log", "# tricky header"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "partner.com 4211  # senders=12 days=61 first=2024-03-01 last=2024-06-01\n") {
		t.Errorf("line format:\n%s", buf.String())
	}
	known, err := detect.ReadKnown(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(known) != 2 || known["partner.com"] != 4211 || known["xn--mller-kva.de"] != 3 {
		t.Errorf("read back %v", known)
	}
	c, err := detect.New(detect.Knowledge{Known: known})
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := c.Check("a@partnre.com"); !f.Flagged() || f.Intended != "partner.com" {
		t.Errorf("a slip of a learnt domain is not caught: %+v", f)
	}
	var js bytes.Buffer
	WriteCorrespondentsJSON(&js, cs)
	var o map[string]any
	if err := json.Unmarshal(bytes.SplitN(js.Bytes(), []byte("\n"), 2)[0], &o); err != nil || o["domain"] != "partner.com" || o["deliveries"] != 4211.0 || o["senders"] != 12.0 || o["days"] != 61.0 {
		t.Errorf("json %s %v", js.String(), err)
	}
}

func TestLearnFromTheRealPostfixLog(t *testing.T) {
	t.Parallel()
	in, err := maillog.FileInput("testdata/golden/mail.log")
	if err != nil {
		t.Fatal(err)
	}
	l := NewLearner(realChecker(t), LearnOptions{})
	if _, err := maillog.Read(t.Context(), []maillog.Input{in}, maillog.Options{Year: 2024}, func(d *maillog.Delivery) error {
		l.Delivery(d)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, c := range l.Result() {
		got[c.Domain] = c.Deliveries
	}
	// Delivered and not flagged; the two bounce notifications (null
	// sender) to corp.example are left out.
	want := map[string]int64{"gmail.com": 3, "army.mil": 1, "partner.example.com": 1, "outlook.com": 1, "yahoo.com": 1, "westlandhigh.school.nz": 1}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for d, n := range want {
		if got[d] != n {
			t.Errorf("%s: %d, want %d", d, got[d], n)
		}
	}
	if l.NullSender != 3 || l.FlaggedTotal() != 9 {
		t.Errorf("null sender %d (want the 2 bounces and mailer@gmail.co's), flagged %d (want 9)", l.NullSender, l.FlaggedTotal())
	}
}
