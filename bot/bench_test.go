package bot

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchParallelism is RunParallel's goroutines per GOMAXPROCS.
const benchParallelism = 8

// BenchmarkSlashCommand measures `/toolbox status` through the whole path
// (HTTP POST over loopback, form decoding, token check, parsing, routing, the
// audit write, the JSON reply) next to a bare net/http handler that returns
// fixed JSON, with the same client and concurrency in the same run. It reports
// the throughput and p99 latency of each and the throughput ratio. Targets:
// ratio >= 0.5, toolbox p99 < 10 ms.
func BenchmarkSlashCommand(b *testing.B) {
	e := newBotEnv(b)
	toolbox := httptest.NewServer(e.handler)
	defer toolbox.Close()
	fixed := []byte(`{"response_type":"ephemeral","text":"No apps yet. ` + "`/toolbox help`" + ` shows how to add one.\n\nNo job is running."}` + "\n")
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(fixed)
	}))
	defer bare.Close()

	conns := benchParallelism * runtime.GOMAXPROCS(0)
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 2 * conns, MaxIdleConnsPerHost: conns}}
	defer client.CloseIdleConnections()
	body := commandForm("ann", "status").Encode()

	b.SetParallelism(benchParallelism)
	// run sends b.N commands to url from the parallel goroutines and returns
	// the rate and the latencies, sorted.
	run := func(url string) (float64, []time.Duration) {
		var (
			mu       sync.Mutex
			all      = make([]time.Duration, 0, b.N)
			failures atomic.Int64
		)
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			lat := make([]time.Duration, 0, b.N/conns+1)
			for pb.Next() {
				t0 := time.Now()
				resp, err := client.Post(url+CommandPath, formType, strings.NewReader(body))
				if err != nil {
					failures.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failures.Add(1)
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		})
		elapsed := time.Since(start)
		if n := failures.Load(); n > 0 {
			b.Fatalf("%d of %d requests to %s failed", n, b.N, url)
		}
		slices.Sort(all)
		return float64(len(all)) / elapsed.Seconds(), all
	}

	b.ResetTimer()
	toolboxRate, toolboxLat := run(toolbox.URL)
	bareRate, bareLat := run(bare.URL)
	b.StopTimer()

	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(0, "ns/op") // both runs share b.N: the rates below say more
	b.ReportMetric(toolboxRate, "toolbox_cmds/s")
	b.ReportMetric(bareRate, "bare_cmds/s")
	b.ReportMetric(toolboxRate/bareRate, "toolbox/bare")
	b.ReportMetric(ms(percentile(toolboxLat, 50)), "toolbox_p50_ms")
	b.ReportMetric(ms(percentile(toolboxLat, 99)), "toolbox_p99_ms")
	b.ReportMetric(ms(percentile(bareLat, 50)), "bare_p50_ms")
	b.ReportMetric(ms(percentile(bareLat, 99)), "bare_p99_ms")
}

// percentile returns the p-th percentile of sorted latencies.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}
