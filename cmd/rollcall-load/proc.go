package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// processCPU is the CPU time, user and system, process pid has used so far, or 0 if
// unknown (the kernel counts it in ticks of 10ms).
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses: utime and stime
	// are the 12th and 13th of them.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(u+s) * 10 * time.Millisecond
}

// procStatus returns a size in bytes from /proc/self/status (VmRSS, VmHWM), or 0.
func procStatus(field string) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := bytes.CutPrefix(sc.Bytes(), []byte(field+":")); ok {
			kb, err := strconv.ParseUint(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte("kB")))), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// histogram is a cumulative histogram: counts of observations at most each bound.
type histogram struct {
	bounds []float64
	counts []float64
}

// gatherPolls returns the polls the worker has made, and the histogram of the
// durations of those that went well.
func gatherPolls(g prometheus.Gatherer) (float64, histogram) {
	var polls float64
	var h histogram
	families, _ := g.Gather()
	for _, f := range families {
		switch f.GetName() {
		case "rollcall_polls_total":
			for _, m := range f.GetMetric() {
				polls += m.GetCounter().GetValue()
			}
		case "rollcall_poll_duration_seconds":
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "outcome" && l.GetValue() == "ok" {
						for _, b := range m.GetHistogram().GetBucket() {
							h.bounds = append(h.bounds, b.GetUpperBound())
							h.counts = append(h.counts, float64(b.GetCumulativeCount()))
						}
					}
				}
			}
		}
	}
	return polls, h
}

// gatherRequests returns the API requests made so far, by endpoint label.
func gatherRequests(g prometheus.Gatherer) map[string]float64 {
	out := map[string]float64{}
	families, _ := g.Gather()
	for _, f := range families {
		if f.GetName() != "rollcall_api_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "endpoint" {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// gatherCounter returns the value of the counter name, 0 if there is none.
func gatherCounter(g prometheus.Gatherer, name string) float64 {
	families, _ := g.Gather()
	for _, f := range families {
		if f.GetName() == name {
			var v float64
			for _, m := range f.GetMetric() {
				v += m.GetCounter().GetValue()
			}
			return v
		}
	}
	return 0
}

// minusRequests returns the requests of now that are not in earlier.
func minusRequests(now, earlier map[string]float64) map[string]float64 {
	out := maps.Clone(now)
	for k, v := range earlier {
		out[k] -= v
	}
	return out
}

// minus returns the observations of h that are not in earlier.
func (h histogram) minus(earlier histogram) histogram {
	d := histogram{bounds: h.bounds, counts: slices.Clone(h.counts)}
	for i := range min(len(d.counts), len(earlier.counts)) {
		d.counts[i] -= earlier.counts[i]
	}
	return d
}

// quantile estimates the q-quantile as Prometheus' histogram_quantile does: linearly
// within the bucket that holds it.
func (h histogram) quantile(q float64) time.Duration {
	if len(h.counts) == 0 || h.counts[len(h.counts)-1] == 0 {
		return 0
	}
	rank := q * h.counts[len(h.counts)-1]
	lower, below := 0.0, 0.0
	for i, c := range h.counts {
		if c >= rank {
			upper := h.bounds[i]
			if math.IsInf(upper, 1) || c == below {
				upper = lower
			} else {
				upper = lower + (upper-lower)*(rank-below)/(c-below)
			}
			return time.Duration(upper * float64(time.Second))
		}
		lower, below = h.bounds[i], c
	}
	return time.Duration(lower * float64(time.Second))
}

func runID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}
