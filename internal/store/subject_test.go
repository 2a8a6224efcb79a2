package store

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The quarantine lists held messages with their Subject (issue 14), read
// without loading the message; a Subject that is not clean text is cleaned,
// never a reason to refuse holding the message.
func TestHeldMessagesKeepTheirSubjectForLists(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		tests := []struct{ id, subject, want string }{
			{"s1", "quarterly figures", "quarterly figures"},
			{"s2", "bad \xff bytes\x00 and\r\nbreaks", "bad \uFFFD bytes  and  breaks"},
			{"s3", strings.Repeat("é", 300), strings.Repeat("é", maxSubject) + "…"},
			{"s4", "", ""},
		}
		for i, tt := range tests {
			m := newMessage(tt.id, t0.Add(time.Duration(i)*time.Minute))
			m.Subject = tt.subject
			mustHold(t, s, m)
		}
		got, err := s.List(ctx, Filter{})
		if err != nil {
			t.Fatal(err)
		}
		byID := map[string]string{}
		for _, m := range got {
			byID[m.ID] = m.Subject
		}
		for _, tt := range tests {
			if byID[tt.id] != tt.want || !utf8.ValidString(byID[tt.id]) {
				t.Errorf("%s: listed subject %q, want %q", tt.id, byID[tt.id], tt.want)
			}
			m, err := s.Get(ctx, tt.id)
			if err != nil || m.Subject != tt.want {
				t.Errorf("%s: Get subject %q (%v), want %q", tt.id, m.Subject, err, tt.want)
			}
		}
	})
}
