package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/rollcall/rollcall/internal/worker"
	"github.com/rollcall/rollcall/poller"
)

// printToken prints the configured pre-minted token, or a fresh one minted from the
// configured key and secret, for use with curl.
//
// Without a config file at the default path, the environment alone is enough.
func printToken(path string, explicit bool, w io.Writer, getenv func(string) string) error {
	cfg, err := worker.Load(path, getenv)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		cfg, err = worker.Default(), nil
		cfg.ApplyEnv(getenv)
	}
	if err != nil {
		return err
	}
	v := cfg.VideoSDK
	if v.Token == "" && (v.APIKey == "" || v.Secret == "") {
		return errors.New("need VIDEOSDK_API_KEY and VIDEOSDK_SECRET, or VIDEOSDK_TOKEN, in the environment or the config")
	}
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
