package main

import (
	"errors"
	"flag"
	"net/url"
	"strconv"
	"strings"
	"time"

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
	fs.Func("webhook-delay", "delay each webhook by a random time in `MIN-MAX` (e.g. 20ms-200ms), or by one duration (default 0)", func(s string) error {
		first, second, ranged := strings.Cut(s, "-")
		lo, err := time.ParseDuration(first)
		hi := lo
		if err == nil && ranged {
			hi, err = time.ParseDuration(second)
		}
		if err != nil || lo < 0 || hi < lo {
			return errors.New("want a duration, or MIN-MAX with 0 <= MIN <= MAX, such as 20ms-200ms")
		}
		h.opts.MinDelay, h.opts.MaxDelay, h.tuned = lo, hi, true
		return nil
	})
	fraction := func(dst *float64) func(string) error {
		return func(s string) error {
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || !(f >= 0 && f <= 1) {
				return errors.New("want a fraction from 0 to 1")
			}
			*dst, h.tuned = f, true
			return nil
		}
	}
	fs.Func("webhook-loss", "drop this `fraction` of the webhooks (default 0)", fraction(&h.opts.Loss))
	fs.Func("webhook-dup", "send this `fraction` of the webhooks twice (default 0)", fraction(&h.opts.Duplicate))
}
