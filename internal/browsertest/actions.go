package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// Every helper takes a CSS selector and waits, up to the step timeout, for
// what it needs: a present element to read or fill, a visible one to click.
// A failed step stops the test.

// Navigate loads url in the tab, waits for the page's load event and returns
// the HTTP status of the document (after redirects). A page that cannot load
// at all (a refused connection, a name other than loopback) fails the test.
func (b *Browser) Navigate(t testing.TB, url string) int {
	t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	if err != nil {
		b.fail(t, "navigating to "+url, err)
	}
	return status(resp)
}

// Open navigates to url and waits until the element sel is visible. It
// returns the HTTP status of the document.
func (b *Browser) Open(t testing.TB, url, sel string) int {
	t.Helper()
	code := b.Navigate(t, url)
	b.WaitVisible(t, sel)
	return code
}

// WaitVisible waits until the element sel is visible.
func (b *Browser) WaitVisible(t testing.TB, sel string) {
	t.Helper()
	b.do(t, "waiting for "+sel+" to be visible", chromedp.WaitVisible(chromedp.CSS(sel)))
}

// WaitGone waits until no element matches sel.
func (b *Browser) WaitGone(t testing.TB, sel string) {
	t.Helper()
	b.do(t, "waiting for "+sel+" to go", chromedp.WaitNotPresent(chromedp.CSS(sel)))
}

// Fill types value into the input or textarea sel, replacing its content,
// with real key events as a user would.
func (b *Browser) Fill(t testing.TB, sel, value string) {
	t.Helper()
	b.do(t, "filling "+sel,
		chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Clear(chromedp.CSS(sel)),
		chromedp.SendKeys(chromedp.CSS(sel), value),
	)
}

// SetValue sets the value of the form control sel directly, without key
// events; it also reaches hidden inputs and selects.
func (b *Browser) SetValue(t testing.TB, sel, value string) {
	t.Helper()
	b.do(t, "setting the value of "+sel, chromedp.SetValue(chromedp.CSS(sel), value))
}

// Click clicks the visible element sel with the mouse and does not wait for
// what follows; see ClickNavigate for a click that loads a page.
func (b *Browser) Click(t testing.TB, sel string) {
	t.Helper()
	b.do(t, "clicking "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// ClickNavigate clicks the visible element sel (a link, a submit button),
// waits for the page it loads and returns the HTTP status of the new
// document (0 for a move within the page). A click that loads no page fails
// after the step timeout.
func (b *Browser) ClickNavigate(t testing.TB, sel string) int {
	t.Helper()
	return b.navigateBy(t, "clicking "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// Submit submits the form sel as the browser does when a user presses its
// submit button (form.requestSubmit(): validation, the submit event), waits
// for the page it loads and returns the HTTP status of the new document. A
// form that fails validation loads nothing, and Submit fails after the step
// timeout.
func (b *Browser) Submit(t testing.TB, sel string) int {
	t.Helper()
	return b.navigateBy(t, "submitting "+sel, chromedp.Evaluate[chromedp.Void](
		fmt.Sprintf(`(() => {
	const f = document.querySelector(%s);
	if (!(f instanceof HTMLFormElement)) throw new Error("no form matches " + %[1]s);
	f.requestSubmit();
})()`, jsString(sel))))
}

// Forge sets the form's field name to value behind the page's back, adding a
// hidden input when the form has no such field: the request an attacker
// would craft, for example with a stolen or made-up CSRF token. Submit the
// form afterwards. The page's CSP does not apply to this script (it comes
// from the test, not the page), so Forge itself causes no violation.
func (b *Browser) Forge(t testing.TB, form, name, value string) {
	t.Helper()
	b.do(t, fmt.Sprintf("forging %s's field %s", form, name), chromedp.Evaluate[chromedp.Void](
		fmt.Sprintf(`(() => {
	const f = document.querySelector(%s);
	if (!(f instanceof HTMLFormElement)) throw new Error("no form matches " + %[1]s);
	let el = f.elements.namedItem(%s);
	if (!el) {
		el = document.createElement("input");
		el.type = "hidden";
		el.name = %[2]s;
		f.appendChild(el);
	}
	el.value = %s;
})()`, jsString(form), jsString(name), jsString(value))))
}

// Text returns the visible text of the element sel (its innerText).
func (b *Browser) Text(t testing.TB, sel string) string {
	t.Helper()
	return run(t, b, "reading the text of "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// Value returns the value of the form control sel.
func (b *Browser) Value(t testing.TB, sel string) string {
	t.Helper()
	return run(t, b, "reading the value of "+sel, chromedp.Value(chromedp.CSS(sel)))
}

// Exists reports whether an element matches sel now, without waiting.
func (b *Browser) Exists(t testing.TB, sel string) bool {
	t.Helper()
	return Eval[bool](t, b, fmt.Sprintf(`document.querySelector(%s) !== null`, jsString(sel)))
}

// URL returns the address of the current page.
func (b *Browser) URL(t testing.TB) string {
	t.Helper()
	return run(t, b, "reading the location", chromedp.Location())
}

// Title returns the title of the current page.
func (b *Browser) Title(t testing.TB) string {
	t.Helper()
	return run(t, b, "reading the title", chromedp.Title())
}

// Eval evaluates the JavaScript expression js in the page and decodes its
// value into T (chromedp.Void to ignore it). Like Forge, it is the test's
// script, outside the page's CSP.
func Eval[T any](t testing.TB, b *Browser, js string) T {
	t.Helper()
	return run(t, b, "evaluating "+js, chromedp.Evaluate[T](js))
}

// Cookies returns the cookies the browser would send to the current page,
// with their attributes (HttpOnly, Secure, SameSite, expiry).
func (b *Browser) Cookies(t testing.TB) []*http.Cookie {
	t.Helper()
	res := run(t, b, "reading cookies", func(ctx context.Context, tg *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{})
	})
	cs := make([]*http.Cookie, 0, len(res.Cookies))
	for _, c := range res.Cookies {
		hc := &http.Cookie{
			Name: c.Name, Value: c.Value, Domain: c.Domain, Path: c.Path,
			HttpOnly: c.HTTPOnly, Secure: c.Secure,
		}
		if !c.Session && c.Expires > 0 {
			sec, frac := math.Modf(c.Expires)
			hc.Expires = time.Unix(int64(sec), int64(frac*1e9))
		}
		switch c.SameSite {
		case network.CookieSameSiteStrict:
			hc.SameSite = http.SameSiteStrictMode
		case network.CookieSameSiteLax:
			hc.SameSite = http.SameSiteLaxMode
		case network.CookieSameSiteNone:
			hc.SameSite = http.SameSiteNoneMode
		}
		cs = append(cs, hc)
	}
	return cs
}

// Cookie returns the current page's cookie name, or nil.
func (b *Browser) Cookie(t testing.TB, name string) *http.Cookie {
	t.Helper()
	for _, c := range b.Cookies(t) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// SetCookie stores c in the browser as if url had set it (url gives the
// defaults for domain and path), for example a session made elsewhere.
func (b *Browser) SetCookie(t testing.TB, url string, c *http.Cookie) {
	t.Helper()
	p := network.SetCookieParams{
		Name: c.Name, Value: c.Value, URL: url, Domain: c.Domain, Path: c.Path,
		Secure: &c.Secure, HTTPOnly: &c.HttpOnly,
	}
	switch c.SameSite {
	case http.SameSiteStrictMode:
		p.SameSite = network.CookieSameSiteStrict
	case http.SameSiteLaxMode:
		p.SameSite = network.CookieSameSiteLax
	case http.SameSiteNoneMode:
		p.SameSite = network.CookieSameSiteNone
	}
	if !c.Expires.IsZero() {
		p.Expires = cdp.TimeSinceEpoch(float64(c.Expires.UnixNano()) / 1e9)
	}
	b.do(t, "setting cookie "+c.Name, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, network.SetCookie, p)
		return chromedp.Void{}, err
	})
}

// ClearCookies deletes every cookie of the browser.
func (b *Browser) ClearCookies(t testing.TB) {
	t.Helper()
	b.do(t, "clearing cookies", func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, network.ClearBrowserCookies, cdp.Empty{})
		return chromedp.Void{}, err
	})
}

// do runs steps within one step timeout.
func (b *Browser) do(t testing.TB, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fail(t, what, err)
	}
}

// run runs one action with a value within one step timeout.
func run[T any](t testing.TB, b *Browser, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.fail(t, what, err)
	}
	return v
}

// navigateBy runs trigger and waits for the page it loads.
func (b *Browser) navigateBy(t testing.TB, what string, trigger chromedp.Action[chromedp.Void]) int {
	t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, trigger)
	if err != nil {
		b.fail(t, what+" and waiting for the next page", err)
	}
	return status(resp)
}

func status(resp *network.Response) int {
	if resp == nil {
		return 0
	}
	return int(resp.Status)
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}
