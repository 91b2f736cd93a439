package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/deploy/stack"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

// What a 2 GB VM (1 vCPU) gives, as the issue and the providers' consoles
// say: about 1.9 GiB of memory once the kernel has taken its share, and
// the 2 GiB swap file `up` makes on such a machine (host/swap.go).
const (
	twoGBMemory = 1945 << 20 // "1945m": 1.9 GiB in whole MiB
	twoGBSwap   = 2 << 30
)

// TestTwoGigabyteMachine is issue 9's 2 GB machine, simulated: every
// container of the toolbox (bot, guard, Caddy, Mattermost, WordPress,
// MediaWiki, their databases, the backups' restic) runs under one parent
// cgroup limited to what a 2 GB VM gives, with the swap `up` would make.
// `up` brings up Mattermost, WordPress and MediaWiki are added from the
// catalog (the locally built images, their real post-install steps), a small
// scripted load runs in all three while a backup of every app runs, and then
// no container was OOM-killed and every one is healthy. The guard refuses
// GitLab, saying what it needs and what would make room. The same load then
// runs with the limit lifted, for the page latencies side by side; memory
// figures (idle, loaded, during the backup; per container) are logged.
func TestTwoGigabyteMachine(t *testing.T) {
	e := dockertest.Engine(t)
	buildImages(t, e, "caddy", "mattermost", "postgres", "restic", "mariadb", "wordpress", "mediawiki")
	bin := staticToolbox(t)
	cg := newMemoryCgroup(t, dockertest.Unique(t, "toolbox-2g"))
	swap := int64(twoGBSwap)
	if err := swapOn(t, swap); err != nil {
		// Without swap the limit is memory alone, and the guard is told so.
		t.Logf("no swap for the simulation (%v): memory alone, and TOOLBOX_MACHINE_SWAP=0", err)
		swap = 0
	}
	cg.limit(t, twoGBMemory, swap)

	backups := dockertest.Unique(t, "tb-backups")
	env := append(os.Environ(),
		"TOOLBOX_BACKUP_VOLUME="+backups,
		"TOOLBOX_STATE="+filepath.Join(t.TempDir(), "toolbox.db"),
		"TOOLBOX_BASE_DOMAIN=localhost", "TOOLBOX_HTTP_PORT=0", "TOOLBOX_HTTPS_PORT=0",
		"TOOLBOX_CATALOG_DIR="+t.TempDir(),
		"TOOLBOX_CGROUP_PARENT="+cg.parent,
		"TOOLBOX_MACHINE_MEMORY="+strconv.Itoa(twoGBMemory>>20)+"m",
		"TOOLBOX_MACHINE_SWAP="+strconv.FormatInt(swap>>20, 10)+"m",
		noSwap, // the test made the swap `up` would make, and takes it away after
	)
	ctx := context.Background()
	apps := []string{"wordpress", "mediawiki"}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if t.Failed() {
			for _, c := range []string{"toolbox", "toolbox-guard", "toolbox-caddy", "tb-mattermost-mattermost", "tb-mattermost-db",
				stack.ContainerName("wordpress", "wordpress"), stack.ContainerName("mediawiki", "mediawiki")} {
				logs, _ := e.Logs(cctx, c, 30)
				t.Logf("--- %s:\n%s", c, logs)
			}
		}
		for _, app := range apps {
			if err := (&stack.Stack{Engine: e}).Remove(cctx, app, true); err != nil {
				t.Errorf("cleanup of %s: %v", app, err)
			}
		}
		cmd := exec.Command(bin, "down", "--yes", "--purge")
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("toolbox down: %v\n%s", err, out)
		}
		if err := e.RemoveVolume(cctx, backups); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})

	run := toolboxCommand(t, bin, &env)
	// bot runs a toolbox command in the bot's container, as an operator
	// would on the machine; its exit code is returned with what it printed.
	bot := func(args ...string) (string, int) {
		t.Helper()
		var out bytes.Buffer
		start := time.Now()
		code, err := e.Exec(ctx, "toolbox", append([]string{"/toolbox"}, args...), &out, &out)
		if err != nil {
			t.Fatalf("toolbox %s in the bot: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		t.Logf("toolbox %s took %s", strings.Join(args, " "), time.Since(start).Round(time.Second))
		return out.String(), code
	}
	mustBot := func(args ...string) string {
		t.Helper()
		out, code := bot(args...)
		if code != 0 {
			t.Fatalf("toolbox %s in the bot: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}

	out := run("up")
	password := regexp.MustCompile(`Password:\s+(\S+)`).FindStringSubmatch(out)
	chatURL := regexp.MustCompile(`Your chat: (https://chat\.localhost:\d+)`).FindStringSubmatch(out)
	if password == nil || chatURL == nil {
		t.Fatalf("up printed no password or chat URL:\n%s", out)
	}
	mustBot("do", "set wordpress ADMIN_EMAIL admin@example.org")
	for _, app := range apps {
		if out := mustBot("do", "--yes", "add "+app); !strings.Contains(out, "**"+app+"** is running") {
			t.Fatalf("add %s answered:\n%s", app, out)
		}
	}
	containers := cg.containers(t, e)
	if len(containers) < 9 {
		t.Fatalf("%d containers under %s, want the bot, the guard, Caddy and the three apps' six: %v", len(containers), cg.parent, containers)
	}

	// GitLab does not fit beside them: refused, with what it needs and what
	// would make room.
	refusal, _ := bot("do", "--yes", "add gitlab")
	for _, want := range []string{"gitlab needs", "free", "would make room"} {
		if !strings.Contains(refusal, want) {
			t.Errorf("add gitlab on the 2 GB machine answered without %q:\n%s", want, refusal)
		}
	}
	t.Logf("add gitlab: %s", strings.TrimSpace(refusal))

	hc := viaCaddy(t, e)
	admin := model.NewAPIv4Client(chatURL[1])
	admin.HTTPClient = hc
	_, channel := loginToToolbox(t, admin, password[1])
	load := newScriptedLoad(t, e, hc, admin, channel)

	idle := cg.snapshot(t, containers)
	cg.resetPeaks(t, containers)
	// The backup runs beside the load; bot may not stop the test from there.
	backupNow := func() {
		var out bytes.Buffer
		code, err := e.Exec(ctx, "toolbox", []string{"/toolbox", "do", "backup now"}, &out, &out)
		if err != nil || code != 0 || !strings.Contains(out.String(), "wordpress") || !strings.Contains(out.String(), "mediawiki") {
			t.Errorf("backup now during the load: exit %d, %v\n%s", code, err, out.String())
		}
	}
	sampled := cg.sample(e)
	limited := load.run(t, backupNow)
	working := sampled()
	loaded := cg.snapshot(t, containers)

	// Nothing was killed for memory, and everything is healthy.
	if n := cg.oomKills(t, ""); n > 0 {
		t.Errorf("%d OOM kills under the 2 GB limit (the parent cgroup's memory.oom_control)", n)
	}
	for name, id := range containers {
		if n := cg.oomKills(t, id); n > 0 {
			t.Errorf("%s: %d OOM kills (its own limit)", name, n)
		}
	}
	eventually(t, 2*time.Minute, "every container of the toolbox healthy after the load", func() bool {
		list, err := e.Containers(ctx, map[string]string{stack.LabelManaged: "1"})
		if err != nil {
			return false
		}
		for _, c := range list {
			if c.State != "running" || (c.Health != "" && c.Health != "healthy") {
				return false
			}
		}
		return true
	})

	// The same load without the limit, for the latencies side by side.
	cg.limit(t, -1, -1)
	unlimited := load.run(t, backupNow)

	t.Logf("memory of the whole toolbox under the 2 GB limit (%d MiB + %d MiB swap): working set idle %s, at most %s under the load and the backup; "+
		"usage with the page cache at most %s; swap used at most %s",
		twoGBMemory>>20, swap>>20, mib(idle.total), mib(working[""]), mib(loaded.peak), mib(loaded.swapPeak))
	for _, n := range slices.Sorted(maps.Keys(working)) {
		if n != "" {
			t.Logf("  %-32s working set idle %8s, at most %8s under the load (usage with cache at most %8s)", n, mib(idle.byContainer[n]), mib(working[n]), mib(loaded.peakBy[n]))
		}
	}
	for _, app := range load.apps() {
		t.Logf("page latency of %-10s under the limit p50 %s p95 %s; without it p50 %s p95 %s (ratio p50 %.2f, p95 %.2f)",
			app, limited[app].at(0.5), limited[app].at(0.95), unlimited[app].at(0.5), unlimited[app].at(0.95),
			ratio(limited[app].at(0.5), unlimited[app].at(0.5)), ratio(limited[app].at(0.95), unlimited[app].at(0.95)))
		if len(limited[app].failures) > 0 {
			t.Errorf("%s under the limit: %d failed requests, first: %s", app, len(limited[app].failures), limited[app].failures[0])
		}
	}
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return a.Seconds() / b.Seconds()
}

// memoryCgroup is a cgroup v1 memory controller folder the test made, under
// which the engine's cgroupfs driver puts the containers of a parent named
// after it (docker's --cgroup-parent).
type memoryCgroup struct {
	parent string // "/name", as TOOLBOX_CGROUP_PARENT
	dir    string // /sys/fs/cgroup/memory/name
}

const cgroupV1Memory = "/sys/fs/cgroup/memory"

func newMemoryCgroup(t *testing.T, name string) memoryCgroup {
	t.Helper()
	if _, err := os.Stat(filepath.Join(cgroupV1Memory, "memory.memsw.limit_in_bytes")); err != nil {
		msg := "this test needs cgroup v1's memory controller with swap accounting at " + cgroupV1Memory + " (the engine's cgroupfs driver)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	c := memoryCgroup{parent: "/" + name, dir: filepath.Join(cgroupV1Memory, name)}
	if err := os.Mkdir(c.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The engine made the same folder under every controller; they go
		// once the containers have (the cleanups run last first).
		roots, _ := filepath.Glob("/sys/fs/cgroup/*")
		for _, root := range roots {
			_ = os.Remove(filepath.Join(root, name))
		}
	})
	return c
}

// limit sets the memory limit and memory + swap (-1: none). cgroup v1
// wants memsw >= memory at every step, so the order depends on the way.
func (c memoryCgroup) limit(t *testing.T, memory, swap int64) {
	t.Helper()
	mem, memsw := "-1", "-1"
	if memory >= 0 {
		mem, memsw = strconv.FormatInt(memory, 10), strconv.FormatInt(memory+swap, 10)
	}
	files := []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes"}
	values := []string{mem, memsw}
	if memory < 0 {
		files, values = []string{files[1], files[0]}, []string{values[1], values[0]}
	}
	for i, f := range files {
		if err := os.WriteFile(filepath.Join(c.dir, f), []byte(values[i]), 0o644); err != nil {
			t.Fatalf("cgroup %s: %s=%s: %v", c.dir, f, values[i], err)
		}
	}
}

// containers are the containers under the parent, by name.
func (c memoryCgroup) containers(t *testing.T, e *docker.Engine) map[string]string {
	t.Helper()
	list, err := e.Containers(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, ct := range list {
		if _, err := os.Stat(filepath.Join(c.dir, ct.ID)); err == nil && ct.State == "running" {
			out[ct.Name] = ct.ID
		}
	}
	return out
}

// readInt reads a cgroup file holding one number.
func (c memoryCgroup) readInt(t *testing.T, id, file string) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, id, file))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return n
}

// stat reads one field of memory.stat.
func (c memoryCgroup) stat(t *testing.T, id, field string) int64 {
	t.Helper()
	f, err := os.Open(filepath.Join(c.dir, id, "memory.stat"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), " "); ok && k == field {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// workingSet is what docker stats shows: usage less the page cache the
// kernel can drop at once (total_inactive_file).
func (c memoryCgroup) workingSet(t *testing.T, id string) int64 {
	return max(c.readInt(t, id, "memory.usage_in_bytes")-c.stat(t, id, "total_inactive_file"), 0)
}

// oomKills is memory.oom_control's oom_kill count of the parent ("") or a
// container.
func (c memoryCgroup) oomKills(t *testing.T, id string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, id, "memory.oom_control"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "oom_kill "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	t.Fatalf("%s has no oom_kill line (kernel older than 4.13?):\n%s", filepath.Join(c.dir, id, "memory.oom_control"), b)
	return 0
}

func (c memoryCgroup) resetPeaks(t *testing.T, containers map[string]string) {
	t.Helper()
	for _, id := range append(slices.Collect(func(yield func(string) bool) {
		for _, id := range containers {
			if !yield(id) {
				return
			}
		}
	}), "") {
		for _, f := range []string{"memory.max_usage_in_bytes", "memory.memsw.max_usage_in_bytes"} {
			if err := os.WriteFile(filepath.Join(c.dir, id, f), []byte("0"), 0o644); err != nil {
				t.Fatalf("reset %s: %v", f, err)
			}
		}
	}
}

// memorySnapshot is the parent's and each container's memory at a moment,
// and the peaks since resetPeaks.
type memorySnapshot struct {
	total, peak, swapPeak int64
	byContainer, peakBy   map[string]int64
}

func (c memoryCgroup) snapshot(t *testing.T, containers map[string]string) memorySnapshot {
	t.Helper()
	s := memorySnapshot{
		total: c.workingSet(t, ""), peak: c.readInt(t, "", "memory.max_usage_in_bytes"),
		byContainer: map[string]int64{}, peakBy: map[string]int64{},
	}
	s.swapPeak = max(c.readInt(t, "", "memory.memsw.max_usage_in_bytes")-s.peak, 0)
	for name, id := range containers {
		s.byContainer[name] = c.workingSet(t, id)
		s.peakBy[name] = c.readInt(t, id, "memory.max_usage_in_bytes")
	}
	return s
}

// sample polls the working set of the parent ("") and of every container
// under it, by name, including those that come and go (a backup's restic),
// until the returned function is called; that returns the largest seen.
func (c memoryCgroup) sample(e *docker.Engine) func() map[string]int64 {
	ctx, cancel := context.WithCancel(context.Background())
	most := map[string]int64{}
	names := map[string]string{} // ID → name
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			most[""] = max(most[""], c.workingSetOf(""))
			entries, _ := os.ReadDir(c.dir)
			for _, en := range entries {
				if !en.IsDir() {
					continue
				}
				id := en.Name()
				if _, ok := names[id]; !ok {
					if list, err := e.Containers(ctx, nil); err == nil {
						for _, ct := range list {
							names[ct.ID] = ct.Name
						}
					}
				}
				if name, ok := names[id]; ok {
					if strings.HasPrefix(name, "tb-restic-") {
						name = "tb-restic-* (each backup run)"
					}
					most[name] = max(most[name], c.workingSetOf(id))
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return func() map[string]int64 {
		cancel()
		<-done
		return most
	}
}

// workingSetOf is workingSet for the sampler, which may not fail the test:
// a container gone meanwhile counts 0.
func (c memoryCgroup) workingSetOf(id string) int64 {
	b, err := os.ReadFile(filepath.Join(c.dir, id, "memory.usage_in_bytes"))
	if err != nil {
		return 0
	}
	usage, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	st, err := os.ReadFile(filepath.Join(c.dir, id, "memory.stat"))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(st)) {
		if v, ok := strings.CutPrefix(line, "total_inactive_file "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return max(usage-n, 0)
		}
	}
	return usage
}

// swapOn gives the machine a swap file of the size `up` would make, for the
// test's duration, unless it has swap already (then that is used). It is
// the test's, not up's: up would also write /etc/fstab.
func swapOn(t *testing.T, size int64) error {
	t.Helper()
	if b, err := os.ReadFile("/proc/swaps"); err == nil && strings.Count(string(b), "\n") > 1 {
		return nil
	}
	if os.Geteuid() != 0 {
		return errors.New("not root")
	}
	f, err := os.CreateTemp("/var/tmp", "toolbox-2g-swap-")
	if err != nil {
		return err
	}
	path := f.Name()
	f.Close()
	t.Cleanup(func() {
		if out, err := exec.Command("swapoff", path).CombinedOutput(); err != nil {
			t.Logf("swapoff %s: %v %s", path, err, out)
		}
		os.Remove(path)
	})
	for _, cmd := range [][]string{
		{"fallocate", "-l", strconv.FormatInt(size, 10), path},
		{"chmod", "600", path},
		{"mkswap", path},
		{"swapon", path},
	} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(cmd, " "), err, out)
		}
	}
	return nil
}

// scriptedLoad is the small load of issue 9: a few members reading and
// posting in Mattermost, and visitors reading WordPress's and MediaWiki's
// pages, some of them new, all through Caddy.
type scriptedLoad struct {
	hc      *http.Client
	admin   *model.Client4
	channel *model.Channel
	pages   map[string][]string // app → URLs read
}

func newScriptedLoad(t *testing.T, e *docker.Engine, hc *http.Client, admin *model.Client4, channel *model.Channel) *scriptedLoad {
	t.Helper()
	ctx := context.Background()
	l := &scriptedLoad{hc: hc, admin: admin, channel: channel, pages: map[string][]string{
		"wordpress": {"https://wordpress.localhost/", "https://wordpress.localhost/wp-login.php"},
		"mediawiki": {"https://mediawiki.localhost/index.php?title=Main_Page", "https://mediawiki.localhost/api.php?action=query&meta=siteinfo&format=json"},
	}}
	exec := func(container string, stdin string, cmd ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code, err := e.ExecInput(ctx, container, cmd, strings.NewReader(stdin), &stdout, &stderr)
		if err != nil || code != 0 {
			t.Fatalf("%q in %s: exit %d, %v\n%s", cmd, container, code, err, stderr.String())
		}
		return strings.TrimSpace(stdout.String())
	}
	// A few posts and wiki pages, which the load then reads.
	for i := range 5 {
		id := exec(stack.ContainerName("wordpress", "wordpress"), "", "php", "-r", fmt.Sprintf(`require '/var/www/html/wp-load.php';
$id = wp_insert_post(array('post_title' => 'Load post %d', 'post_content' => str_repeat('<p>Some words of a post.</p>', 40), 'post_status' => 'publish', 'post_author' => 1), true);
if (is_wp_error($id)) { fwrite(STDERR, $id->get_error_message()); exit(1); }
echo $id;`, i))
		l.pages["wordpress"] = append(l.pages["wordpress"], "https://wordpress.localhost/?p="+id)
		title := fmt.Sprintf("Load page %d", i)
		exec(stack.ContainerName("mediawiki", "mediawiki"), strings.Repeat("Some '''words''' of a [[Main Page|page]].\n", 40),
			"php", "maintenance/edit.php", "--user", "Admin", "--summary", "load", title)
		l.pages["mediawiki"] = append(l.pages["mediawiki"], "https://mediawiki.localhost/index.php?title="+strings.ReplaceAll(title, " ", "_"))
	}
	return l
}

func (l *scriptedLoad) apps() []string { return []string{"mattermost", "wordpress", "mediawiki"} }

// run drives the load (4 visitors per app, 25 requests each) while during
// runs, and returns each app's latencies.
func (l *scriptedLoad) run(t *testing.T, during func()) map[string]load {
	t.Helper()
	const visitors, requests = 4, 25
	ctx := context.Background()
	var mu sync.Mutex
	res := map[string]load{}
	record := func(app string, took time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		r := res[app]
		r.latencies = append(r.latencies, took)
		if err != nil {
			r.failures = append(r.failures, err.Error())
		}
		res[app] = r
	}
	get := func(url string) error {
		resp, err := l.hc.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode >= 400 {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
	var wg sync.WaitGroup
	start := time.Now()
	wg.Go(during)
	for v := range visitors {
		wg.Go(func() {
			for k := range requests {
				began := time.Now()
				var err error
				if k%3 == 0 {
					_, _, err = l.admin.CreatePost(ctx, &model.Post{ChannelId: l.channel.Id, Message: fmt.Sprintf("load %d.%d", v, k)})
				} else {
					_, _, err = l.admin.GetPostsForChannel(ctx, l.channel.Id, 0, 30, "", false, false)
				}
				record("mattermost", time.Since(began), err)
			}
		})
		for _, app := range []string{"wordpress", "mediawiki"} {
			wg.Go(func() {
				for k := range requests {
					url := l.pages[app][(v+k)%len(l.pages[app])]
					began := time.Now()
					err := get(url)
					record(app, time.Since(began), err)
				}
			})
		}
	}
	wg.Wait()
	for app, r := range res {
		slices.Sort(r.latencies)
		r.elapsed = time.Since(start)
		res[app] = r
	}
	return res
}
