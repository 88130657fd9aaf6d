package main

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rollcall/rollcall/internal/worker"
	"github.com/rollcall/rollcall/sim"
)

// TestComposeConfig: docker-compose.yml's configs, the single worker's and the
// cluster profile's, are valid, and follow the simulator's demo rooms.
func TestComposeConfig(t *testing.T) {
	for _, name := range []string{"compose.toml", "compose-cluster.toml"} {
		t.Run(name, func(t *testing.T) { composeConfig(t, name) })
	}
}

func composeConfig(t *testing.T, name string) {
	got, err := worker.Load(filepath.Join("..", "..", "deploy", name), func(k string) string {
		return map[string]string{
			"VIDEOSDK_API_KEY": "key",
			"VIDEOSDK_SECRET":  "secret",
		}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	api := sim.New(sim.Config{})
	var want []worker.Room
	for _, id := range api.DemoWorld(demoRooms) {
		want = append(want, worker.Room{ID: api.RoomOf(id)})
	}
	if diff := cmp.Diff(want, got.Rooms); diff != "" {
		t.Errorf("rooms (-demo world +compose.toml):\n%s", diff)
	}
}
