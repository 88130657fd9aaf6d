package main

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rollcall/rollcall/internal/worker"
	"github.com/rollcall/rollcall/sim"
	"go.yaml.in/yaml/v3"
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

// TestComposeBuildsOnce: docker-compose.yml builds rollcall's image in one service only,
// tagged; every other service that runs it names that tag and never pulls it, and
// depends on the builder, directly or not, so that whatever is started finds the image
// built. Every service has an image.
func TestComposeBuildsOnce(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image      string `yaml:"image"`
			Build      any    `yaml:"build"`
			PullPolicy string `yaml:"pull_policy"`
			DependsOn  any    `yaml:"depends_on"` // a list of names, or a map by name
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatal(err)
	}
	var builders []string
	for name, s := range compose.Services {
		if s.Build != nil {
			builders = append(builders, name)
		}
		if s.Image == "" {
			t.Errorf("service %s has no image", name)
		}
	}
	if len(builders) != 1 {
		t.Fatalf("services that build: %v, want one", builders)
	}
	builder := builders[0]
	image := compose.Services[builder].Image

	// dependsOn reports whether service depends on builder, directly or not.
	var dependsOn func(service string, seen map[string]bool) bool
	dependsOn = func(service string, seen map[string]bool) bool {
		if seen[service] {
			return false
		}
		seen[service] = true
		var deps []string
		switch d := compose.Services[service].DependsOn.(type) {
		case []any:
			for _, name := range d {
				deps = append(deps, fmt.Sprint(name))
			}
		case map[string]any:
			deps = slices.Collect(maps.Keys(d))
		}
		for _, dep := range deps {
			if dep == builder || dependsOn(dep, seen) {
				return true
			}
		}
		return false
	}
	for name, s := range compose.Services {
		if s.Image != image {
			continue
		}
		if s.PullPolicy != "never" {
			t.Errorf("service %s: pull_policy %q, want never: %s is built here", name, s.PullPolicy, image)
		}
		if name != builder && !dependsOn(name, make(map[string]bool)) {
			t.Errorf("service %s runs %s but does not depend on %s, which builds it", name, image, builder)
		}
	}
}
