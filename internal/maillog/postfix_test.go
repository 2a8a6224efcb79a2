package maillog

import (
	"errors"
	"testing"
)

// Lines as Postfix 3.7 writes them (testdata/postfix-3.7*.log were written
// by a real Postfix started by internal/postfixtest).
func TestPostfixParsesEachKindOfLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line string
		want Event
	}{
		{"Nov 22 16:11:59 stray-test postfix/smtpd[25421]: D5888985421: client=localhost[127.0.0.1]",
			Event{Kind: HasClient, Host: "stray-test", QueueID: "D5888985421", Client: "localhost[127.0.0.1]"}},
		{"Nov 22 16:11:59 mx1 postfix/submission/smtpd[2]: D5888985421: client=ws[10.0.0.1], sasl_method=PLAIN, sasl_username=jo",
			Event{Kind: HasClient, Host: "mx1", QueueID: "D5888985421", Client: "ws[10.0.0.1]"}},
		{"Nov 22 16:11:59 stray-test postfix/cleanup[25424]: D5888985421: message-id=<abc@x>",
			Event{Kind: HasMessageID, Host: "stray-test", QueueID: "D5888985421", MessageID: "<abc@x>"}},
		{"Nov 22 16:11:59 stray-test postfix/qmgr[25419]: D5888985421: from=<alice@army.mil>, size=276, nrcpt=9 (queue active)",
			Event{Kind: HasSender, Host: "stray-test", QueueID: "D5888985421", From: "alice@army.mil", Size: 276}},
		{"Nov 22 16:11:59 stray-test postfix/qmgr[25419]: D7303985431: from=<>, size=337, nrcpt=1 (queue active)",
			Event{Kind: HasSender, Host: "stray-test", QueueID: "D7303985431", From: "", Size: 337}},
		{"Nov 22 16:11:59 h postfix/pickup[9]: 3A1B2C3D4E: uid=0 from=<root>",
			Event{Kind: HasSender, Host: "h", QueueID: "3A1B2C3D4E", From: "root", Size: -1}},
		{"Nov 22 16:11:59 h postfix/qmgr[9]: 3A1B2C3D4E: from=<a@b.c>, status=expired, returned to sender",
			Event{Kind: HasSender, Host: "h", QueueID: "3A1B2C3D4E", From: "a@b.c", Size: -1}},
		{"Nov 22 16:11:59 stray-test postfix/smtp[25428]: D5888985421: to=<a@army.ml>, orig_to=<list@army.mil>, relay=127.0.0.1[127.0.0.1]:43277, delay=0.03, delays=0.01/0.02/0/0, dsn=2.0.0, status=sent (250 2.0.0 OK: queued)",
			Event{Kind: IsRecipient, Host: "stray-test", QueueID: "D5888985421", To: "a@army.ml", OrigTo: "list@army.mil", Relay: "127.0.0.1[127.0.0.1]:43277", DSN: "2.0.0", Status: Sent, Detail: "250 2.0.0 OK: queued"}},
		{`Nov 22 16:11:59 stray-test postfix/smtp[25428]: D5888985421: to=<"john doe"@gmial.com>, relay=r[1.2.3.4]:25, delay=0.03, delays=0.01/0.02/0/0, dsn=2.0.0, status=sent (250 ok)`,
			Event{Kind: IsRecipient, Host: "stray-test", QueueID: "D5888985421", To: `"john doe"@gmial.com`, Relay: "r[1.2.3.4]:25", DSN: "2.0.0", Status: Sent, Detail: "250 ok"}},
		{`Nov 22 16:11:59 h postfix/smtp[1]: D5888985421: to=<"a>b"@x.com>, relay=none, delay=1, delays=1/0/0/0, dsn=5.0.0, status=bounced (no)`,
			Event{Kind: IsRecipient, Host: "h", QueueID: "D5888985421", To: `"a>b"@x.com`, Relay: "none", DSN: "5.0.0", Status: Bounced, Detail: "no"}},
		{"Nov 22 16:11:59 stray-test postfix/error[25427]: D5888985421: to=<x@bounce.example>, relay=none, delay=0.05, delays=0.01/0.02/0/0.01, dsn=5.1.1, status=bounced (no such user)",
			Event{Kind: IsRecipient, Host: "stray-test", QueueID: "D5888985421", To: "x@bounce.example", Relay: "none", DSN: "5.1.1", Status: Bounced, Detail: "no such user"}},
		{"Nov 22 16:11:59 stray-test postfix/smtp[25430]: D5888985421: to=<r@refused.example>, relay=none, delay=0.04, delays=0.01/0.03/0/0, dsn=4.4.1, status=deferred (connect to 127.0.0.1[127.0.0.1]:9: Connection refused)",
			Event{Kind: IsRecipient, Host: "stray-test", QueueID: "D5888985421", To: "r@refused.example", Relay: "none", DSN: "4.4.1", Status: Deferred, Detail: "connect to 127.0.0.1[127.0.0.1]:9: Connection refused"}},
		{"Nov 22 16:11:59 stray-test postfix/discard[25425]: D5888985421: to=<d@discard.example>, relay=none, delay=0.03, delays=0.01/0.02/0/0, dsn=2.0.0, status=sent (discard.example)",
			Event{Kind: IsRecipient, Host: "stray-test", QueueID: "D5888985421", To: "d@discard.example", Relay: "none", DSN: "2.0.0", Status: Discarded, Detail: "discard.example"}},
		{"Nov 22 16:11:59 h postfix/smtp[1]: D5888985421: to=<v@x.com>, relay=mx.x.com[1.2.3.4]:25, delay=1, delays=1/0/0/0, dsn=2.1.5, status=deliverable (250 2.1.5 Ok)",
			Event{Kind: IsRecipient, Host: "h", QueueID: "D5888985421", To: "v@x.com", Relay: "mx.x.com[1.2.3.4]:25", DSN: "2.1.5", Status: Verified, Detail: "250 2.1.5 Ok"}},
		{"Nov 22 16:11:59 h postfix/smtp[1]: D5888985421: to=<v@x.com>, relay=r, conn_use=2, delay=1, delays=1/0/0/0, dsn=2.0.0, status=sent",
			Event{Kind: IsRecipient, Host: "h", QueueID: "D5888985421", To: "v@x.com", Relay: "r", DSN: "2.0.0", Status: Sent}},
		{"Nov 22 16:12:11 stray-test postfix/smtp[25794]: 4jXYxR5YHSz1SFR3: to=<bob@army.ml>, relay=127.0.0.1[127.0.0.1]:34221, delay=0.06, delays=0.01/0.04/0/0, dsn=2.0.0, status=sent (250 2.0.0 OK: queued)",
			Event{Kind: IsRecipient, Host: "stray-test", QueueID: "4jXYxR5YHSz1SFR3", To: "bob@army.ml", Relay: "127.0.0.1[127.0.0.1]:34221", DSN: "2.0.0", Status: Sent, Detail: "250 2.0.0 OK: queued"}},
		{"2024-01-31T08:15:00.123456+01:00 mail postfix/lmtp[7]: ABCDE12345: to=<u@corp.example>, relay=mail[private/dovecot-lmtp], delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 <u@corp.example> x Saved)",
			Event{Kind: IsRecipient, Host: "mail", QueueID: "ABCDE12345", To: "u@corp.example", Relay: "mail[private/dovecot-lmtp]", DSN: "2.0.0", Status: Sent, Detail: "250 2.0.0 <u@corp.example> x Saved"}},
		{"Nov 22 16:11:59 stray-test postfix/qmgr[25419]: D7303985431: removed",
			Event{Kind: IsDone, Host: "stray-test", QueueID: "D7303985431"}},
	} {
		var ev Event
		ev.Size = -1
		ok, err := parsePostfix(tc.line, &ev)
		if !ok || err != nil {
			t.Errorf("%s: ok %v err %v", tc.line, ok, err)
			continue
		}
		tc.want.Stamp = ev.Stamp
		if tc.want.Size == 0 && tc.want.Kind != HasSender {
			tc.want.Size = -1
		}
		if ev != tc.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.line, ev, tc.want)
		}
	}
}

func TestPostfixSkipsLinesThatCarryNoEvent(t *testing.T) {
	t.Parallel()
	for _, line := range []string{
		"",
		"   ",
		"Nov 22 16:11:59 stray-test postfix/smtpd[25421]: connect from localhost[127.0.0.1]",
		"Nov 22 16:11:59 stray-test postfix/smtpd[25421]: disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=8 data=1 quit=1 commands=12",
		"Nov 22 16:11:59 h postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[1.2.3.4]: 554 5.7.1 blocked; from=<s@x> to=<u@corp.example> proto=ESMTP helo=<x>",
		"Nov 22 16:06:26 stray-test postfix/smtpd[19342]: C7923984354: reject: RCPT from localhost[127.0.0.1]: 550 5.1.1 <x@b.example>: Recipient address rejected; from=<a@b.mil> to=<x@b.example> proto=ESMTP helo=<c>",
		"Nov 22 16:11:59 stray-test postfix/bounce[25431]: D5888985421: sender non-delivery notification: DFA70985459",
		"Nov 22 16:11:59 h postfix/anvil[1]: statistics: max connection rate 4/60s for (smtp:1.2.3.4) at Nov 22 16:00:00",
		"Nov 22 16:11:59 h postfix/smtpd[1]: warning: hostname x does not resolve to address 1.2.3.4: Name or service not known",
		"Nov 22 16:11:59 h opendkim[5]: D5888985421: DKIM-Signature field added (s=sel, d=corp.example)",
		"Nov 22 16:11:59 h dovecot: lmtp(u): to=<u@x>: saved mail to INBOX",
		"Nov 22 16:11:59 h postfix/postscreen[1]: PASS OLD [1.2.3.4]:5678",
		"Nov 22 16:11:59 h postfix/smtp[1]: D5888985421: host mx[1.2.3.4] said: 450 try later (in reply to RCPT TO command)",
		"Nov 22 16:11:59 h postfix/master[1]: daemon started -- version 3.7.11, configuration /etc/postfix",
		"Nov 22 16:11:59 h kernel: [1.2] eth0: link up",
	} {
		var ev Event
		ok, err := parsePostfix(line, &ev)
		if ok || err != nil {
			t.Errorf("%q: ok %v err %v, want skipped", line, ok, err)
		}
	}
}

func TestPostfixMalformedLinesAreErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line string
		want error
	}{
		{"\x00\x00\x00\x00 garbage after a crash", ErrTimestamp},
		{"to=<x@y.com>, relay=none, status=sent", ErrTimestamp},
		{"Nov 22 16:11:59", ErrTimestamp},
		{"Nov 22 16:11:59 onlyahost", ErrNoProgram},
		{"Nov 22 16:11:59 h postfix/smtp[1]: D5888985421: to=<x@y.com, relay=none", ErrAddress},
		{"Nov 22 16:11:59 h postfix/smtp[1]: D5888985421: to=<x@y.com>, relay=none, delay=1, delays=1/0/0/0, dsn=2.0.0, sta", ErrNoStatus},
		{"Nov 22 16:11:59 h postfix/smtp[1]: D5888985421: to=<x@y.com>", ErrNoStatus},
		{"Nov 22 16:11:59 h postfix/qmgr[1]: D5888985421: from=<x@y.com, size=1", ErrAddress},
		{"Nov 22 16:11:59 h postfix/qmgr[1]: D5888985421: from=<x@y.com>, size=12x, nrcpt=1 (queue active)", ErrBadSize},
	} {
		var ev Event
		ok, err := parsePostfix(tc.line, &ev)
		if ok || !errors.Is(err, tc.want) {
			t.Errorf("%q: ok %v err %v, want %v", tc.line, ok, err, tc.want)
		}
	}
}

func TestIsQueueIDKnowsShortAndLongIDsAndNotWords(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]bool{
		"D5888985421": true, "C7923984354": true, "3A1B2C3D4E": true, "4jXYxR5YHSz1SFR3": true, "4QvNvX1ymXz9xPK": true,
		"NOQUEUE": false, "warning": false, "statistics": false, "fatal": false, "reject": false, "ABC": false,
		"d5888985421": false, "4jXY-R5YHSz1SFR3": false, "DKIM": false, "Xbcdfghjk": false,
	} {
		if got := isQueueID(id); got != want {
			t.Errorf("isQueueID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestPostfixSniffsItsOwnLinesOnly(t *testing.T) {
	t.Parallel()
	for line, want := range map[string]bool{
		"Nov 22 16:11:59 stray-test postfix/smtpd[25421]: connect from localhost[127.0.0.1]":    true,
		"2024-01-31T08:15:00Z mail postfix/qmgr[1]: ABCDE12345: removed":                        true,
		"2024-01-31 08:15:00 1rABCD-000123-AB <= a@b.c H=x [1.2.3.4] P=esmtp S=1 id=m@x":        false,
		"Nov 22 16:11:59 h dovecot: imap-login: Login: user=<u>":                                false,
		"#Fields: date-time,client-ip,client-hostname,server-ip,server-hostname,source-context": false,
	} {
		if got := Postfix.Sniff(line); got != want {
			t.Errorf("Sniff(%q) = %v, want %v", line, got, want)
		}
	}
}
