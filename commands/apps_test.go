package commands

import (
	"errors"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/state"
)

func appsEnv(t *testing.T, m *fakeMachine) (*env, *fakeProxy) {
	t.Helper()
	if m.deployed == nil {
		m.deployed = map[string]*types.Project{}
	}
	if m.calls == nil {
		m.calls = &callLog{}
	}
	p := &fakeProxy{routes: map[string]string{}, calls: m.calls}
	e := newEnv(t, envOptions{apps: func(st *state.Store) *AppDeps {
		return &AppDeps{Catalog: catalog.New(nil), Machine: m, Proxy: p, Store: st, BaseDomain: "example.org"}
	}})
	e.addAdmin(t, "ann")
	return e, p
}

func TestCapacityGuard(t *testing.T) {
	m := &fakeMachine{total: 2 << 30, reserved: 1800 << 20}
	e, _ := appsEnv(t, m)
	if err := e.store.PutApp(state.App{Name: "mattermost", Catalog: "mattermost", Status: statusRunning}); err != nil {
		t.Fatal(err)
	}
	got := e.handle(caller("ann"), "add wordpress").Text
	if !contains(got, "wordpress needs at least 512 MiB of memory (1.0 GiB recommended), and only 248 MiB of 2.0 GiB is free.",
		"To free 264 MiB, remove an app you can do without (mattermost needs 1.0 GiB)") {
		t.Errorf("add that does not fit = %q", got)
	}
	if jobs, _ := e.store.RecentJobs(5); len(jobs) != 0 {
		t.Errorf("a refused add started a job: %+v", jobs)
	}
}

func TestSetAndAdd(t *testing.T) {
	m := &fakeMachine{total: 8 << 30, execErr: errors.New("php: boom")}
	e, p := appsEnv(t, m)
	ann := caller("ann")

	if got := e.handle(ann, "add wordpress").Text; !strings.Contains(got, "Started job") {
		t.Fatalf("add = %q", got)
	}
	e.chat.waitFor(t, "the failure", e.postWith("failed", "needs settings that are not given yet: `ADMIN_EMAIL`"))

	if got := e.handle(ann, "set wordpress NOPE x").Text; !strings.Contains(got, "has no setting `NOPE`. Its settings: ADMIN_EMAIL") {
		t.Errorf("set of an unknown setting = %q", got)
	}
	if got := e.handle(ann, "set wordpress admin_email ann@example.org").Text; !strings.Contains(got, "ADMIN_EMAIL of wordpress is now `ann@example.org`") {
		t.Errorf("set = %q", got)
	}
	if rec := e.lastAudit(t); rec.Text != "set wordpress admin_email [redacted]" {
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
	for _, p := range e.chat.Posts() {
		out = append(out, p.Text)
	}
	return out
}

func TestStatusAndLogs(t *testing.T) {
	m := &fakeMachine{services: map[string][]Service{"wordpress": {
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
	e, _ := appsEnv(t, &fakeMachine{total: 8 << 30})
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
