package e2e

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/toolbox-collective/toolbox/internal/mmtest"
)

// TestChatFoundation drives the toolbox through a real Mattermost server:
// bootstrap, slash commands as an admin and as a member, a job, a refusal,
// confirmations, and forged requests.
func TestChatFoundation(t *testing.T) {
	mm := mmtest.Start(t, mmtest.Options{})
	ctx := context.Background()
	bot := bootstrapChat(t, mm, "TOOLBOX_CONFIRM_TTL=6s")
	env, botAddr, statePath, out := bot.env, bot.addr, bot.statePath, bot.bootstrap
	for _, want := range []string{"created the first admin @admin", "created the team", "created the bot @toolbox", "registered /toolbox"} {
		if !strings.Contains(out, want) {
			t.Errorf("bootstrap output lacks %q:\n%s", want, out)
		}
	}
	if again := toolboxRun(t, env, "mattermost", "bootstrap"); !strings.Contains(again, "nothing changed") || strings.Contains(again, "Password") {
		t.Errorf("second bootstrap changed something:\n%s", again)
	}

	admin := model.NewAPIv4Client(mm.URL)
	team, channel := loginToToolbox(t, admin, bot.password)
	cmds, _, err := admin.ListCommands(ctx, team.Id, true)
	if err != nil || len(cmds) != 1 || !cmds[0].AutoComplete || cmds[0].AutoCompleteHint == "" {
		t.Fatalf("after two bootstraps, commands = %+v (err %v), want one /toolbox with autocomplete", cmds, err)
	}
	botUser, _, err := admin.GetUserByUsername(ctx, "toolbox", "")
	if err != nil || !botUser.IsBot {
		t.Fatalf("bot user: %+v, %v", botUser, err)
	}

	// A plain member of the team and channel.
	member, memberClient := addMember(t, admin, team, channel, "member")

	serve := startToolbox(t, env, "serve")
	waitHTTP(t, "http://"+botAddr+"/healthz", 30*time.Second)

	run := func(c *model.Client4, text string) string {
		t.Helper()
		start := time.Now()
		resp, _, err := c.ExecuteCommand(ctx, channel.Id, "/toolbox "+text)
		if err != nil {
			t.Fatalf("/toolbox %s: %v", text, err)
		}
		t.Logf("/toolbox %s answered in %s", text, time.Since(start).Round(time.Millisecond))
		return resp.Text
	}
	posts := func() []*model.Post {
		t.Helper()
		list, _, err := admin.GetPostsForChannel(ctx, channel.Id, 0, 100, "", false, false)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]*model.Post, 0, len(list.Order))
		for _, id := range list.Order {
			out = append(out, list.Posts[id])
		}
		return out
	}
	findPost := func(substr string) *model.Post {
		for _, p := range posts() {
			if strings.Contains(p.Message, substr) {
				return p
			}
		}
		return nil
	}

	// confirmed runs text as the admin (a system admin) and confirms its prompt.
	confirmed := func(text string) {
		t.Helper()
		if got := run(admin, text); !strings.Contains(got, "needs a confirmation") {
			t.Fatalf("%s = %q, want a confirmation", text, got)
		}
		var prompt *model.Post
		eventually(t, 10*time.Second, "the prompt of "+text, func() bool {
			prompt = findPost("asked for `/toolbox " + text + "`")
			return prompt != nil
		})
		if _, err := admin.DoPostAction(ctx, prompt.Id, "confirm"); err != nil {
			t.Fatalf("confirm %s: %v", text, err)
		}
	}

	t.Run("help", func(t *testing.T) {
		got := run(admin, "help")
		for _, want := range []string{"/toolbox status", "/toolbox selftest", "/toolbox admins remove"} {
			if !strings.Contains(got, want) {
				t.Errorf("help lacks %q:\n%s", want, got)
			}
		}
		if got := run(memberClient, "hlep"); !strings.Contains(got, "Did you mean `help`?") {
			t.Errorf("typo answer = %q", got)
		}
	})

	t.Run("status", func(t *testing.T) {
		if got := run(memberClient, "status"); !strings.Contains(got, "No apps yet") {
			t.Errorf("status = %q", got)
		}
	})

	t.Run("selftest job", func(t *testing.T) {
		got := run(admin, "selftest")
		m := regexp.MustCompile(`Started job #(\d+)`).FindStringSubmatch(got)
		if m == nil {
			t.Fatalf("selftest answer = %q", got)
		}
		title := "job #" + m[1] + " `selftest`"
		var result *model.Post
		eventually(t, 60*time.Second, "the selftest result post", func() bool {
			result = findPost("**" + title + " succeeded**")
			return result != nil
		})
		for _, want := range []string{"state", "mattermost", "docker"} {
			if !strings.Contains(result.Message, "**"+want+"**") {
				t.Errorf("selftest result lacks the %s check:\n%s", want, result.Message)
			}
		}
		// One post per job: the progress post, edited into the result.
		if result.EditAt == 0 || result.UserId != botUser.Id {
			t.Errorf("result post %q: edited at %d, by %s; want the bot's progress post, edited", result.Message, result.EditAt, result.UserId)
		}
		n := 0
		for _, p := range posts() {
			if strings.Contains(p.Message, title) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d posts about %s, want 1", n, title)
		}
		if got := run(admin, "jobs"); !strings.Contains(got, "| #"+m[1]+" | `selftest` | @admin |") || !strings.Contains(got, "succeeded") {
			t.Errorf("jobs = %q", got)
		}
	})

	t.Run("permission refused", func(t *testing.T) {
		got := run(memberClient, "audit")
		if !strings.Contains(got, "Only toolbox admins may run `audit`") {
			t.Errorf("member audit = %q", got)
		}
		if got := run(admin, "audit 50"); !strings.Contains(got, "@member") || !strings.Contains(got, "refused") {
			t.Errorf("the refusal is not in the audit log:\n%s", got)
		}
	})

	t.Run("confirmation", func(t *testing.T) {
		// admins add asks a system admin's confirmation, and the user is
		// looked up first: no prompt for someone who does not exist, nor
		// for @channel, which the bot must never post as a mention.
		for _, text := range []string{"admins add @nobody", "admins remove @channel"} {
			if got := run(admin, text); !strings.Contains(got, "There is no user `@") {
				t.Errorf("%s = %q, want no such user", text, got)
			}
		}
		if p := findPost("@channel"); p != nil && !strings.Contains(p.Message, "`@channel`") {
			t.Errorf("the bot posted a mention of @channel: %q", p.Message)
		}
		confirmed("admins add @member")
		if got := run(admin, "admins list"); !strings.Contains(got, "`@member`") {
			t.Fatalf("admins list after the add = %q", got)
		}
		if got := run(admin, "admins remove @member"); !strings.Contains(got, "needs a confirmation") {
			t.Fatalf("admins remove = %q", got)
		}
		prompt := findPost("asked for `/toolbox admins remove @member`")
		if prompt == nil || prompt.UserId != botUser.Id || len(prompt.Attachments()) != 1 {
			t.Fatalf("no bot prompt with buttons: %+v", prompt)
		}
		// The member (an admin now, but not the one who asked) clicks Confirm: refused.
		if _, err := memberClient.DoPostAction(ctx, prompt.Id, "confirm"); err != nil {
			t.Fatalf("member click: %v", err)
		}
		if got := run(memberClient, "admins list"); !strings.Contains(got, "`@member`") {
			t.Fatalf("the wrong user's click removed the admin:\n%s", got)
		}
		if p, _, _ := admin.GetPost(ctx, prompt.Id, ""); p.Message != prompt.Message {
			t.Fatalf("the wrong user's click changed the prompt to %q", p.Message)
		}
		// The admin who asked confirms.
		if _, err := admin.DoPostAction(ctx, prompt.Id, "confirm"); err != nil {
			t.Fatalf("admin click: %v", err)
		}
		p, _, err := admin.GetPost(ctx, prompt.Id, "")
		if err != nil || !strings.Contains(p.Message, "confirmed by @admin") || len(p.Attachments()) != 0 {
			t.Fatalf("prompt after confirmation = %q with %d attachments (err %v)", p.Message, len(p.Attachments()), err)
		}
		if got := run(admin, "admins list"); strings.Contains(got, "`@member`") {
			t.Fatalf("member still an admin after the confirmation:\n%s", got)
		}
		// The buttons are gone: a second click cannot reach the bot.
		if _, err := admin.DoPostAction(ctx, prompt.Id, "confirm"); err == nil {
			t.Errorf("a second click on the answered prompt was accepted")
		}
	})

	t.Run("expired confirmation", func(t *testing.T) {
		confirmed("admins add @member")
		run(admin, "admins remove member")
		var prompt *model.Post
		eventually(t, 10*time.Second, "the prompt", func() bool {
			prompt = findPost("asked for `/toolbox admins remove member`")
			return prompt != nil
		})
		time.Sleep(7 * time.Second) // TOOLBOX_CONFIRM_TTL is 6s
		if _, err := admin.DoPostAction(ctx, prompt.Id, "confirm"); err != nil {
			t.Fatalf("click: %v", err)
		}
		p, _, _ := admin.GetPost(ctx, prompt.Id, "")
		if !strings.Contains(p.Message, "expired") {
			t.Errorf("prompt after an expired click = %q", p.Message)
		}
		if got := run(admin, "admins list"); !strings.Contains(got, "`@member`") {
			t.Errorf("an expired confirmation removed the admin:\n%s", got)
		}
	})

	t.Run("forged requests", func(t *testing.T) {
		form := url.Values{"token": {"not-the-token-000000000000"}, "team_id": {team.Id}, "user_id": {member.Id},
			"user_name": {"member"}, "channel_id": {channel.Id}, "command": {"/toolbox"}, "text": {"admins add @member"}}
		resp, err := http.PostForm("http://"+botAddr+"/mm/command", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || resp.ContentLength > 0 {
			t.Errorf("forged token: status %d, length %d; want 401 with no body", resp.StatusCode, resp.ContentLength)
		}
		body := `{"user_id":"` + member.Id + `","channel_id":"` + channel.Id + `","team_id":"` + team.Id +
			`","context":{"action":"confirm","token":"eyJ2IjoiYWRtaW5zIHJlbW92ZSJ9.Zm9yZ2Vk"}}`
		resp, err = http.Post("http://"+botAddr+"/mm/action", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var res model.PostActionIntegrationResponse
		_ = jsonDecode(resp, &res)
		if res.Update != nil || !strings.Contains(res.EphemeralText, "not valid") {
			t.Errorf("forged click answered %+v", res)
		}
	})

	t.Run("hot state backup", func(t *testing.T) {
		backup := t.TempDir() + "/backup.db"
		out := toolboxRun(t, env, "state", "backup", backup)
		if !strings.Contains(out, "bytes of state to "+backup) {
			t.Fatalf("state backup answered %q", out)
		}
		// The copy alone reveals no secret: it opens only with the state's key.
		if _, err := toolboxTry(t, []string{"TOOLBOX_STATE=" + backup}, "do", "audit 200"); err == nil {
			t.Error("the state's copy opened without its key")
		}
		key, err := os.ReadFile(statePath + ".key")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(backup+".key", key, 0o600); err != nil {
			t.Fatal(err)
		}
		// With it, the copy is a state of its own: the audit log holds this test's commands.
		got := toolboxRun(t, []string{"TOOLBOX_STATE=" + backup}, "do", "audit 200")
		if !strings.Contains(got, "admins remove @member") {
			t.Errorf("the backup's audit log lacks the confirmation test:\n%s", got)
		}
	})

	serve.stop(t, 30*time.Second)
	if !strings.Contains(serve.out.String(), "stopped") {
		t.Errorf("no clean stop in the log:\n%s", serve.out.String())
	}
}
