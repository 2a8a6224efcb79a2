package browsertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// Defaults. The machines that run the tests have two cores and run other
// test binaries at the same time, so the timeouts are generous.
const (
	DefaultTimeout     = 2 * time.Minute
	DefaultStepTimeout = 30 * time.Second
	DefaultWidth       = 1280
	DefaultHeight      = 900
)

// debianLauncher is Debian's /usr/bin/chromium, a shell script that starts
// debianBinary. The script sources /etc/chromium.d, which adds
// --enable-remote-extensions and --load-extension, exports Google API keys
// and probes /dev/shm; the harness wants its own flags and nothing else, so
// it runs the binary itself when it is there.
const (
	debianLauncher = "/usr/bin/chromium"
	debianBinary   = "/usr/lib/chromium/chromium"
)

// Find returns the browser to run, or why there is none ("" when found):
// $STRAY_CHROMIUM when set, else Debian's /usr/bin/chromium, else chromium on
// PATH.
func Find() (path, why string) {
	if p := os.Getenv("STRAY_CHROMIUM"); p != "" {
		if err := executable(p); err != nil {
			return "", fmt.Sprintf("STRAY_CHROMIUM=%s: %v", p, err)
		}
		return p, ""
	}
	p := debianLauncher
	if executable(p) != nil {
		var err error
		if p, err = exec.LookPath("chromium"); err != nil {
			return "", "chromium is not installed (apt-get install chromium, or set STRAY_CHROMIUM)"
		}
	}
	if isScript(p) && executable(debianBinary) == nil {
		return debianBinary, ""
	}
	return p, ""
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}

func isScript(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 2)
	n, _ := f.Read(head)
	return n == 2 && string(head) == "#!"
}

// Require returns the browser to run. When there is none it skips the test,
// unless STRAY_REQUIRE_CHROMIUM is set (CI sets it), in which case it fails.
func Require(t testing.TB) string {
	t.Helper()
	path, why := Find()
	if why != "" {
		if os.Getenv("STRAY_REQUIRE_CHROMIUM") != "" {
			t.Fatalf("chromium required: %s", why)
		}
		t.Skipf("skipping: %s (CI sets STRAY_REQUIRE_CHROMIUM and installs it)", why)
	}
	return path
}

// Options configure a browser. The zero value is the default.
type Options struct {
	// Timeout bounds the browser's whole life: when it passes, the browser
	// is killed and every later step fails. Default: $STRAY_BROWSER_TIMEOUT
	// (a Go duration) or DefaultTimeout.
	Timeout time.Duration
	// StepTimeout bounds one helper call: a navigation, a wait, a click
	// (default DefaultStepTimeout, never beyond Timeout).
	StepTimeout time.Duration
	// Width and Height are the size of the page's viewport in CSS pixels,
	// at a device scale of 1 (default DefaultWidth × DefaultHeight).
	Width, Height int
}

// Browser is a running private browser with one tab. Its methods take the
// test they report to, so a subtest can use its parent's browser; they are
// not safe for concurrent use.
type Browser struct {
	ctx         context.Context // the tab; ends at the hard deadline or when the browser dies
	deadlineCtx context.Context // ends at the hard deadline
	stepTimeout time.Duration
	deadline    time.Duration
	profile     string
	output      *tail

	mu        sync.Mutex
	messages  []Message
	documents map[network.RequestID]bool // the requests for pages' documents
}

// Start starts a browser with the default options; see StartWith.
func Start(t testing.TB) *Browser {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith starts a private browser: headless, a fresh profile in a test
// temporary directory, loopback only. It skips or fails the test as Require
// does when there is no browser. The browser is killed when the test ends;
// if the test failed, a screenshot and the browser's output are saved to the
// artefact directory first.
func StartWith(t testing.TB, o Options) *Browser {
	t.Helper()
	exe := Require(t)
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
		if s := os.Getenv("STRAY_BROWSER_TIMEOUT"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				t.Fatalf("browsertest: STRAY_BROWSER_TIMEOUT=%q: want a positive Go duration such as 3m", s)
			}
			o.Timeout = d
		}
	}
	if o.StepTimeout <= 0 {
		o.StepTimeout = DefaultStepTimeout
	}
	o.StepTimeout = min(o.StepTimeout, o.Timeout)
	if o.Width <= 0 || o.Height <= 0 {
		o.Width, o.Height = DefaultWidth, DefaultHeight
	}

	// The temporary directory's removal is registered first, so it runs
	// after the browser is gone.
	b := &Browser{
		stepTimeout: o.StepTimeout,
		deadline:    o.Timeout,
		profile:     filepath.Join(t.TempDir(), "profile"),
		output:      &tail{max: 256 << 10},
		documents:   make(map[network.RequestID]bool),
	}
	deadlineCtx, cancelDeadline := context.WithTimeout(context.Background(), o.Timeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(deadlineCtx, b.allocatorOptions(exe, o)...)
	// chromedp's own complaints go with the browser's output, not to the
	// process's log: a test's output is for the test.
	logf := func(format string, args ...any) { fmt.Fprintf(b.output, "chromedp: "+format+"\n", args...) }
	tabCtx, cancelTab := chromedp.NewContext(allocCtx,
		chromedp.WithListener(b.record), chromedp.WithLogf(logf), chromedp.WithErrorf(logf))
	b.ctx, b.deadlineCtx = tabCtx, deadlineCtx
	stop := sync.OnceFunc(func() {
		cancelTab()
		cancelAlloc()
		cancelDeadline()
		killProfile(b.profile)
	})
	t.Cleanup(func() {
		if t.Failed() {
			b.saveFailure(t)
		}
		stop()
	})
	// The first action starts the browser and binds it to tabCtx, so the
	// browser dies at the hard deadline whatever the test does. A step
	// timeout here would end the browser with the step, so a timer stops a
	// start that hangs.
	hung := time.AfterFunc(o.StepTimeout, stop)
	err := chromedp.Do(tabCtx)
	if !hung.Stop() {
		err = fmt.Errorf("no answer after %v (Options.StepTimeout): %v", o.StepTimeout, err)
	}
	if err != nil {
		// Stop first: an action on a context whose browser never came up
		// would start another one.
		stop()
		out := b.output.Bytes()
		if len(out) > 2048 {
			out = out[len(out)-2048:] // the rest goes to the artefacts
		}
		t.Fatalf("browsertest: starting %s: %v\n%s", exe, err, out)
	}
	// The window's size includes what headless chromium counts as its
	// frame; the page gets exactly Width × Height, whatever the version.
	b.do(t, "setting the viewport", chromedp.EmulateViewport(int64(o.Width), int64(o.Height)))
	return b
}

// allocatorOptions are chromium's flags: what a headless browser needs on a
// root-run, GPU-less machine, a profile that is new every time, and every
// switch that stops it from talking to anything but the test's servers on
// loopback (the network here is closed; a browser that tried would only be
// slow, and it must not depend on that).
func (b *Browser) allocatorOptions(exe string, o Options) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless, // also hide-scrollbars, mute-audio
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.UserDataDir(b.profile),
		chromedp.WindowSize(o.Width, o.Height),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		// Keep the browser to its own profile and off the desktop: no
		// keyring, no D-Bus secrets, shared memory in the temporary
		// directory (a container's /dev/shm can be 64 MB).
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// Nothing that phones home or fetches on its own.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("disable-client-side-phishing-detection", true),
		chromedp.Flag("safebrowsing-disable-auto-update", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-crash-reporter", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,AutofillServerCommunication,CertificateTransparencyComponentUpdater"),
		// Direct connections only, and every name except loopback fails
		// at once. The rules apply to IP literals too: http://192.0.2.1/
		// fails with ERR_NAME_NOT_RESOLVED, http://127.0.0.1:PORT/ loads.
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE ::1"),
		chromedp.CombinedOutput(b.output),
	}
}

// Context returns the tab's chromedp context, for the steps the helpers do
// not cover. It ends at the browser's hard deadline; bound a step with
// context.WithTimeout.
func (b *Browser) Context() context.Context { return b.ctx }

// step returns a context for one helper call.
func (b *Browser) step() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, b.stepTimeout)
}

// fail reports a failed step, naming what ended it.
func (b *Browser) fail(t testing.TB, what string, err error) {
	t.Helper()
	switch {
	case b.deadlineCtx.Err() != nil:
		t.Fatalf("browsertest: %s: %v (the browser's %v deadline passed; see Options.Timeout and STRAY_BROWSER_TIMEOUT)", what, err, b.deadline)
	case b.ctx.Err() != nil:
		t.Fatalf("browsertest: %s: %v (the browser is gone: it crashed or was killed)", what, err)
	case errors.Is(err, context.DeadlineExceeded):
		t.Fatalf("browsertest: %s: gave up after %v (Options.StepTimeout)", what, b.stepTimeout)
	default:
		t.Fatalf("browsertest: %s: %v", what, err)
	}
}

// saveFailure keeps a screenshot of the page and the browser's output when
// the test failed.
func (b *Browser) saveFailure(t testing.TB) {
	if b.ctx.Err() == nil {
		if p, err := b.screenshot(t, "failure"); err != nil {
			t.Logf("browsertest: no failure screenshot: %v", err)
		} else {
			t.Logf("browsertest: failure screenshot %s", p)
		}
	}
	if out := b.output.Bytes(); len(out) > 0 {
		if p, err := writeArtifact(t, "chromium.log", out); err != nil {
			t.Logf("browsertest: keeping the browser's output: %v", err)
		} else {
			t.Logf("browsertest: browser output %s", p)
		}
	}
}

// killProfile kills what is left of the browser that used the profile dir.
// Chromium's helpers (zygote, renderers, network and GPU processes) can
// outlive the browser process for a moment and keep writing into the
// profile, which would make removing the temporary directory fail. Every
// helper has --user-data-dir=dir on its command line, and dir is unique.
func killProfile(dir string) {
	want := []byte("--user-data-dir=" + dir)
	deadline := time.Now().Add(5 * time.Second)
	for quiet := 0; quiet < 3 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if killProcesses(want) == 0 {
			quiet++
		} else {
			quiet = 0
		}
	}
}

// killProcesses kills the processes with the argument arg and returns how
// many it found. It finds none where there is no /proc.
func killProcesses(arg []byte) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for a := range bytes.SplitSeq(cmdline, []byte{0}) {
			if bytes.Equal(a, arg) {
				if p, err := os.FindProcess(pid); err == nil && p.Kill() == nil {
					n++
				}
				break
			}
		}
	}
	return n
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (w *tail) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if over := len(w.buf) - w.max; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
	}
	return len(p), nil
}

func (w *tail) Bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.buf)
}
