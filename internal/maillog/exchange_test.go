package maillog

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// An Exchange 2019 message tracking log: a message received from a
// mailbox, sent to two external recipients (one a typo) in one row,
// delivered to a local mailbox, one recipient failed and one deferred;
// a subject with commas and quotes; a BOM.
const exchangeLog = "\ufeff#Software: Microsoft Exchange Server\r\n" +
	"#Version: 15.02.1118.007\r\n" +
	"#Log-type: Message Tracking Log\r\n" +
	"#Date: 2024-03-01T10:00:00.000Z\r\n" +
	"#Fields: date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,source,event-id,internal-message-id,message-id,network-message-id,recipient-address,recipient-status,total-bytes,recipient-count,related-recipient-address,reference,message-subject,sender-address,return-path,message-info,directionality,tenant-id,original-client-ip,original-server-ip,custom-data,transport-traffic-type,log-id,schema-version\r\n" +
	"2024-03-01T10:00:01.120Z,10.0.0.5,WS1,10.0.0.2,EX1,08DC3A,,STOREDRIVER,RECEIVE,12345,<m1@corp.example>,8f1e,bob@gmial.com;carol@partner.com,,5120,2,,,\"Q3, \"\"final\"\" numbers\",alice@corp.example,alice@corp.example,,Originating,,,,,Email,a1,15.02.1118.007\r\n" +
	"2024-03-01T10:00:02.412Z,10.0.0.2,EX1,198.51.100.7,mx.gmial.com,08DC3A,Internet,SMTP,SEND,12345,<m1@corp.example>,8f1e,bob@gmial.com;carol@partner.com,250 2.6.0 <m1@corp.example> Queued mail for delivery;250 OK id=1rXYZ,5120,2,,,\"Q3, \"\"final\"\" numbers\",alice@corp.example,alice@corp.example,,Originating,,,,,Email,a2,15.02.1118.007\r\n" +
	"2024-03-01T10:00:03.000Z,,,,EX1,MDB,,STOREDRIVER,DELIVER,12345,<m1@corp.example>,8f1e,dave@corp.example,250 2.1.5 Ok,5120,1,,,x,alice@corp.example,,,Originating,,,,,Email,a3,15.02.1118.007\r\n" +
	"2024-03-01T10:00:04.000Z,,,,EX1,,,ROUTING,FAIL,12345,<m1@corp.example>,8f1e,nobody@partner.com,550 5.1.1 User unknown,5120,1,,,x,alice@corp.example,,,Originating,,,,,Email,a4,15.02.1118.007\r\n" +
	"2024-03-01T10:00:05.000Z,,,,EX1,,,SMTP,DEFER,12346,<m2@corp.example>,9a2b,slow@far.example.org,451 4.4.0 Primary target IP address responded with: 421 try later,900,1,,,y,erin@corp.example,,,Originating,,,,,Email,a5,15.02.1118.007\r\n" +
	"2024-03-01T10:00:06.000Z,,,,EX1,,,AGENT,AGENTINFO,12346,<m2@corp.example>,9a2b,slow@far.example.org,,900,1,,,y,erin@corp.example,,,Originating,,,,,Email,a6,15.02.1118.007\r\n"

func TestExchangeGivesOneDeliveryPerRecipientOfEachRow(t *testing.T) {
	t.Parallel()
	got, st := readAll(t, []Input{stringInput("MSGTRK2024030110-1.LOG", exchangeLog)}, Options{})
	if st.Formats["exchange"] != 1 || st.Malformed != 0 {
		t.Fatalf("formats %v malformed %d %v", st.Formats, st.Malformed, st.Samples)
	}
	type want struct {
		to, from, relay, dsn, detail, msgid, host, client string
		status                                            Status
	}
	wants := []want{
		{"bob@gmial.com", "alice@corp.example", "mx.gmial.com[198.51.100.7]", "2.6.0", "250 2.6.0 <m1@corp.example> Queued mail for delivery", "<m1@corp.example>", "EX1", "EX1[10.0.0.2]", Sent},
		{"carol@partner.com", "alice@corp.example", "mx.gmial.com[198.51.100.7]", "", "250 OK id=1rXYZ", "<m1@corp.example>", "EX1", "EX1[10.0.0.2]", Sent},
		{"dave@corp.example", "alice@corp.example", "STOREDRIVER", "2.1.5", "250 2.1.5 Ok", "<m1@corp.example>", "EX1", "", Sent},
		{"nobody@partner.com", "alice@corp.example", "ROUTING", "5.1.1", "550 5.1.1 User unknown", "<m1@corp.example>", "EX1", "", Bounced},
		{"slow@far.example.org", "erin@corp.example", "SMTP", "4.4.0", "451 4.4.0 Primary target IP address responded with: 421 try later", "<m2@corp.example>", "EX1", "", Deferred},
	}
	if len(got) != len(wants) {
		t.Fatalf("%d deliveries, want %d: %+v", len(got), len(wants), got)
	}
	for i, w := range wants {
		d := got[i]
		g := want{d.To, d.From, d.Relay, d.DSN, d.Detail, d.MessageID, d.Host, d.Client, d.Status}
		if g != w || !d.SenderKnown || d.Size != int64([]int{5120, 5120, 5120, 5120, 900}[i]) || d.QueueID == "" {
			t.Errorf("delivery %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
	if want := time.Date(2024, 3, 1, 10, 0, 2, 412e6, time.UTC); !got[0].Time.Equal(want) || got[0].Line != 7 {
		t.Errorf("time %v line %d", got[0].Time, got[0].Line)
	}
}

func TestExchangeReadsTheColumnsFromTheFieldsHeader(t *testing.T) {
	t.Parallel()
	log := "#Fields: event-id,recipient-address,date-time,sender-address,recipient-status,message-id\n" +
		"SEND,x@gmial.com,2024-03-01T10:00:02Z,a@corp.example,250 ok,<m@x>\n" +
		"SEND,y@gmial.com,2024-03-01T10:00:03Z\n" +
		"SEND,z@gmial.com,2024-03-01T10:00:04Z,a@corp.example,250 ok,\n"
	got, st := readAll(t, []Input{stringInput("custom.log", log)}, Options{Format: Exchange})
	if len(got) != 1 || got[0].To != "x@gmial.com" || got[0].From != "a@corp.example" || got[0].MessageID != "<m@x>" || st.Malformed != 2 ||
		!errors.Is(st.Samples[0], ErrColumns) || st.Samples[0].Line != 3 || !errors.Is(st.Samples[1], ErrNoID) {
		t.Errorf("deliveries %+v, stats %+v", got, st)
	}
}

func TestSplitCSVHandlesQuotesAndRefusesBrokenOnes(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`a,b,,c`:               "a|b||c",
		`"a,b",c`:              "a,b|c",
		`"say ""hi""",x`:       `say "hi"|x`,
		`x,""`:                 "x|",
		`"",`:                  "|",
		`plain "mid" quotes,y`: `plain "mid" quotes|y`,
	} {
		got, err := splitCSV(in, nil)
		if err != nil || strings.Join(got, "|") != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`"open`, `"a"b,c`} {
		if _, err := splitCSV(bad, nil); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
