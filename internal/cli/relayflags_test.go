package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/postfixtest"
	"github.com/stray-mail/stray/internal/testcert"
)

// The flags complete the config file before it is checked: certificate
// rules in the file, the certificate itself on the command line, is a
// relay that starts (it failed "needs relay.tls_cert" at start and on
// every SIGHUP, issue 13).
func TestRelayFlagsCompleteTheConfigFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	testcert.Write(t, filepath.Join(dir, "relay.pem"), filepath.Join(dir, "relay.key"), 1, "relay.test")
	cfg := filepath.Join(dir, "stray.yaml")
	if err := os.WriteFile(cfg, []byte("store: \"\"\nrelay:\n  allow_certs: [mx.example.com]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := &lockedLog{}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"relay", "--config", cfg, "--listen", addr, "--next-hop", "127.0.0.1:25",
			"--tls-cert", filepath.Join(dir, "relay.pem"), "--tls-key", filepath.Join(dir, "relay.key")},
			Stdio{In: strings.NewReader(""), Out: io.Discard, Err: errs})
	}()
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case code := <-done:
			t.Fatalf("stray relay exited %d:\n%s", code, errs.String())
		default:
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(end) {
			t.Fatalf("stray relay not listening after 10s:\n%s", errs.String())
		}
	}
	cancel()
	if code := <-done; code != ExitOK {
		t.Errorf("exit %d after stop:\n%s", code, errs.String())
	}
}
