package commands

import (
	"strconv"
	"strings"
	"testing"

	"github.com/mattermost/mattermost/server/public/shared/markdown"
)

// textOutsideCode is the text of a post that Mattermost reads for mentions:
// its Text nodes, not its code spans.
func textOutsideCode(post string) string {
	var b strings.Builder
	markdown.Inspect(post, func(node any) bool {
		if t, ok := node.(*markdown.Text); ok {
			b.WriteString(t.Text)
		}
		return true
	})
	return b.String()
}

var settingsSeeds = []string{
	"10%", "100%", "0%", "101%", "010%", "+5%", "5", "%", "1e2%", "٣%",
	"s3:https://s3.example.org/bucket/path", "s3:s3.amazonaws.com/bucket", "swift:backups:/toolbox", "rest:https://host:8000/path",
	"rest:https://user:hunter2@host:8000/", "s3:https://@channel:pw@host/b", "rest:https://host/`@channel`", "`@channel` ~town-square",
	"sftp:user@host:/srv", "b2:bucket", "/srv/backups", "swift:c", "rest:ftp://host/", "default", "daily 7 weekly 4 monthly 6", "last 1",
	"ann@example.org", "@here", "a\nb", "\x00", strings.Repeat("x", 600),
}

// FuzzSettingsValues checks the parsing of the backup settings' values:
// no panic, clear errors (of kind invalid, that never quote credentials nor
// show the text outside code spans, where it could mention people), and a
// value that parses prints back as itself.
func FuzzSettingsValues(f *testing.F) {
	for _, s := range settingsSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		if subset, err := checkSubset([]string{value}); err != nil {
			if KindOf(err) != Invalid || (len(value) > 4 && strings.Contains(err.Error(), value)) {
				t.Fatalf("checkSubset(%q) = %v: want an invalid-kind error that does not repeat the text", value, err)
			}
		} else {
			n, perr := strconv.Atoi(strings.TrimSuffix(subset, "%"))
			if again, err := checkSubset([]string{subset}); err != nil || again != subset || perr != nil || n < 1 || n > 100 {
				t.Fatalf("checkSubset(%q) = %q, but it reads back as %q, %v", value, subset, again, err)
			}
		}

		i, j, withUser := userinfo(value)
		if err := validRepositoryURL(value); err != nil {
			msg := err.Error()
			if KindOf(err) != Invalid || strings.ContainsAny(msg, "\n") {
				t.Fatalf("validRepositoryURL(%q) = %v: want one invalid-kind sentence", value, err)
			}
			if withUser && j > i && strings.Contains(msg, value[i:j]) && !strings.Contains(redactUserinfo(value), value[i:j]) {
				t.Fatalf("validRepositoryURL(%q) = %q repeats the credentials %q", value, msg, value[i:j])
			}
			if strings.Contains(value, "@") && strings.Contains(textOutsideCode(msg), "@") {
				t.Fatalf("validRepositoryURL(%q) = %q shows the text outside a code span", value, msg)
			}
		} else if withUser {
			t.Fatalf("validRepositoryURL(%q) accepted credentials in the URL", value)
		}
		if withUser {
			if got, want := redactUserinfo(value), value[:i]+"[redacted]"+value[j:]; got != want {
				t.Fatalf("redactUserinfo(%q) = %q, want %q", value, got, want)
			}
		}

		if describeKeep(value) == "" {
			t.Fatalf("describeKeep(%q) is empty", value)
		}
	})
}

// FuzzSettingsThroughTheRouter types the values after the settings verbs,
// as an admin: whatever the value, the answer is a sentence for people (never
// an internal error), the audit log never holds a secret value or a URL's
// credentials, and what the bot posts shows the value only in code spans.
func FuzzSettingsThroughTheRouter(f *testing.F) {
	verbs := []string{"backup repository", "backup check", "set wordpress ADMIN_EMAIL", "set wordpress", "backup keep"}
	for _, s := range settingsSeeds {
		for v := range len(verbs) {
			f.Add(s, uint8(v))
		}
	}
	f.Fuzz(func(t *testing.T, value string, which uint8) {
		e, _ := settingsEnv(t, &fakeBackups{})
		verb := verbs[int(which)%len(verbs)]
		text := verb + " " + quoteArgs([]string{value})
		reply := e.handle(caller("ann"), text)
		if reply.Text == "" || strings.Contains(reply.Text, "Something went wrong") {
			t.Fatalf("Handle(%q) = %q: want an answer for people", text, reply.Text)
		}
		rec := e.lastAudit(t)
		if strings.HasPrefix(verb, "set") && len(value) >= 4 && strings.Contains(rec.Text, value) && !strings.Contains(verb+" [redacted]", value) {
			t.Fatalf("audit of %q = %q, holds the value", text, rec.Text)
		}
		if i, j, ok := userinfo(value); verb == "backup repository" && ok && j-i >= 4 && strings.Contains(rec.Text, value[i:j]) && !strings.Contains(verb+" [redacted]", value[i:j]) {
			t.Fatalf("audit of %q = %q, holds the URL's credentials", text, rec.Text)
		}
		if verb == "backup keep" { // the fake takes any text as is: not the real retention's words
			return
		}
		shown := []string{reply.Text}
		for _, p := range e.chat.Prompts() {
			shown = append(shown, p.Text)
		}
		for _, s := range shown {
			if strings.Contains(value, "@") && strings.Contains(strings.ReplaceAll(textOutsideCode(s), "@ann", ""), "@") {
				t.Fatalf("Handle(%q) shows the value outside a code span: %q", text, s)
			}
		}
	})
}
