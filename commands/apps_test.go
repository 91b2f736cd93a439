package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/state"
)

func appsEnv(t *testing.T, m *fakeEngine) (*env, *fakeProxy) {
	t.Helper()
	if m.deployed == nil {
		m.deployed = map[string]*types.Project{}
	}
	if m.calls == nil {
		m.calls = &callLog{}
	}
	p := &fakeProxy{routes: map[string]string{}, calls: m.calls}
	e := newEnv(t, envOptions{apps: func(st *state.Store) *AppDeps {
		return &AppDeps{Catalog: catalog.New(nil), Engine: m, Proxy: p, Store: st, BaseDomain: "example.org"}
	}})
	e.addAdmin(t, "ann")
	return e, p
}

func TestCapacityGuard(t *testing.T) {
	m := withFree(2<<30, 248<<20)
	e, _ := appsEnv(t, m)
	if err := e.store.PutApp(state.App{Name: "mattermost", Catalog: "mattermost", Status: statusRunning}); err != nil {
		t.Fatal(err)
	}
	m.running = map[string]int64{"mattermost": 240 << 20}
	m.reserved -= 240 << 20
	got := e.handle(caller("ann"), "add wordpress").Text
	if !contains(got, "wordpress needs 336 MiB of memory (what its services reserve), and only 248 MiB is free: ",
		"2.0 GiB of memory + 0 KiB of swap - 612 MiB margin - ", "mattermost 240 MiB",
		"Removing mattermost (240 MiB), or a machine with 3 GiB of memory would make room.") {
		t.Errorf("add that does not fit = %q", got)
	}
	if jobs, _ := e.store.RecentJobs(5); len(jobs) != 0 {
		t.Errorf("a refused add started a job: %+v", jobs)
	}
}

func TestSetAndAdd(t *testing.T) {
	m := &fakeEngine{total: 8 << 30, execErr: errors.New("php: boom")}
	e, p := appsEnv(t, m)
	ann := caller("ann")

	if got := e.handle(ann, "add wordpress").Text; !strings.Contains(got, "Started job") {
		t.Fatalf("add = %q", got)
	}
	e.chat.waitFor(t, "the failure", e.postWith("failed", "needs settings that are not given yet: `ADMIN_EMAIL`"))

	if got := e.handle(ann, "set wordpress NOPE x").Text; !strings.Contains(got, "wordpress has no such setting. Its settings: ADMIN_EMAIL") {
		t.Errorf("set of an unknown setting = %q", got)
	}
	if got := e.handle(ann, "set wordpress admin_email ann@example.org").Text; !strings.Contains(got, "ADMIN_EMAIL of wordpress is now `ann@example.org`") {
		t.Errorf("set = %q", got)
	}
	if rec := e.lastAudit(t); rec.Text != "set wordpress [redacted]" {
		t.Errorf("audit of set = %q, want the value redacted", rec.Text)
	}

	// The post-install step fails once: the job says how to retry, and the retry goes on.
	e.handle(ann, "add wordpress")
	e.chat.waitFor(t, "the post-install failure", e.postWith("post-install step", "failed. Run `/toolbox add wordpress` again"))
	e.handle(ann, "add wordpress blog.example.org")
	e.chat.waitFor(t, "the success", e.postWith("**wordpress** is running at https://blog.example.org"))
	if len(m.execs) != 2 {
		t.Errorf("post-install ran %d times, want 2 (a failure, then the retry)", len(m.execs))
	}
	if got := p.routes["wordpress"]; got != "blog.example.org -> tb-wordpress-wordpress:80" {
		t.Errorf("route = %q", got)
	}
	vars := m.deployed["wordpress"].Services["wordpress"].Environment
	if v := vars["WORDPRESS_DB_PASSWORD"]; v == nil || len(*v) < 16 || strings.Contains(strings.Join(postTexts(e), "\n"), *v) {
		t.Errorf("the database password was not generated, or reached the chat")
	}
	// A third add repairs and does not run the post-install step again.
	e.handle(ann, "add wordpress")
	e.chat.waitFor(t, "the third add", func() bool { return strings.Count(strings.Join(postTexts(e), "\n"), "is running at") >= 2 })
	if len(m.execs) != 2 {
		t.Errorf("post-install ran again on a repair: %d runs", len(m.execs))
	}
}

func postTexts(e *env) []string {
	var out []string
	for _, p := range e.chat.Shown() {
		out = append(out, p.Text)
	}
	return out
}

func TestStatusAndLogs(t *testing.T) {
	m := &fakeEngine{services: map[string][]Service{"wordpress": {
		{Name: "wordpress", State: "running", Health: "healthy"}, {Name: "db", State: "running", Health: "unhealthy"},
	}}}
	e, _ := appsEnv(t, m)
	if err := e.store.PutApp(state.App{Name: "wordpress", Catalog: "wordpress", Domain: "blog.example.org", Version: "7.1.2", Status: statusRunning}); err != nil {
		t.Fatal(err)
	}
	if got := e.handle(caller("ann"), "status").Text; !strings.Contains(got, "| wordpress | :warning: 1/2 healthy (db unhealthy) | https://blog.example.org | 7.1.2 |") {
		t.Errorf("status = %q", got)
	}
	secret, err := e.store.EnsureSecret(secretName("wordpress", "DB_PASSWORD"), func() (state.Secret, error) { return "s3cr3t-password", nil })
	if err != nil {
		t.Fatal(err)
	}
	m.logs = "connecting with s3cr3t-password\nready\n"
	got := e.handle(caller("ann"), "logs wordpress db 5").Text
	if strings.Contains(got, secret.Reveal()) || !strings.Contains(got, "connecting with [redacted]") {
		t.Errorf("logs = %q", got)
	}
	if got := e.handle(caller("ann"), "logs wordpress cache").Text; !strings.Contains(got, "has no service `cache`. Its services: wordpress, db") {
		t.Errorf("logs of an unknown service = %q", got)
	}
}

func TestNamesRefusedAtOnce(t *testing.T) {
	e, _ := appsEnv(t, &fakeEngine{total: 8 << 30})
	tests := []struct{ text, want string }{
		{"add Bad/Name", `"Bad/Name" is not an app name: use 1 to 31 lowercase letters, digits and dashes, starting with a letter, like wordpress or wiki-2.`},
		{"remove 'a); system(id); //'", `"a); system(id); //" is not an app name`},
		{"add wordpress not_a_domain", `"not_a_domain" is not a domain name`},
		{"add wordpress -rf.example.org", `"-rf.example.org" is not a domain name: a label starts or ends with a dash`},
		{"add wordpress 203.0.113.7", "it is an IP address; certificates need a name, such as wiki.203.0.113.7.sslip.io."},
		{"add wordpress example.123", "it ends in a number"},
		{"add wordpress 'blog.example.org; rm -rf /'", "is not a domain name"},
		{"add wordpress blog.example.org..", "remove the final dot"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			reply := e.handle(caller("ann"), tt.text)
			if !reply.Failed || !strings.Contains(reply.Text, tt.want) {
				t.Errorf("Handle(%q) = %+v, want a refusal saying %q", tt.text, reply, tt.want)
			}
		})
	}
	if jobs, _ := e.store.RecentJobs(10); len(jobs) != 0 {
		t.Errorf("refused names started jobs: %+v", jobs)
	}
	// The domain is taken as typed otherwise: case and one final dot do not matter.
	if reply := e.handle(caller("ann"), "add wordpress Blog.Example.org."); reply.Failed {
		t.Errorf("add with a capitalised domain and a final dot = %q", reply.Text)
	}
}

// dbPassword is the database secret of the installed wordpress of the tests.
const dbPassword = "s3cr3t-db-password-0123456789abc"

// installWordpress records wordpress as installed at version, running, with
// its route, its database secret, its admin email and its post-install done.
func installWordpress(t *testing.T, e *env, p *fakeProxy, version string) {
	t.Helper()
	app, err := catalog.Get("wordpress")
	if err != nil {
		t.Fatal(err)
	}
	rec := state.App{Name: "wordpress", Catalog: "wordpress", Domain: "blog.example.org", Version: version, Status: statusRunning, Settings: map[string]string{}}
	for i := range app.PostInstall {
		rec.Settings[fmt.Sprintf("%s %d", postInstallKey, i+1)] = "2026-02-01T12:00:00Z"
	}
	if err := e.store.PutApp(rec); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.EnsureSecret(secretName("wordpress", "DB_PASSWORD"), func() (state.Secret, error) { return dbPassword, nil }); err != nil {
		t.Fatal(err)
	}
	if err := e.store.SetSetting(settingName("wordpress", "ADMIN_EMAIL"), "ann@example.org"); err != nil {
		t.Fatal(err)
	}
	p.routes["wordpress"] = "blog.example.org -> tb-wordpress-wordpress:80"
}

// confirmAll runs text as c and confirms each prompt it posts, checking that
// nothing changes before the last confirmation; it returns how many
// confirmations were asked and waits for the job they start.
func confirmAll(t *testing.T, e *env, m *fakeEngine, c Caller, text string) int {
	t.Helper()
	promptsBefore, callsBefore := len(e.chat.Prompts()), len(m.calls.changes())
	if got := e.handle(c, text).Text; got != "This needs a confirmation: use the buttons on the message I just posted." {
		t.Fatalf("Handle(%q) = %q, want a confirmation", text, got)
	}
	for n := 1; ; n++ {
		if got := m.calls.changes()[callsBefore:]; len(got) != 0 {
			t.Fatalf("before confirmation %d of %q, the engine or proxy were asked %q", n, text, got)
		}
		prompts := e.chat.Prompts()[promptsBefore:]
		if len(prompts) != n {
			t.Fatalf("after %d confirmations, %d prompts", n-1, len(prompts))
		}
		last := prompts[n-1]
		res := e.router.HandleClick(context.Background(), Click{Caller: c, PostID: last.ID, Confirm: true, Token: last.Token})
		if strings.Contains(res.Update, "Started job") {
			e.router.Jobs().Wait()
			return n
		}
		if !strings.Contains(res.Ephemeral, "This needs a confirmation") {
			t.Fatalf("click %d on %q = %+v, want a job or another confirmation", n, text, res)
		}
	}
}

// lastPost is the text of the bot's newest post.
func lastPost(t *testing.T, e *env) string {
	t.Helper()
	posts := e.chat.Shown()
	if len(posts) == 0 {
		t.Fatal("no post")
	}
	return posts[len(posts)-1].Text
}

func TestRemove(t *testing.T) {
	tests := []struct {
		text          string
		confirmations int
		calls         []string
		reply         string
		secretKept    bool
	}{
		{
			text: "remove wordpress", confirmations: 1,
			calls:      []string{"remove-route wordpress", "remove wordpress purge=false"},
			reply:      "**wordpress** is removed. Its data is kept: `/toolbox add wordpress` brings it back.",
			secretKept: true,
		},
		{
			text: "remove wordpress --purge", confirmations: 2,
			calls: []string{"remove-route wordpress", "remove wordpress purge=true"},
			reply: "**wordpress** is removed and its data deleted.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			m := &fakeEngine{}
			e, p := appsEnv(t, m)
			installWordpress(t, e, p, "7.1.2")
			if n := confirmAll(t, e, m, caller("ann"), tt.text); n != tt.confirmations {
				t.Errorf("%q asked %d confirmations, want %d", tt.text, n, tt.confirmations)
			}
			if got := m.calls.changes(); !slices.Equal(got, tt.calls) {
				t.Errorf("calls = %q, want %q", got, tt.calls)
			}
			if got := lastPost(t, e); !contains(got, "succeeded", tt.reply) {
				t.Errorf("result = %q, want %q", got, tt.reply)
			}
			if r := p.route("wordpress"); r != "" {
				t.Errorf("route left: %q", r)
			}
			if _, err := e.store.App("wordpress"); !errors.Is(err, state.ErrNotFound) {
				t.Errorf("state record after remove: %v, want not found", err)
			}
			_, err := e.store.Secret(secretName("wordpress", "DB_PASSWORD"))
			if kept := err == nil; kept != tt.secretKept {
				t.Errorf("secret kept = %v (%v), want %v", kept, err, tt.secretKept)
			}
		})
	}
}

func TestRemoveWhenTheEngineFails(t *testing.T) {
	m := &fakeEngine{RemoveFn: func(app string, _ bool) error {
		return fmt.Errorf("docker: remove volume tb-%s_db: in use by a container started with %s\nmore of the engine's words", app, dbPassword)
	}}
	e, p := appsEnv(t, m)
	installWordpress(t, e, p, "7.1.2")
	confirmAll(t, e, m, caller("ann"), "remove wordpress")

	got := lastPost(t, e)
	want := "Removing the containers of wordpress failed: docker: remove volume tb-wordpress_db: in use by a container started with [redacted]. " +
		"Its route is already removed, but it is still recorded as installed: run `/toolbox remove wordpress` again to finish, or `/toolbox add wordpress` to bring it back."
	if !contains(got, "failed**", want) || strings.Contains(got, dbPassword) || strings.Contains(got, "more of the engine's words") {
		t.Errorf("failure post = %q, want %q, without the secret or the rest of the cause", got, want)
	}
	if log := e.log.String(); !contains(log, "level=WARN", "job failed", "more of the engine's words") {
		t.Errorf("log lacks the whole cause:\n%s", log)
	}
	if rec, err := e.store.App("wordpress"); err != nil || rec.Domain != "blog.example.org" {
		t.Errorf("state record after a failed remove = %+v, %v; want it kept", rec, err)
	}

	// Run again, it finishes.
	m.RemoveFn = nil
	confirmAll(t, e, m, caller("ann"), "remove wordpress")
	if got := lastPost(t, e); !strings.Contains(got, "**wordpress** is removed.") {
		t.Errorf("second remove = %q", got)
	}
	if _, err := e.store.App("wordpress"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("state record after the second remove: %v, want not found", err)
	}
}

func TestRemoveWhenTheRouteStays(t *testing.T) {
	m := &fakeEngine{}
	e, p := appsEnv(t, m)
	installWordpress(t, e, p, "7.1.2")
	p.RemoveRouteFn = func(string) error { return errors.New("proxy: caddy admin: 502 bad gateway") }
	confirmAll(t, e, m, caller("ann"), "remove wordpress --purge")

	want := "Removing the route of wordpress failed: proxy: caddy admin: 502 bad gateway. Nothing else was changed; run `/toolbox remove wordpress --purge` again to retry."
	if got := lastPost(t, e); !contains(got, "failed**", want) {
		t.Errorf("failure post = %q, want %q", got, want)
	}
	if got, want := m.calls.changes(), []string{"remove-route wordpress"}; !slices.Equal(got, want) {
		t.Errorf("calls = %q, want %q: nothing after the failed step", got, want)
	}
	if _, err := e.store.App("wordpress"); err != nil {
		t.Errorf("state record after a failed remove: %v, want it kept", err)
	}
	if _, err := e.store.Secret(secretName("wordpress", "DB_PASSWORD")); err != nil {
		t.Errorf("secret after a failed purge: %v, want it kept", err)
	}
}

func TestRestart(t *testing.T) {
	m := &fakeEngine{RestartFn: func(app string, progress func(string)) error {
		progress("db: started with " + dbPassword)
		return nil
	}}
	e, p := appsEnv(t, m)
	installWordpress(t, e, p, "7.1.2")

	if got := e.handle(caller("ann"), "restart wordpress").Text; !strings.Contains(got, "Started job #1") {
		t.Fatalf("restart = %q, want a job", got)
	}
	e.router.Jobs().Wait()
	if got, want := m.calls.changes(), []string{"restart wordpress"}; !slices.Equal(got, want) {
		t.Errorf("calls = %q, want %q", got, want)
	}
	if got := lastPost(t, e); !contains(got, "succeeded", "**wordpress** restarted and is healthy.") {
		t.Errorf("result = %q", got)
	}
	var progress []string
	for _, ed := range e.chat.Edits() {
		progress = append(progress, ed.Text)
	}
	if all := strings.Join(progress, "\n"); !strings.Contains(all, "db: started with [redacted]") || strings.Contains(all, dbPassword) {
		t.Errorf("progress = %q, want the engine's lines with the secrets hidden", all)
	}
}

func TestRestartFailures(t *testing.T) {
	m := &fakeEngine{RestartFn: func(string, func(string)) error {
		return errors.New("docker: tb-wordpress-db-1: unhealthy after 2m0s: mariadb-admin ping: no answer\ncontainer log follows")
	}}
	e, p := appsEnv(t, m)
	installWordpress(t, e, p, "7.1.2")

	e.handle(caller("ann"), "restart wordpress")
	e.router.Jobs().Wait()
	want := "Restarting wordpress failed: docker: tb-wordpress-db-1: unhealthy after 2m0s: mariadb-admin ping: no answer. " +
		"`/toolbox status` shows its containers and `/toolbox logs wordpress` what they say."
	if got := lastPost(t, e); !contains(got, "failed**", want) || strings.Contains(got, "container log follows") {
		t.Errorf("failure post = %q, want %q", got, want)
	}
	if log := e.log.String(); !contains(log, "level=WARN", "job failed", "container log follows") {
		t.Errorf("log lacks the whole cause:\n%s", log)
	}

	// An app that is not there is refused at once, without a job.
	if reply := e.handle(caller("ann"), "restart nope"); !reply.Failed || reply.Text != "`nope` is not installed. `/toolbox status` lists what is." {
		t.Errorf("restart nope = %+v", reply)
	}
	if got := m.calls.changes(); len(got) != 1 {
		t.Errorf("calls = %q, want only the first restart", got)
	}
}

func TestUpgrade(t *testing.T) {
	m := &fakeEngine{}
	e, p := appsEnv(t, m)
	installWordpress(t, e, p, "7.0.0")

	if n := confirmAll(t, e, m, caller("ann"), "upgrade wordpress"); n != 1 {
		t.Errorf("upgrade asked %d confirmations, want 1", n)
	}
	want := []string{"deploy wordpress", "set-route wordpress blog.example.org tb-wordpress-wordpress:80"}
	if got := m.calls.changes(); !slices.Equal(got, want) {
		t.Errorf("calls = %q, want %q (the post-install steps done are not run again)", got, want)
	}
	if got := lastPost(t, e); !contains(got, "succeeded", "**wordpress** runs version 7.1.2 (was 7.0.0) and is healthy.") {
		t.Errorf("result = %q", got)
	}
	if rec, err := e.store.App("wordpress"); err != nil || rec.Version != "7.1.2" || rec.Status != statusRunning {
		t.Errorf("record = %+v, %v; want 7.1.2, running", rec, err)
	}
	if v := m.deployed["wordpress"].Services["wordpress"].Environment["WORDPRESS_DB_PASSWORD"]; v == nil || *v != dbPassword {
		t.Errorf("the upgrade did not keep the database password")
	}
}

func TestUpgradeFails(t *testing.T) {
	m := &fakeEngine{DeployFn: func(string) error {
		return fmt.Errorf("docker: pull wordpress:7.1.2-php8.3-apache: manifest unknown\nwith %s", dbPassword)
	}}
	e, p := appsEnv(t, m)
	installWordpress(t, e, p, "7.0.0")
	confirmAll(t, e, m, caller("ann"), "upgrade wordpress")

	want := "Deploying wordpress failed: docker: pull wordpress:7.1.2-php8.3-apache: manifest unknown"
	if got := lastPost(t, e); !contains(got, "failed**", want) || strings.Contains(got, dbPassword) {
		t.Errorf("failure post = %q, want %q", got, want)
	}
	if got, want := m.calls.changes(), []string{"deploy wordpress"}; !slices.Equal(got, want) {
		t.Errorf("calls = %q, want %q", got, want)
	}
	if rec, err := e.store.App("wordpress"); err != nil || rec.Status != statusFailed || rec.Domain != "blog.example.org" {
		t.Errorf("record = %+v, %v; want it kept, failed", rec, err)
	}
	if r := p.route("wordpress"); r == "" {
		t.Errorf("the route was removed by a failed upgrade")
	}
}
