package maillog

import (
	"context"
	"strings"
	"testing"
)

// An Exim 4 main log: an arrival with three deliveries (one to a typo),
// a bounce, a deferral, a local delivery, a blackhole, a bounce message
// (null sender), log_selector +pid and +millisec, and noise.
const eximLog = `2024-03-01 10:00:00 exim 4.97 daemon started: pid=100, -q30m, listening for SMTP on port 25
2024-03-01 10:00:01 1rABCD-000123-AB <= alice@corp.example H=ws1.corp.example (ws1) [10.0.0.5]:51234 I=[10.0.0.1]:587 P=esmtpsa X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no A=plain:alice S=1834 id=m1@corp.example T="Q3 numbers, final" from <alice@corp.example> for bob@gmial.com carol@partner.com
2024-03-01 10:00:02 1rABCD-000123-AB => bob@gmial.com R=dnslookup T=remote_smtp H=mx.gmial.com [198.51.100.7] X=TLS1.2:ECDHE-RSA-AES256-GCM-SHA384:256 CV=no C="250 2.0.0 Ok: queued as 4F3A1"
2024-03-01 10:00:02 1rABCD-000123-AB -> carol@partner.com R=dnslookup T=remote_smtp H=mx.partner.com [203.0.113.9] C="250 OK id=1rXYZ"
2024-03-01 10:00:03 1rABCD-000123-AB ** nobody@partner.com R=dnslookup T=remote_smtp H=mx.partner.com [203.0.113.9]: SMTP error from remote mail server after RCPT TO:<nobody@partner.com>: 550 5.1.1 User unknown
2024-03-01 10:00:03 1rABCD-000123-AB == slow@far.example.org R=dnslookup T=remote_smtp defer (-44) H=mx.far.example.org [192.0.2.44]: SMTP error from remote mail server after RCPT TO:<slow@far.example.org>: 451 4.7.1 Greylisted
2024-03-01 10:00:04 1rABCD-000123-AB ** bad@nowhere.invalid: Unrouteable address
2024-03-01 10:00:04 1rABCD-000123-AB Completed
2024-03-01 10:05:00.123 [4242] 1rABCE-0000000ABCD-EFGH <= <> R=1rABCD-000123-AB U=Debian-exim P=local S=2210
2024-03-01 10:05:00.456 [4242] 1rABCE-0000000ABCD-EFGH => alice <alice@corp.example> R=local_user T=mail_spool
2024-03-01 10:05:00.789 [4242] 1rABCE-0000000ABCD-EFGH Completed
2024-03-01 10:06:00 1rABCF-000125-CD <= spam@bulk.example H=(x) [192.0.2.9] P=esmtp S=100 id=s@x
2024-03-01 10:06:01 1rABCF-000125-CD => :blackhole: <abuse-trap@corp.example> R=blackhole_router
2024-03-01 10:06:01 1rABCF-000125-CD Completed
2024-03-01 10:07:00 H=(bad) [192.0.2.10] F=<x@y> rejected RCPT <z@corp.example>: relay not permitted
2024-03-01 10:07:00 1rABCG-000126-EF Frozen (delivery error message)
`

func TestEximJoinsArrivalsWithEveryKindOfDelivery(t *testing.T) {
	t.Parallel()
	var got []Delivery
	st, err := Read(context.Background(), []Input{ReaderInput("mainlog", strings.NewReader(eximLog))}, Options{}, func(d *Delivery) error {
		got = append(got, *d)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Formats["exim"] != 1 || st.Malformed != 0 {
		t.Fatalf("formats %v, malformed %d %v", st.Formats, st.Malformed, st.Samples)
	}
	type want struct {
		to, orig, relay, detail, from, client, msgid string
		status                                       Status
		size                                         int64
	}
	wants := []want{
		{"bob@gmial.com", "", "mx.gmial.com [198.51.100.7]", "250 2.0.0 Ok: queued as 4F3A1", "alice@corp.example", "ws1.corp.example (ws1) [10.0.0.5]:51234", "m1@corp.example", Sent, 1834},
		{"carol@partner.com", "", "mx.partner.com [203.0.113.9]", "250 OK id=1rXYZ", "alice@corp.example", "ws1.corp.example (ws1) [10.0.0.5]:51234", "m1@corp.example", Sent, 1834},
		{"nobody@partner.com", "", "mx.partner.com [203.0.113.9]", "SMTP error from remote mail server after RCPT TO:<nobody@partner.com>: 550 5.1.1 User unknown", "alice@corp.example", "ws1.corp.example (ws1) [10.0.0.5]:51234", "m1@corp.example", Bounced, 1834},
		{"slow@far.example.org", "", "mx.far.example.org [192.0.2.44]", "SMTP error from remote mail server after RCPT TO:<slow@far.example.org>: 451 4.7.1 Greylisted", "alice@corp.example", "ws1.corp.example (ws1) [10.0.0.5]:51234", "m1@corp.example", Deferred, 1834},
		{"bad@nowhere.invalid", "", "", "Unrouteable address", "alice@corp.example", "ws1.corp.example (ws1) [10.0.0.5]:51234", "m1@corp.example", Bounced, 1834},
		{"alice@corp.example", "", "local", "", "", "", "", Sent, 2210},
		{"abuse-trap@corp.example", "", "", "", "spam@bulk.example", "(x) [192.0.2.9]", "s@x", Discarded, 100},
	}
	if len(got) != len(wants) {
		t.Fatalf("%d deliveries, want %d: %+v", len(got), len(wants), got)
	}
	for i, w := range wants {
		d := got[i]
		g := want{d.To, d.OrigTo, d.Relay, d.Detail, d.From, d.Client, d.MessageID, d.Status, d.Size}
		if g != w || !d.SenderKnown || d.QueueID == "" {
			t.Errorf("delivery %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
	if got[5].Time.Nanosecond() != 456e6 || got[0].Line != 3 {
		t.Errorf("time %v line %d", got[5].Time, got[0].Line)
	}
	if st.Open != 0 {
		t.Errorf("%d messages open after Completed", st.Open)
	}
}

func TestEximIDsOldAndNewFormat(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]bool{
		"1rABCD-000123-AB": true, "1rABCE-0000000ABCD-EFGH": true, "1rABCD-000123-A": false,
		"1rABCD_000123-AB": false, "1rABC!-000123-AB": false, "Completed": false,
	} {
		if got := isEximID(id); got != want {
			t.Errorf("isEximID(%q) = %v", id, got)
		}
	}
}

func TestEximMalformedMessageLineIsAnError(t *testing.T) {
	t.Parallel()
	var ev Event
	if ok, err := parseExim("2024-03-01 10:00:02 1rABCD-000123-AB =>  ", &ev); ok || err == nil {
		t.Errorf("flag without address: ok %v err %v", ok, err)
	}
	if ok, err := parseExim("2024-03-01 10:00:02 1rABCD-000123-AB => x <y@z R=r", &ev); ok || err == nil {
		t.Errorf("unterminated original: ok %v err %v", ok, err)
	}
}
