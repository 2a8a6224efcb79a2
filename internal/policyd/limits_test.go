package policyd

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/gate/gatetest"
	"github.com/stray-mail/stray/internal/policy"
)

// closedWithin reports whether the server closed nc within d.
func closedWithin(nc net.Conn, d time.Duration) bool {
	nc.SetReadDeadline(time.Now().Add(d))
	_, err := io.ReadAll(nc)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

const rcptRequest = "request=smtpd_access_policy\nprotocol_state=RCPT\ninstance=1\nsender=a@army.mil\nrecipient=b@gmail.com\n\n"

func TestStalledOrSilentPolicyClientsAreClosedAfterTheRequestTimeout(t *testing.T) {
	t.Parallel()
	g := gatetest.New(t, detect.Knowledge{Protected: []string{"mil"}}, policy.Config{})
	s := &Server{Gate: g, IdleTimeout: time.Minute, RequestTimeout: 300 * time.Millisecond}
	addr := gatetest.Serve(t, s)
	tests := []struct{ name, send string }{
		{"SilentAfterConnecting", ""},
		{"HalfARequest", "request=smtpd_access_policy\nprotocol_state=RC"},
		{"AnAttributeAMinute", "request=smtpd_access_policy\n"},
		{"AnIdleClientThatAlsoStartedTheNextRequest", rcptRequest + "request=smtp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			io.WriteString(nc, tt.send)
			if !closedWithin(nc, 5*time.Second) {
				t.Fatal("the connection was still open after 5s; want it closed after the 300ms request timeout")
			}
		})
	}
	// Between requests a client may idle: Postfix reuses the connection.
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := bufio.NewReader(nc)
	for i := range 2 {
		if i == 1 && closedWithin(nc, time.Second) {
			t.Fatal("an idle client was closed before IdleTimeout")
		}
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(nc, rcptRequest)
		line, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "action=") {
			t.Fatalf("request %d: %q, %v", i, line, err)
		}
		r.ReadString('\n')
	}
}
