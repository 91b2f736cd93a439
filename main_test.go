package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/bot"
	"github.com/toolbox-collective/toolbox/state"
)

// TestProgram runs the whole program in this process: serve on 127.0.0.1:0
// with a temporary state that a bootstrap left, a slash command through the
// HTTP endpoint as Mattermost sends it, `toolbox do` through the control
// socket, then SIGTERM, which drains and stops it.
func TestProgram(t *testing.T) {
	statePath := filepath.Join(t.TempDir(), "toolbox.db")
	st, err := state.Open(statePath, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const commandToken, teamID = "command-token-of-the-test", "team1"
	for k, v := range map[string]string{
		bot.SettingSiteURL: "http://127.0.0.1:1", bot.SettingBotURL: "http://127.0.0.1:1",
		bot.SettingTeamID: teamID, bot.SettingChannelID: "channel1",
	} {
		if err := st.SetSetting(k, v); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range map[string]string{bot.SecretBotToken: "bot-token", bot.SecretCommandToken: commandToken} {
		if err := st.SetSecret(k, state.Secret(v)); err != nil {
			t.Fatal(err)
		}
	}
	// A restore that was stopped in its swap: serve finishes it as a job.
	if err := st.PutApp(state.App{Name: "wiki", Catalog: "mediawiki", Generation: "", Pending: &state.PreviousData{Generation: "1"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"TOOLBOX_STATE": statePath, "TOOLBOX_LISTEN": "127.0.0.1:0", "TOOLBOX_SHUTDOWN_GRACE": "5s",
		"DOCKER_HOST":             "unix:///nonexistent/docker.sock", // no app verb reaches the engine here
		"TOOLBOX_BACKUP_SCHEDULE": "daily 04:30", "TOOLBOX_TIME_ZONE": "Europe/Paris",
	}
	getenv := func(k string) string { return env[k] }

	// As main does: the root context ends on SIGTERM.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	logR, logW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve"}, getenv, strings.NewReader(""), io.Discard, logW)
		logW.Close()
	}()
	addr, scheduled, finishing := make(chan string, 1), make(chan string, 1), make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(logR)
		re := regexp.MustCompile(`msg="toolbox serving" addr=(\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
			if strings.Contains(sc.Text(), `msg="backups scheduled"`) {
				scheduled <- sc.Text()
			}
			if strings.Contains(sc.Text(), `msg="finishing a restore interrupted in its swap" app=wiki`) {
				finishing <- sc.Text()
			}
		}
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-done:
		t.Fatalf("serve stopped at once: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start within 30 s")
	}

	select {
	case line := <-scheduled:
		if !strings.Contains(line, `schedule="daily 04:30"`) {
			t.Errorf("the scheduled backups: %s; want daily 04:30", line)
		}
	default:
		t.Error("serve did not schedule the backups")
	}
	select {
	case <-finishing:
	default:
		t.Error("serve did not finish the restore interrupted in its swap")
	}

	form := url.Values{"token": {commandToken}, "team_id": {teamID}, "user_id": {"u1"}, "user_name": {"ana"}, "channel_id": {"channel1"}, "text": {"version"}}
	resp, err := http.Post(base+"/mm/command", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	var reply struct{ Text string }
	err = json.NewDecoder(resp.Body).Decode(&reply)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(reply.Text, version) {
		t.Errorf("/toolbox version through HTTP: %s %+v %v; want the version", resp.Status, reply, err)
	}
	form.Set("token", "forged")
	if resp, err := http.Post(base+"/mm/command", "application/x-www-form-urlencoded", strings.NewReader(form.Encode())); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a forged token got %s, want 401", resp.Status)
	}

	var out bytes.Buffer
	if err := run(context.Background(), []string{"do", "jobs"}, getenv, strings.NewReader(""), &out, io.Discard); err != nil {
		t.Errorf("toolbox do jobs while serving: %v\n%s", err, out.String())
	}
	if err := run(context.Background(), []string{"state", "backup", filepath.Join(t.TempDir(), "copy.db")}, getenv, nil, &out, io.Discard); err != nil {
		t.Errorf("toolbox state backup while serving: %v", err)
	}
	keyBefore, _ := os.ReadFile(state.KeyPath(statePath))
	out.Reset()
	if err := run(context.Background(), []string{"state", "rotate-key"}, getenv, nil, &out, io.Discard); err != nil || !strings.Contains(out.String(), "new key") {
		t.Errorf("toolbox state rotate-key while serving: %v\n%s", err, out.String())
	}
	if keyAfter, _ := os.ReadFile(state.KeyPath(statePath)); len(keyAfter) == 0 || bytes.Equal(keyAfter, keyBefore) {
		t.Errorf("after rotate-key the key file holds %q, was %q: want a new key", keyAfter, keyBefore)
	}
	out.Reset()
	if err := run(context.Background(), []string{"mattermost", "forget-admin-password"}, getenv, nil, &out, io.Discard); err != nil {
		t.Errorf("toolbox mattermost forget-admin-password while serving: %v\n%s", err, out.String())
	}

	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after SIGTERM = %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30 s of SIGTERM")
	}
	// Stopped: the state is free again, and the socket is gone.
	st, err = state.Open(statePath, state.Options{})
	if err != nil {
		t.Fatalf("the state after the stop: %v", err)
	}
	if tok, err := st.Secret(bot.SecretCommandToken); err != nil || tok.Reveal() != commandToken {
		t.Errorf("the command token after the key rotation: %v", err)
	}
	st.Close()
	if _, err := os.Stat(controlSocket(config{StatePath: statePath})); !os.IsNotExist(err) {
		t.Errorf("the control socket after the stop: %v, want it removed", err)
	}
}
