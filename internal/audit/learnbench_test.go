package audit

import (
	"fmt"
	"testing"

	"github.com/stray-mail/stray/internal/maillog"
)

// The learner reads every delivery of a mail log: nothing per delivery
// should allocate once its domain and sender have been seen.
func BenchmarkLearnerDelivery(b *testing.B) {
	l := NewLearner(realChecker(b), LearnOptions{})
	ds := make([]*maillog.Delivery, 1024)
	for i := range ds {
		ds[i] = delivery("r@"+benchDomains[i%len(benchDomains)], fmt.Sprintf("s%d@corp.example", i%16), maillog.Sent, t0.AddDate(0, 0, i%30))
	}
	if l.Delivery(ds[0]); l.Deliveries != 1 {
		b.Fatalf("%s: not counted", ds[0].To)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		l.Delivery(ds[i%len(ds)])
	}
}

var benchDomains = []string{"gmail.com", "outlook.com", "yahoo.com", "example.org", "wikipedia.org", "acme.co.uk", "golang.org", "debian.org"}
