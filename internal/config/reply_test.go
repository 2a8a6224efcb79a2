package config

import (
	"fmt"
	"strings"
	"testing"
)

func TestReplyClientsDefaultToThisMachineAndRefuseEverywhere(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		yaml    string
		want    string // the parsed prefixes
		problem string // a substring of Validate's error ("" none)
	}{
		{"empty is this machine only", "", "[127.0.0.0/8 ::1/128]", ""},
		{"addresses and prefixes", "listen: {reply: '127.0.0.1:10026'}\nhold: {reply_domain: reply.example.org, reply_clients: [10.0.0.25, '10.1.0.9/29', '::ffff:10.0.0.26', '2001:db8::/64']}\n",
			"[10.0.0.25/32 10.1.0.8/29 10.0.0.26/32 2001:db8::/64]", ""},
		{"not an address", "listen: {reply: '127.0.0.1:10026'}\nhold: {reply_domain: reply.example.org, reply_clients: [mta.example.org]}\n",
			"", "hold.reply_clients[0]: \"mta.example.org\""},
		{"everyone (IPv4)", "listen: {reply: '127.0.0.1:10026'}\nhold: {reply_domain: reply.example.org, reply_clients: [10.0.0.25, 0.0.0.0/0]}\n",
			"", "hold.reply_clients[1]: \"0.0.0.0/0\" accepts replies from anywhere"},
		{"everyone (IPv6)", "listen: {reply: '127.0.0.1:10026'}\nhold: {reply_domain: reply.example.org, reply_clients: ['::/0']}\n",
			"", "hold.reply_clients[0]: \"::/0\" accepts replies from anywhere"},
		{"clients without the listener", "hold: {reply_clients: [10.0.0.25]}\n",
			"[10.0.0.25/32]", "hold.reply_clients: set, but answering by reply is off"},
		{"authentication without the listener", "hold: {reply_require_auth: true}\n",
			"", "hold.reply_require_auth: set, but answering by reply is off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse(strings.NewReader(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			ps, perr := c.Hold.ReplyClientPrefixes()
			if got := fmt.Sprint(ps); tc.want != "" && (perr != nil || got != tc.want) {
				t.Errorf("prefixes %s (%v), want %s", got, perr, tc.want)
			}
			err = c.Validate()
			switch {
			case tc.problem == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)):
				t.Errorf("Validate() = %v, want it to say %q", err, tc.problem)
			}
		})
	}
}
