package store

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"
)

// Learning needs evidence: how many distinct senders and distinct UTC days
// wrote to a domain, not only how many messages.
func TestCorrespondentsCountDistinctSendersAndDays(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		day := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
		deliveries := []struct {
			sender string
			at     time.Time
			domain string
		}{
			{"a@corp.example", day.Add(1 * time.Hour), "partner.example"},
			{"a@corp.example", day.Add(2 * time.Hour), "partner.example"},                 // same sender, same day
			{"b@corp.example", day.Add(23*time.Hour + 59*time.Minute), "partner.example"}, // same day, just before midnight
			{"c@corp.example", day.Add(24 * time.Hour), "partner.example"},                // the next UTC day
			{"a@corp.example", day.Add(5 * time.Hour), "gmial.com"},                       // one "Send as typed"
			{"a@corp.example", day.Add(6 * time.Hour), "gmial.com"},
			{"", day.Add(72 * time.Hour), "gmial.com"}, // a bounce counts a day, not a sender
		}
		for _, d := range deliveries {
			if err := s.AddDeliveries(ctx, d.sender, []string{d.domain}, d.at); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.Correspondents(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		type evidence struct {
			Domain                    string
			Deliveries, Senders, Days int64
		}
		var have []evidence
		for _, c := range got {
			have = append(have, evidence{c.Domain, c.Deliveries, c.Senders, c.Days})
		}
		want := []evidence{{"partner.example", 4, 3, 2}, {"gmial.com", 3, 1, 2}}
		if !reflect.DeepEqual(have, want) {
			t.Errorf("evidence:\n got %+v\nwant %+v", have, want)
		}
	})
}

// One person is one sender whatever the case of the address they send
// from: mail systems treat addresses case-insensitively, and counting
// Alice@ and alice@ twice would let one sender reach the learning
// threshold of distinct senders alone.
func TestSendersDifferingOnlyInCaseCountOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		for i, from := range []string{"alice@corp.example", "Alice@corp.example", "ALICE@Corp.Example", "Ålice@corp.example", "ålice@corp.example"} {
			if err := s.AddDeliveries(ctx, from, []string{"partner.example"}, t0.Add(time.Duration(i)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AddDeliveryCounts(ctx, []DeliveryCount{
			{Domain: "partner.example", Sender: "ALICE@CORP.EXAMPLE", N: 2, First: t0, Last: t0},
			{Domain: "partner.example", Sender: "bob@corp.example", N: 1, First: t0, Last: t0},
		}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Correspondents(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Deliveries != 8 || got[0].Senders != 3 {
			t.Errorf("got %+v, want 8 deliveries from 3 senders (alice, ålice, bob)", got)
		}
	})
}

// What an older stray recorded (senders in their own case) is folded when
// a newer one opens the database.
func TestOpenFoldsTheCaseOfSendersAnOlderStrayRecorded(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s, err := Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AddDeliveries(ctx, "alice@corp.example", []string{"partner.example", "other.example"}, t0); err != nil {
			t.Fatal(err)
		}
		for _, row := range [][2]string{{"partner.example", "Alice@corp.example"}, {"partner.example", "BOB@corp.example"}, {"other.example", "Carol@Corp.Example"}} {
			sqlOf(t, s, "INSERT INTO correspondent_senders (domain, sender) VALUES (?, ?) RETURNING domain", row[0], row[1])
		}
		sqlOf(t, s, "DELETE FROM schema_migrations WHERE version = 7 RETURNING version")
		s.Close()

		s = openStore(t, dsn)
		got := sqlOf(t, s, "SELECT domain, sender FROM correspondent_senders ORDER BY domain, sender")
		want := [][]any{{"other.example", "alice@corp.example"}, {"other.example", "carol@corp.example"}, {"partner.example", "alice@corp.example"}, {"partner.example", "bob@corp.example"}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("senders after the upgrade:\n got %v\nwant %v", got, want)
		}
	})
}

func TestSenderAllowsAreAddedOnceListedAndDeleted(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		allows := []*SenderAllow{
			{Sender: "alice@army.mil", Recipient: "j@army.ml", Note: "released as typed", CreatedBy: "release", CreatedAt: t0},
			{Sender: "bob@army.mil", Recipient: "j@army.ml", CreatedBy: "release", CreatedAt: t0.Add(time.Second)},
			{Sender: "alice@army.mil", Recipient: "k@army.ml", CreatedBy: "admin:olivia", CreatedAt: t0.Add(-time.Second)},
		}
		for _, a := range allows {
			if err := s.AddSenderAllow(ctx, a); err != nil {
				t.Fatalf("AddSenderAllow %s → %s: %v", a.Sender, a.Recipient, err)
			}
			if a.ID == 0 {
				t.Errorf("AddSenderAllow %s → %s gave no id", a.Sender, a.Recipient)
			}
			a.CreatedAt = a.CreatedAt.Truncate(time.Microsecond)
		}
		list, err := s.ListSenderAllows(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []SenderAllow{*allows[2], *allows[0], *allows[1]}
		if !reflect.DeepEqual(list, want) {
			t.Errorf("ListSenderAllows:\n got %+v\nwant %+v", list, want)
		}
		if err := s.AddSenderAllow(ctx, &SenderAllow{Sender: "alice@army.mil", Recipient: "j@army.ml"}); !errors.Is(err, ErrExists) {
			t.Errorf("the same sender and recipient twice: %v, want ErrExists", err)
		}
		for _, bad := range []SenderAllow{{Sender: "", Recipient: "j@army.ml"}, {Sender: "a@b", Recipient: ""}, {Sender: "a@b", Recipient: "j@army.ml x"}} {
			if err := s.AddSenderAllow(ctx, &bad); err == nil || errors.Is(err, ErrExists) {
				t.Errorf("AddSenderAllow(%+v): %v, want a validation error", bad, err)
			}
		}
		if err := s.DeleteSenderAllow(ctx, allows[0].ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteSenderAllow(ctx, allows[0].ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("DeleteSenderAllow twice: %v, want ErrNotFound", err)
		}
		list, _ = s.ListSenderAllows(ctx)
		if len(list) != 2 || slices.ContainsFunc(list, func(a SenderAllow) bool { return a.ID == allows[0].ID }) {
			t.Errorf("after delete: %+v", list)
		}
	})
}
