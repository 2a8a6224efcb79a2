package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/testcert"
)

// envRequireDeb makes TestDebianPackage fail instead of skip when it cannot
// run (CI sets it).
const envRequireDeb = "STRAY_REQUIRE_DEB"

// TestDebianPackageInstallsRunsAndRemovesKeepingConfigAndStore builds the
// .deb with make deb, installs it on this machine with dpkg -i, verifies the
// unit with systemd-analyze, runs the packaged binary against the packaged
// config as the stray user (config check, then serve and /healthz), and
// removes it with dpkg -r, which must leave the config, the store and the
// key; a reinstall must keep the key. It touches the machine's real
// /etc/stray, /var/lib/stray and the stray user, so it runs only as root,
// only where none of them exists yet, and purges all of it afterwards, also
// when it fails.
func TestDebianPackageInstallsRunsAndRemovesKeepingConfigAndStore(t *testing.T) {
	requireDebMachine(t)
	userBefore := userExists("stray")
	t.Cleanup(func() { purgeDeb(t, userBefore) })

	deb := buildDeb(t)
	dpkg(t, "-i", deb)

	// What postinst made: the user, the state directory, the key.
	if !userExists("stray") {
		t.Fatal("postinst did not create the stray user")
	}
	checkMode(t, "/var/lib/stray", "stray", 0o750|os.ModeDir)
	checkMode(t, "/var/lib/stray/stray.key", "stray", 0o600)
	checkMode(t, "/etc/stray/stray.yaml", "root", 0o640)
	key := readFile(t, "/var/lib/stray/stray.key")
	if len(strings.TrimSpace(key)) != 64 {
		t.Errorf("key is %q, want 64 hex digits", key)
	}

	// The unit, checked offline (systemd need not be PID 1).
	if out, err := exec.Command("systemd-analyze", "verify", "/usr/lib/systemd/system/stray.service").CombinedOutput(); err != nil || strings.Contains(string(out), "stray.service") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	unit := readFile(t, "/usr/lib/systemd/system/stray.service")
	for _, want := range []string{"User=stray", "StateDirectory=stray", "WorkingDirectory=/var/lib/stray", "ProtectSystem=strict",
		"ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes", "CapabilityBoundingSet=\n", "RestrictAddressFamilies=",
		"Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID"} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", strings.TrimSpace(want))
		}
	}

	// The packaged binary says which commit it was built from.
	out, err := exec.Command("/usr/bin/stray", "version", "--format", "json").Output()
	if err != nil {
		t.Fatalf("stray version: %v", err)
	}
	var v map[string]string
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("stray version --format json: %v: %s", err, out)
	}
	head, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err == nil && v["commit"] != strings.TrimSpace(string(head)) {
		t.Errorf("packaged stray says commit %q, the checkout is at %s", v["commit"], head)
	}
	if v["version"] == "" || v["version"] == "dev" || v["build_date"] == "" {
		t.Errorf("version not stamped: %s", out)
	}

	// The packaged config is valid, and serve runs with it as stray.
	if out, err := asStray("/usr/bin/stray", "config", "check", "/etc/stray/stray.yaml").CombinedOutput(); err != nil {
		t.Fatalf("stray config check /etc/stray/stray.yaml: %v\n%s", err, out)
	}
	serveAsStrayUntilHealthy(t, "/etc/stray/stray.yaml", "http://127.0.0.1:8098", &http.Client{Timeout: time.Second})
	checkMode(t, "/var/lib/stray/stray.db", "stray", 0) // made by serve, as stray

	// docs/install.md's TLS step: a certificate the stray user can read,
	// listen.http_tls, checked, then serving https with HSTS.
	pool := installTestCertificate(t, "/etc/stray/tls")
	packaged := readFile(t, "/etc/stray/stray.yaml")
	if !strings.Contains(packaged, "\nlisten:\n") {
		t.Fatalf("the packaged config has no listen section:\n%s", packaged)
	}
	tlsCfg := "/etc/stray/stray-tls.yaml"
	writeFile(t, tlsCfg, strings.Replace(packaged, "\nlisten:\n", "\nlisten:\n  http_tls: {cert: /etc/stray/tls/cert.pem, key: /etc/stray/tls/key.pem}\n", 1))
	os.Chmod(tlsCfg, 0o644)
	if out, err := asStray("/usr/bin/stray", "config", "check", tlsCfg).CombinedOutput(); err != nil || !strings.Contains(string(out), "listen.http_tls: /etc/stray/tls/cert.pem") {
		t.Fatalf("stray config check %s: %v\n%s", tlsCfg, err, out)
	}
	serveAsStrayUntilHealthy(t, tlsCfg, "https://127.0.0.1:8098", &http.Client{Timeout: 2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}})

	// docs/install.md's backup, as root: a checked copy, and the store's
	// files still belong to stray.
	backup := filepath.Join(t.TempDir(), "stray-backup.db")
	if out, err := exec.Command("/usr/bin/stray", "store", "backup", "--config", "/etc/stray/stray.yaml", backup).CombinedOutput(); err != nil {
		t.Errorf("stray store backup: %v\n%s", err, out)
	}
	checkMode(t, backup, "root", 0o600)
	for _, f := range []string{"/var/lib/stray/stray.db", "/var/lib/stray/stray.db-wal", "/var/lib/stray/stray.db-shm"} {
		if _, err := os.Stat(f); err == nil {
			checkMode(t, f, "stray", 0)
		}
	}

	// Remove: binary and unit go, config, store and key stay.
	dpkg(t, "-r", "stray")
	for _, gone := range []string{"/usr/bin/stray", "/usr/lib/systemd/system/stray.service"} {
		if _, err := os.Stat(gone); err == nil {
			t.Errorf("%s left after dpkg -r", gone)
		}
	}
	for _, kept := range []string{"/etc/stray/stray.yaml", "/var/lib/stray/stray.db", "/var/lib/stray/stray.key"} {
		if _, err := os.Stat(kept); err != nil {
			t.Errorf("dpkg -r removed %s: %v", kept, err)
		}
	}

	// Reinstall: the key (and so every hold link already sent) survives.
	dpkg(t, "-i", deb)
	if got := readFile(t, "/var/lib/stray/stray.key"); got != key {
		t.Error("reinstalling replaced the signing key")
	}
	dpkg(t, "-r", "stray")
}

// requireDebMachine skips (or, with STRAY_REQUIRE_DEB, fails) unless this is
// a root Debian machine with make, dpkg, setpriv and systemd-analyze, and no
// stray already installed whose files the test would touch.
func requireDebMachine(t *testing.T) {
	t.Helper()
	fail := t.Skipf
	if os.Getenv(envRequireDeb) != "" {
		fail = t.Fatalf
	}
	if os.Geteuid() != 0 {
		fail("skipping: installing a .deb needs root (CI sets %s)", envRequireDeb)
		return
	}
	for _, tool := range []string{"dpkg", "make", "setpriv", "systemd-analyze"} {
		if _, err := exec.LookPath(tool); err != nil {
			fail("skipping: no %s (CI sets %s and installs it)", tool, envRequireDeb)
			return
		}
	}
	if exec.Command("dpkg-query", "-W", "stray").Run() == nil {
		t.Fatal("a stray package is installed on this machine: the test would replace it; remove it first")
	}
	for _, p := range []string{"/etc/stray", "/var/lib/stray"} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s exists: the test installs stray there and purges it afterwards; move it away first", p)
		}
	}
}

func buildDeb(t *testing.T) string {
	t.Helper()
	dist := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "-C", "..", "deb", "DIST="+dist)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make deb: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "stray_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb made %v, want one stray_*.deb", debs)
	}
	return debs[0]
}

func dpkg(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("dpkg", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// purgeDeb leaves the machine as it was: no package, no /etc/stray or
// /var/lib/stray, and no stray user unless there was one before.
func purgeDeb(t *testing.T, userBefore bool) {
	if out, err := exec.Command("dpkg", "--purge", "stray").CombinedOutput(); err != nil {
		t.Logf("dpkg --purge stray: %v\n%s", err, out)
	}
	os.RemoveAll("/etc/stray")
	os.RemoveAll("/var/lib/stray")
	if !userBefore && userExists("stray") {
		if out, err := exec.Command("userdel", "stray").CombinedOutput(); err != nil {
			t.Logf("userdel stray: %v\n%s", err, out)
		}
		exec.Command("groupdel", "stray").Run()
	}
}

func userExists(name string) bool {
	_, err := user.Lookup(name)
	return err == nil
}

// asStray runs a command as the stray user and group, without capabilities,
// in /var/lib/stray, as the systemd unit does.
func asStray(name string, args ...string) *exec.Cmd {
	cmd := exec.Command("setpriv", append([]string{"--reuid=stray", "--regid=stray", "--init-groups",
		"--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--", name}, args...)...)
	cmd.Dir = "/var/lib/stray"
	return cmd
}

// serveAsStrayUntilHealthy runs the unit's ExecStart with cfg as stray
// until base/healthz answers through client (over https, with HSTS), then
// stops it with SIGTERM, as systemctl stop does.
func serveAsStrayUntilHealthy(t *testing.T, cfg, base string, client *http.Client) {
	t.Helper()
	addr := strings.TrimPrefix(strings.TrimPrefix(base, "https://"), "http://")
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s is already taken on this machine: the packaged config listens there", addr)
	}
	cmd := asStray("/usr/bin/stray", "serve", "--config", cfg)
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("stray serve did not stop within 30s of SIGTERM\n%s", log.String())
		}
	}
	defer stop()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(base + "/healthz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			hsts := resp.Header.Get("Strict-Transport-Security") != ""
			if resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) == "ok" {
				if strings.HasPrefix(base, "https://") && !hsts {
					t.Errorf("https without HSTS")
				}
				break
			}
			err = fmt.Errorf("%s: %q", resp.Status, body)
		}
		select {
		case werr := <-exited:
			stopped = true
			t.Fatalf("stray serve exited (%v) before /healthz answered\n%s", werr, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz on %s: %v\n%s", addr, err, log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	stop()
}

// installTestCertificate writes a self-signed certificate for 127.0.0.1
// and its key into dir as cert.pem and key.pem (the key root:stray 0640),
// as an administrator installs one, and returns a pool that trusts it.
func installTestCertificate(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	c, k := testcert.New(t, 1)
	certPEM, keyPEM := testcert.PEM(t, c, k)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "cert.pem"), string(certPEM))
	keyPath := filepath.Join(dir, "key.pem")
	writeFile(t, keyPath, string(keyPEM))
	os.Chmod(filepath.Join(dir, "cert.pem"), 0o644)
	if out, err := exec.Command("chown", "root:stray", keyPath).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	os.Chmod(keyPath, 0o640)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return pool
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkMode checks a file's owner and permission bits (mode 0: only the
// owner).
func checkMode(t *testing.T, path, owner string, mode os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Error(err)
		return
	}
	if got := st.Mode() & (os.ModeDir | os.ModePerm); mode != 0 && got != mode {
		t.Errorf("%s: mode %v, want %v", path, got, mode)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return
	}
	u, err := user.LookupId(fmt.Sprint(sys.Uid))
	if err != nil || u.Username != owner {
		t.Errorf("%s: owner uid %d, want %s", path, sys.Uid, owner)
	}
}
