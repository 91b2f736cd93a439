package mmtest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
)

func TestStart(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	s := Start(t, Options{})
	ready := time.Since(begin)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	status, _, err := model.NewAPIv4Client(s.URL).GetPing(ctx)
	if err != nil {
		t.Fatalf("GetPing: %v", err)
	}
	if status != model.StatusOk {
		t.Errorf("GetPing = %q, want %q", status, model.StatusOk)
	}

	me, _, err := s.AdminClient(t).GetMe(ctx, "")
	if err != nil {
		t.Fatalf("GetMe: %v", err)
	}
	if !me.IsSystemAdmin() {
		t.Errorf("first user's roles = %q, want %s", me.Roles, model.SystemAdminRoleId)
	}
	// A second call logs in again instead of creating another user.
	if _, _, err := s.AdminClient(t).GetMe(ctx, ""); err != nil {
		t.Fatalf("GetMe with a second admin client: %v", err)
	}

	rss, err := rssKiB(s.PID())
	if err != nil {
		t.Fatalf("read RSS: %v", err)
	}
	t.Logf("ready in %s, RSS %d MiB", ready.Round(time.Millisecond), rss/1024)
}

func TestDataSource(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{
			in:   "postgres://toolbox:toolbox@127.0.0.1:5432/postgres?sslmode=disable",
			want: "postgres://toolbox:toolbox@127.0.0.1:5432/mm_x?connect_timeout=10&sslmode=disable",
		},
		{
			in:   "postgresql://u:p@db/postgres?connect_timeout=3",
			want: "postgresql://u:p@db/mm_x?connect_timeout=3",
		},
	}
	for _, tt := range tests {
		got, err := dataSource(tt.in, "mm_x")
		if err != nil {
			t.Fatalf("dataSource(%q): %v", tt.in, err)
		}
		if got != tt.want {
			t.Errorf("dataSource(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if _, err := dataSource("mysql://x/y", "mm_x"); err == nil {
		t.Errorf("dataSource(mysql://x/y) = nil error, want one")
	}
}

func TestTail(t *testing.T) {
	w := &tail{max: 8}
	fmt.Fprint(w, "0123")
	if got, want := w.String(), "0123"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	fmt.Fprint(w, "456789ab")
	if got, want := w.String(), "[…]456789ab"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestEnvironOverrides(t *testing.T) {
	t.Setenv("MM_SERVICESETTINGS_SITEURL", "http://leaked")
	s := &Server{URL: "http://127.0.0.1:1", Dir: "/d"}
	env := environ(s, "postgres://x/mm_x", 1, Options{
		AllowedUntrusted: "10.0.0.0/8",
		Env:              map[string]string{"MM_SERVICESETTINGS_ENABLECOMMANDS": "false"},
	})
	got := map[string][]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = append(got[k], v)
	}
	want := map[string]string{
		"MM_SERVICESETTINGS_SITEURL":                             "http://127.0.0.1:1",
		"MM_SERVICESETTINGS_LISTENADDRESS":                       "127.0.0.1:1",
		"MM_SERVICESETTINGS_ALLOWEDUNTRUSTEDINTERNALCONNECTIONS": "10.0.0.0/8",
		"MM_SERVICESETTINGS_ENABLECOMMANDS":                      "false",
		"MM_SQLSETTINGS_DATASOURCE":                              "postgres://x/mm_x",
	}
	for k, v := range want {
		if len(got[k]) != 1 || got[k][0] != v {
			t.Errorf("environ: %s = %q, want [%q]", k, got[k], v)
		}
	}
}

// rssKiB reads the resident set size of a process from /proc.
func rssKiB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			var kib int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kib); err != nil {
				return 0, fmt.Errorf("parse %q: %w", v, err)
			}
			return kib, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
