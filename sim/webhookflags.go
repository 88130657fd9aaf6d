package sim

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// WebhookFlags declares -webhook-delay, -webhook-loss and -webhook-dup on fs, which
// set o (its values now are their defaults); each refuses a bad value with the
// flag's name, and sets *tuned when given. when prefixes their usage, such as
// "with -webhooks, ".
func WebhookFlags(fs *flag.FlagSet, o *WebhookOptions, when string, tuned *bool) {
	fs.Func("webhook-delay", fmt.Sprintf("%sdelay each webhook by a random time in `MIN-MAX` (e.g. 20ms-200ms), or by one duration (default %s-%s)", when, o.MinDelay, o.MaxDelay), func(s string) error {
		first, second, ranged := strings.Cut(s, "-")
		lo, err := time.ParseDuration(first)
		hi := lo
		if err == nil && ranged {
			hi, err = time.ParseDuration(second)
		}
		if err != nil || lo < 0 || hi < lo {
			return errors.New("want a duration, or MIN-MAX with 0 <= MIN <= MAX, such as 20ms-200ms")
		}
		o.MinDelay, o.MaxDelay, *tuned = lo, hi, true
		return nil
	})
	fraction := func(dst *float64) func(string) error {
		return func(s string) error {
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || !(f >= 0 && f <= 1) {
				return errors.New("want a fraction from 0 to 1")
			}
			*dst, *tuned = f, true
			return nil
		}
	}
	fs.Func("webhook-loss", fmt.Sprintf("%sdrop this `fraction` of the webhooks (default %g)", when, o.Loss), fraction(&o.Loss))
	fs.Func("webhook-dup", fmt.Sprintf("%ssend this `fraction` of the webhooks twice (default %g)", when, o.Duplicate), fraction(&o.Duplicate))
}
