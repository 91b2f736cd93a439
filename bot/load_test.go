package bot

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/state"
)

// TestLoadFromMembers is issue 8's crowd, bounded: 50 members send 20
// commands each, all at once, mixed (reads, a quick verb that changes state,
// jobs, self-tests), over HTTP to the real handler, router and store. It
// checks that every command has its audit line (each state-changing one
// durably, before it acted), that no more jobs ran at once than the cap,
// and that each member got only as many jobs as the rate allows. It logs
// the command path's latencies and the heap before and after; it asserts no
// time.
func TestLoadFromMembers(t *testing.T) {
	if testing.Short() {
		t.Skip("a load test: 1,000 commands")
	}
	const members, perMember = 50, 20
	st, err := state.Open(filepath.Join(t.TempDir(), "toolbox.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var running, most atomic.Int64
	// busy is a job's work: it counts what runs at once.
	busy := func(ctx context.Context) error {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		select {
		case <-time.After(20 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var notes atomic.Int64
	extra := []*commands.Verb{
		{Name: "work", Args: "[n]", MaxArgs: 1, Job: true, Summary: "a job of the load test",
			Run: func(ctx context.Context, _ commands.Invocation) (string, error) { return "worked", busy(ctx) }},
		{Name: "note", Args: "<text>", MinArgs: 1, MaxArgs: -1, Summary: "a quick verb of the load test that changes state",
			Changes: func([]string) bool { return true },
			Run: func(context.Context, commands.Invocation) (string, error) {
				notes.Add(1)
				return "noted", nil
			}},
	}
	root, cancel := context.WithCancel(context.Background())
	router, err := commands.NewRouter(root, commands.Deps{
		Store: st, Chat: &fakeChat{}, Directory: &fakeDirectory{users: map[string]string{}},
		Checks:  []commands.Check{{Name: "work", Run: func(ctx context.Context) (string, error) { return "ok", busy(ctx) }}},
		Version: "test", ConfirmKey: testConfirmKey,
	}, extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
		defer stop()
		if err := router.Jobs().Shutdown(ctx); err != nil {
			t.Errorf("Jobs.Shutdown: %v", err)
		}
		cancel()
		if err := st.Close(); err != nil {
			t.Errorf("state close: %v", err)
		}
	})
	srv := httptest.NewServer(&Handler{Router: router, CommandToken: state.Secret(testCommandToken), TeamID: testTeamID})
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: members}}
	defer client.CloseIdleConnections()

	mix := []string{"status", "help", "jobs", "version", "admins list", "note a b", "work", "selftest", "status", "note c", "work 2", "help status", "audit"}
	heapBefore := heapInUse()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		failures  []string
		starts    = map[string]int{} // member → jobs started
		byVerb    = map[string][]time.Duration{}
	)
	var wg sync.WaitGroup
	begin := time.Now()
	for m := range members {
		wg.Go(func() {
			user := fmt.Sprintf("member%02d", m)
			for i := range perMember {
				text := mix[(m+i)%len(mix)]
				t0 := time.Now()
				resp, err := client.Post(srv.URL+CommandPath, formType, strings.NewReader(commandForm(user, text).Encode()))
				took := time.Since(t0)
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				mu.Lock()
				latencies = append(latencies, took)
				byVerb[text] = append(byVerb[text], took)
				switch {
				case err != nil:
					failures = append(failures, fmt.Sprintf("%s %q: %v", user, text, err))
				case resp.StatusCode != http.StatusOK:
					failures = append(failures, fmt.Sprintf("%s %q: status %d", user, text, resp.StatusCode))
				case strings.Contains(string(body), "Started job #"):
					starts[user]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(begin)
	router.Jobs().Wait()
	for _, f := range failures {
		t.Error(f)
	}

	// Every command has its line; the state-changing ones all reached the log.
	recs, err := st.RecentAudit(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != members*perMember {
		t.Errorf("%d audit records for %d commands", len(recs), members*perMember)
	}
	var noteLines, jobLines int
	for _, r := range recs {
		if strings.HasPrefix(r.Text, "note ") && r.Outcome == "ok" {
			noteLines++
		}
		if strings.HasPrefix(r.Outcome, "started job #") {
			jobLines++
		}
	}
	totalStarts := 0
	for user, n := range starts {
		totalStarts += n
		if n > commands.DefaultJobStartsPerMinute {
			t.Errorf("%s started %d jobs, more than the rate of %d a minute", user, n, commands.DefaultJobStartsPerMinute)
		}
	}
	if noteLines != int(notes.Load()) {
		t.Errorf("%d notes ran, %d audited as done", notes.Load(), noteLines)
	}
	jobs, err := st.RecentJobs(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if jobLines != totalStarts || len(jobs) != totalStarts {
		t.Errorf("%d jobs started, %d recorded, %d audited as started", totalStarts, len(jobs), jobLines)
	}
	if most.Load() > commands.DefaultMaxRunningJobs {
		t.Errorf("%d jobs ran at once, more than the cap of %d", most.Load(), commands.DefaultMaxRunningJobs)
	}
	for verb, l := range byVerb {
		slices.Sort(l)
		t.Logf("%-12s n=%d p50 %s p99 %s", verb, len(l), l[len(l)/2], l[len(l)*99/100])
	}
	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		return latencies[int(p*float64(len(latencies)-1))].Round(10 * time.Microsecond)
	}
	t.Logf("%d commands from %d members in %s: p50 %s, p99 %s, max %s; %d jobs started (%d notes), at most %d at once; heap in use %s before, %s after",
		len(latencies), members, elapsed.Round(time.Millisecond), pct(0.50), pct(0.99), latencies[len(latencies)-1].Round(10*time.Microsecond),
		totalStarts, notes.Load(), most.Load(), mib(heapBefore), mib(heapInUse()))
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
