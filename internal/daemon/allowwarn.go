package daemon

import (
	"fmt"
	"strings"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/config"
)

// LookalikeAllows names each allow rule of the config file's policy (its
// allow list and its scopes') that lets mail through to a lookalike of a
// protected domain: army.ml or all of .ml with mil protected. Such a rule
// may be right (a real partner in Mali), but it re-opens, for what it
// covers, the leak stray exists to stop; the dashboard asks for a
// confirmation before adding one, and for the file, config check and the
// daemon's log say it (docs/detection.md, the trust model).
func LookalikeAllows(cfg *config.Config, c *detect.Checker) []string {
	var out []string
	check := func(key string, rules []string) {
		for _, r := range rules {
			dom, suffix := strings.TrimSpace(r), false
			if i := strings.LastIndexByte(dom, '@'); i >= 0 {
				dom = dom[i+1:]
			} else if strings.HasPrefix(dom, ".") {
				dom, suffix = dom[1:], true
			}
			intended, ok := c.CoversProtectedLookalike(dom, suffix)
			switch {
			case !ok:
			case suffix:
				out = append(out, fmt.Sprintf("%s: %q lets mail through to lookalikes of %s", key, r, intended))
			default:
				out = append(out, fmt.Sprintf("%s: %q lets mail through to a lookalike of %s", key, r, intended))
			}
		}
	}
	check("policy.allow", cfg.Policy.Allow)
	for i, s := range cfg.Policy.Scopes {
		check(fmt.Sprintf("policy.scopes[%d].allow", i), s.Allow)
	}
	return out
}

// warnLookalikeAllows logs LookalikeAllows, at start and after a reload
// that changed them (not at every refresh of the learned correspondents).
func (d *Daemon) warnLookalikeAllows(cfg *config.Config, c *detect.Checker) {
	w := LookalikeAllows(cfg, c)
	key := strings.Join(w, "\n")
	d.mu.Lock()
	same := key == d.allowWarned
	d.allowWarned = key
	d.mu.Unlock()
	if same {
		return
	}
	for _, m := range w {
		d.log.Warn("an allow rule opens a lookalike of a protected domain; keep it only for a real correspondent", "rule", m)
	}
}
