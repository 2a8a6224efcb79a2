// Package browsertest drives a real browser for the dashboard's tests: Debian's
// chromium, headless, through github.com/chromedp/chromedp. Each Start runs a
// private browser with a fresh profile that may reach loopback only, collects
// what the page writes to the console (calls of the console API, uncaught
// exceptions, Content-Security-Policy violations and the browser's own log)
// and keeps screenshots as artefacts.
//
// A browser-driven test fails when a page throws or breaks its CSP: call
// NoProblems after the steps that load pages. The dashboard's CSP allows no
// inline script, so a stray <script> or onclick= shows up there.
//
// Every browser has a hard deadline, so a hung browser fails its test instead
// of hanging CI, and it is killed, with every helper process, when the test
// ends.
//
// It is test support only: nothing in the product imports it.
package browsertest
