package worker

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/internal/testkit"
	"go.yaml.in/yaml/v3"
)

// rules is the shape of a Prometheus rules file, decoded strictly.
type rules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

var metricName = regexp.MustCompile(`\b(rollcall|go|process)_[a-z_]+\b`)

// TestDeployMetricsExist: the alerting rules and the dashboard in deploy/ parse, and
// every metric they name is served on a running worker's /metrics, so that they
// cannot drift from the code.
func TestDeployMetricsExist(t *testing.T) {
	addr := testkit.FreeAddr(t)
	cfg := securityConfig(t, natstest.Start(t).ClientURL())
	cfg.Rooms = []Room{{ID: "r1"}}
	cfg.HTTP.Listen = addr
	var logs testkit.Buffer
	stop := runWorker(t, cfg, &logs)
	defer stop()
	var exposition string
	eventually(t, "a poll and a listing counted", func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		exposition = string(b)
		return strings.Contains(exposition, `rollcall_api_requests_total{code="200",endpoint="sessions"}`) &&
			strings.Contains(exposition, `rollcall_polls_total{outcome="ok"} `)
	})
	served := map[string]bool{}
	for _, line := range strings.Split(exposition, "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			served[strings.Fields(name)[0]] = true
		} else if line != "" && !strings.HasPrefix(line, "#") {
			served[strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' })[0]] = true
		}
	}

	raw, err := os.ReadFile("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var r rules
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	var named []string
	for _, g := range r.Groups {
		for _, rule := range g.Rules {
			if rule.Alert == "" || rule.Expr == "" || rule.Annotations["summary"] == "" || rule.Labels["severity"] == "" {
				t.Errorf("alerts.yml: rule %+v lacks alert, expr, summary or severity", rule)
			}
			named = append(named, metricName.FindAllString(rule.Expr, -1)...)
		}
	}
	if len(named) < 5 {
		t.Errorf("alerts.yml names %d metrics: %v", len(named), named)
	}

	raw, err = os.ReadFile("../../deploy/grafana/rollcall.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("rollcall.json: %v", err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			found := metricName.FindAllString(tg.Expr, -1)
			if len(found) == 0 {
				t.Errorf("panel %q: %q names no metric", p.Title, tg.Expr)
			}
			named = append(named, found...)
		}
	}
	slices.Sort(named)
	for _, name := range slices.Compact(named) {
		if !served[name] {
			t.Errorf("%s is named in deploy/ but not served on /metrics", name)
		}
	}
}
