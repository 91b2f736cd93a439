package e2e

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/toolbox-collective/toolbox/internal/mmtest"
	"github.com/toolbox-collective/toolbox/state"
)

// TestChatLoad is issue 8's bounded load test: 50 members type 20 mixed
// commands each, all at once, through a real Mattermost to the bot. Every
// command is answered and audited exactly once, no more jobs run at once than
// the cap, and at most one self-test. The latencies and the bot's memory are
// logged (figures, not assertions).
func TestChatLoad(t *testing.T) {
	const members, perMember, jobCap = 50, 20, 4
	// A team holds 50 people by default: the members, the admin and the bot are more.
	mm := mmtest.Start(t, mmtest.Options{Env: map[string]string{"MM_TEAMSETTINGS_MAXUSERSPERTEAM": "100"}})
	ctx := context.Background()
	botAddr := freeAddr(t)
	statePath := t.TempDir() + "/toolbox.db"
	env := []string{
		"TOOLBOX_STATE=" + statePath,
		"TOOLBOX_LISTEN=" + botAddr,
		"TOOLBOX_MATTERMOST_URL=" + mm.URL,
		"TOOLBOX_BOT_URL=http://" + botAddr,
		"TOOLBOX_MAX_JOBS=" + strconv.Itoa(jobCap),
	}
	out := toolboxRun(t, env, "mattermost", "bootstrap")
	password := regexp.MustCompile(`Password:\s+(\S+)`).FindStringSubmatch(out)
	if password == nil {
		t.Fatalf("bootstrap printed no password:\n%s", out)
	}
	admin := model.NewAPIv4Client(mm.URL)
	team, channel := loginToToolbox(t, admin, password[1])

	clients := make([]*model.Client4, members)
	for i := range clients {
		name := fmt.Sprintf("member%02d", i)
		u, _, err := admin.CreateUser(ctx, &model.User{Username: name, Email: name + "@example.invalid", Password: "Member-password-1"})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := admin.AddTeamMember(ctx, team.Id, u.Id); err != nil {
			t.Fatal(err)
		}
		if _, _, err := admin.AddChannelMember(ctx, channel.Id, u.Id); err != nil {
			t.Fatal(err)
		}
		clients[i] = model.NewAPIv4Client(mm.URL)
		if _, _, err := clients[i].Login(ctx, name, "Member-password-1"); err != nil {
			t.Fatal(err)
		}
	}

	serve := startToolbox(t, env, "serve")
	waitHTTP(t, "http://"+botAddr+"/healthz", 30*time.Second)
	rssBefore := residentKiB(t, serve.cmd.Process.Pid)

	// A member's mix: reads, a job (selftest), refusals (an admin verb,
	// unknown words, a malformed text) and an attempted mention.
	mix := []string{"help", "status", "jobs", "version", "catalog", "selftest", "audit 5",
		"help status", "nope", `"unterminated`, "admins list", "status @channel"}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		failures  []string
	)
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range clients {
		wg.Go(func() {
			for k := range perMember {
				text := mix[(i+k)%len(mix)]
				began := time.Now()
				resp, _, err := c.ExecuteCommand(ctx, channel.Id, "/toolbox "+text)
				took := time.Since(began)
				mu.Lock()
				latencies = append(latencies, took)
				if err != nil || resp == nil || resp.Text == "" {
					failures = append(failures, fmt.Sprintf("member%02d /toolbox %s: %v", i, text, err))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(failures) > 0 {
		t.Errorf("%d of %d commands got no answer, first: %s", len(failures), members*perMember, failures[0])
	}
	slices.Sort(latencies)
	at := func(q float64) time.Duration {
		return latencies[int(q*float64(len(latencies)-1))].Round(time.Millisecond)
	}
	t.Logf("%d commands from %d members through Mattermost in %s: p50 %s, p99 %s, max %s",
		len(latencies), members, elapsed.Round(time.Millisecond), at(0.5), at(0.99), latencies[len(latencies)-1].Round(time.Millisecond))

	// Let the self-tests end, then read the state the bot leaves.
	time.Sleep(2 * time.Second)
	rssAfter := residentKiB(t, serve.cmd.Process.Pid)
	t.Logf("bot resident memory (a -race build: several times a plain one): %d KiB before the load, %d KiB after", rssBefore, rssAfter)
	serve.stop(t, 30*time.Second)

	st, err := state.Open(statePath, state.Options{WithoutKey: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.RecentAudit(10 * members * perMember)
	if err != nil {
		t.Fatal(err)
	}
	perUser := map[string]int{}
	for _, r := range recs {
		if strings.HasPrefix(r.UserName, "member") && r.Kind == state.AuditCommand {
			perUser[r.UserName]++
		}
	}
	for i := range members {
		name := fmt.Sprintf("member%02d", i)
		if perUser[name] != perMember {
			t.Errorf("%s: %d audit records, want %d (one per command)", name, perUser[name], perMember)
		}
	}
	jobs, err := st.RecentJobs(10 * members * perMember)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) == 0 {
		t.Fatal("no job started under load: the mix should start self-tests")
	}
	if most, selftests := mostAtOnce(jobs, ""), mostAtOnce(jobs, "selftest"); most > jobCap || selftests > 1 {
		t.Errorf("at most %d jobs ran at once (%d self-tests), want at most %d and 1", most, selftests, jobCap)
	}
	t.Logf("%d jobs started under load, none beyond the cap", len(jobs))
}

// mostAtOnce is the largest number of jobs (of verb, or all when "") whose
// runs overlapped.
func mostAtOnce(jobs []state.Job, verb string) int {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, j := range jobs {
		if (verb == "" || j.Verb == verb) && !j.Started.IsZero() && !j.Finished.IsZero() {
			edges = append(edges, edge{j.Started, 1}, edge{j.Finished, -1})
		}
	}
	// An end before a start at the same instant: touching runs do not overlap.
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.delta - b.delta
	})
	most, now := 0, 0
	for _, e := range edges {
		now += e.delta
		most = max(most, now)
	}
	return most
}

// residentKiB is a process's resident memory (VmRSS), in KiB.
func residentKiB(t *testing.T, pid int) int {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(status)
	if m == nil {
		t.Fatalf("no VmRSS in /proc/%d/status", pid)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}
