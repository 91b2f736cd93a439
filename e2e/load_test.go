package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
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
	bot := bootstrapChat(t, mm, "TOOLBOX_MAX_JOBS="+strconv.Itoa(jobCap))
	env, botAddr, statePath := bot.env, bot.addr, bot.statePath
	admin := model.NewAPIv4Client(mm.URL)
	team, channel := loginToToolbox(t, admin, bot.password)

	clients := make([]*model.Client4, members)
	for i := range clients {
		_, clients[i] = addMember(t, admin, team, channel, fmt.Sprintf("member%02d", i))
	}

	// A member's mix: reads, a job (selftest), refusals (an admin verb,
	// unknown words, a malformed text) and an attempted mention.
	mix := []string{"help", "status", "jobs", "version", "catalog", "selftest", "audit 5",
		"help status", "nope", `"unterminated`, "admins list", "status @channel"}

	// The baseline: the same load on a slash command whose endpoint answers
	// at once, so that what Mattermost itself takes on these two cores is
	// measured in the same run as what the bot adds.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"response_type":"ephemeral","text":"ok"}`)
	}))
	defer echo.Close()
	if _, _, err := admin.CreateCommand(ctx, &model.Command{
		TeamId: team.Id, Trigger: "baseline", Method: model.CommandMethodPost, URL: echo.URL,
		DisplayName: "baseline", Description: "the load test's baseline",
	}); err != nil {
		t.Fatal(err)
	}
	base := driveLoad(ctx, clients, channel.Id, "/baseline", mix, perMember)
	if len(base.failures) > 0 {
		t.Fatalf("%d baseline commands got no answer, first: %s", len(base.failures), base.failures[0])
	}
	t.Logf("baseline, an endpoint that answers at once: %s", base)

	// The bot as it ships (no race detector, whose overhead would be measured instead).
	serve := startBinary(t, plainToolboxBinary(t), env, "serve")
	waitHTTP(t, "http://"+botAddr+"/healthz", 30*time.Second)
	rssBefore := residentKiB(t, serve.cmd.Process.Pid)

	res := driveLoad(ctx, clients, channel.Id, "/toolbox", mix, perMember)
	if len(res.failures) > 0 {
		t.Errorf("%d of %d commands got no answer, first: %s", len(res.failures), members*perMember, res.failures[0])
	}
	t.Logf("the bot: %s", res)
	t.Logf("bot/baseline: p50 %.2f, p99 %.2f", res.at(0.5).Seconds()/base.at(0.5).Seconds(), res.at(0.99).Seconds()/base.at(0.99).Seconds())

	// Let the self-tests end, then read the state the bot leaves.
	time.Sleep(2 * time.Second)
	rssAfter := residentKiB(t, serve.cmd.Process.Pid)
	t.Logf("bot resident memory (a plain build): %d KiB before the load, %d KiB after", rssBefore, rssAfter)
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

// load is what one run of driveLoad saw.
type load struct {
	latencies []time.Duration // sorted
	failures  []string
	elapsed   time.Duration
}

// driveLoad has every client type perMember commands of the mix, one after
// the other, all clients at once, through Mattermost's command endpoint.
func driveLoad(ctx context.Context, clients []*model.Client4, channelID, trigger string, mix []string, perMember int) load {
	var (
		mu sync.Mutex
		l  load
		wg sync.WaitGroup
	)
	start := time.Now()
	for i, c := range clients {
		wg.Go(func() {
			for k := range perMember {
				text := mix[(i+k)%len(mix)]
				began := time.Now()
				resp, _, err := c.ExecuteCommand(ctx, channelID, trigger+" "+text)
				took := time.Since(began)
				mu.Lock()
				l.latencies = append(l.latencies, took)
				if err != nil || resp == nil || resp.Text == "" {
					l.failures = append(l.failures, fmt.Sprintf("member%02d %s %s: %v", i, trigger, text, err))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	l.elapsed = time.Since(start)
	slices.Sort(l.latencies)
	return l
}

// at is the latency at quantile q.
func (l load) at(q float64) time.Duration {
	return l.latencies[int(q*float64(len(l.latencies)-1))].Round(time.Millisecond)
}

func (l load) String() string {
	return fmt.Sprintf("%d commands in %s: p50 %s, p99 %s, max %s", len(l.latencies),
		l.elapsed.Round(time.Millisecond), l.at(0.5), l.at(0.99), l.at(1))
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
