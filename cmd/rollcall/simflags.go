package main

import (
	"errors"
	"flag"
	"net/url"

	"github.com/rollcall/rollcall/sim"
)

// simWebhooks is where and how `rollcall sim` sends webhooks, from its flags.
type simWebhooks struct {
	url   string // "": none
	opts  sim.WebhookOptions
	tuned bool // a -webhook-* flag was given
}

// flags declares the webhook flags on fs; each checks its value as it is parsed, so
// a bad one is refused with the flag's name.
func (h *simWebhooks) flags(fs *flag.FlagSet) {
	fs.Func("webhook", "send VideoSDK's webhooks for every change to `URL`, signed with the key it serves", func(s string) error {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("want an http:// or https:// URL")
		}
		h.url = s
		return nil
	})
	sim.WebhookFlags(fs, &h.opts, "", &h.tuned)
}
