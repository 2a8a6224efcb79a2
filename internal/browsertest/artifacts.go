package browsertest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// ArtifactDir returns the directory for screenshots and logs, creating it:
// $STRAY_ARTIFACTS when set (CI points it into the clone and keeps it), else
// stray-artifacts in the system's temporary directory. A relative
// $STRAY_ARTIFACTS is relative to the package under test, as go test runs
// there; give an absolute one.
func ArtifactDir() (string, error) {
	dir := os.Getenv("STRAY_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "stray-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("browsertest: artefact directory: %w", err)
	}
	return dir, nil
}

// maxScreenshotHeight keeps a screenshot within what chromium can capture in
// one piece.
const maxScreenshotHeight = 16384

// Screenshot saves a PNG of the whole page, beyond the window, in the
// artefact directory as <test>-<name>.png, logs its path and returns it.
func (b *Browser) Screenshot(t testing.TB, name string) string {
	t.Helper()
	p, err := b.screenshot(t, name)
	if err != nil {
		t.Fatalf("browsertest: screenshot %s: %v", name, err)
	}
	t.Logf("browsertest: screenshot %s", p)
	return p
}

func (b *Browser) screenshot(t testing.TB, name string) (string, error) {
	ctx, cancel := b.step()
	defer cancel()
	png, err := chromedp.Run(ctx, fullPage)
	if err != nil {
		return "", err
	}
	return writeArtifact(t, name+".png", png)
}

// fullPage captures the page's whole content size as a PNG (as DevTools'
// "Capture full size screenshot" does).
func fullPage(ctx context.Context, tg *chromedp.Target) ([]byte, error) {
	m, err := cdp.Call(ctx, tg, page.GetLayoutMetrics, cdp.Empty{})
	if err != nil {
		return nil, err
	}
	// The content, and at least the window: a short page shows the
	// window's empty rest too.
	clip := &page.Viewport{Scale: 1}
	if v := m.CSSLayoutViewport; v != nil {
		clip.Width, clip.Height = float64(v.ClientWidth), float64(v.ClientHeight)
	}
	if r := m.CSSContentSize; r != nil {
		clip.Width, clip.Height = math.Max(clip.Width, math.Ceil(r.Width)), math.Max(clip.Height, math.Ceil(r.Height))
	}
	if clip.Width <= 0 || clip.Height <= 0 {
		return nil, errors.New("the page has no size")
	}
	clip.Height = math.Min(clip.Height, maxScreenshotHeight)
	yes := true
	res, err := cdp.Call(ctx, tg, page.CaptureScreenshot, page.CaptureScreenshotParams{
		Format:                page.CaptureScreenshotFormatPng,
		Clip:                  clip,
		FromSurface:           &yes,
		CaptureBeyondViewport: &yes,
	})
	if err != nil {
		return nil, err
	}
	return res.Data, nil
}

// writeArtifact writes data as <test>-<name> in the artefact directory.
func writeArtifact(t testing.TB, name string, data []byte) (string, error) {
	dir, err := ArtifactDir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, fileName(t.Name())+"-"+fileName(name))
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return "", fmt.Errorf("browsertest: %w", err)
	}
	return p, nil
}

// fileName makes s safe as a file name: subtests' slashes and anything but
// letters, digits, dot, dash and underscore become underscores.
func fileName(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
	if s == "" || strings.Trim(s, ".") == "" {
		return "_"
	}
	return s
}
