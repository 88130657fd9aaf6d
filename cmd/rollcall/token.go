package main

import (
	"fmt"
	"io"

	"github.com/rollcall/rollcall/poller"
)

// printToken prints the configured pre-minted token, or a fresh one minted from the
// configured key and secret, for use with curl.
func printToken(path string, w io.Writer, getenv func(string) string) error {
	cfg, err := loadConfig(path, getenv)
	if err != nil {
		return err
	}
	v := cfg.VideoSDK
	if v.Token != "" {
		fmt.Fprintln(w, v.Token)
		return nil
	}
	t, err := poller.NewMinter(v.APIKey, v.Secret, v.TokenTTL.Duration, nil).Mint()
	if err != nil {
		return err
	}
	fmt.Fprintln(w, string(t))
	return nil
}
