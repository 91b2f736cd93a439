package commands

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mattermost/mattermost/server/public/shared/markdown"
)

func TestCode(t *testing.T) {
	long := strings.Repeat("a", maxCodeRunes+10)
	tests := []struct {
		name, in, want string
	}{
		{"plain", "wordpress", "`wordpress`"},
		{"mention", "@channel", "`@channel`"},
		{"channel link", "~town-square", "`~town-square`"},
		{"formatting", "*bold* _it_ :smile: <b>", "`*bold* _it_ :smile: <b>`"},
		{"empty", "", "`''`"},
		{"only spaces", " \n\t ", "`''`"},
		{"newlines collapse", "a\n\nb\r\nc", "`a b c`"},
		{"spaces trimmed", "  a   b  ", "`a b`"},
		{"one backtick", "a`b", "``a`b``"},
		{"two backticks", "a``b`c", "```a``b`c```"},
		{"leading backtick padded", "`a", "`` `a ``"},
		{"trailing backtick padded", "a`", "`` a` ``"},
		{"only backticks", "```", "```` ``` ````"},
		{"control", "a\x00b\x1bc", "`a\uFFFDb\uFFFDc`"},
		{"bidi override", "a\u202Eb", "`a\uFFFDb`"},
		{"zero width", "@\u200Bchannel", "`@\uFFFDchannel`"},
		{"invalid utf8", "a\xffb", "`a\uFFFDb`"},
		{"cut", long, "`" + strings.Repeat("a", maxCodeRunes-1) + "…`"},
		{"exact bound", long[:maxCodeRunes], "`" + long[:maxCodeRunes] + "`"},
		{"pipe kept outside tables", "a|b", "`a|b`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := code(tt.in); got != tt.want {
				t.Errorf("code(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestCodeCell(t *testing.T) {
	if got, want := codeCell("add a|b"), "`add a¦b`"; got != want {
		t.Errorf("codeCell(%q) = %q, want %q", "add a|b", got, want)
	}
	if got := codeCell("a\nb"); strings.Contains(got, "\n") {
		t.Errorf("codeCell(%q) = %q, has a newline", "a\nb", got)
	}
}

// checkOneCodeSpan parses post with Mattermost's own Markdown parser (the one
// its server reads mentions with: only Text nodes can mention) and checks that
// quoted is one code span in one paragraph, showing want, between plain before
// and after.
func checkOneCodeSpan(t *testing.T, post, before, after, want string) {
	t.Helper()
	var got []string
	markdown.Inspect(post, func(node any) bool {
		switch n := node.(type) {
		case nil, *markdown.Document, *markdown.Paragraph:
		case *markdown.Text:
			got = append(got, "text:"+n.Text)
		case *markdown.CodeSpan:
			got = append(got, "code:"+n.Code)
		default:
			got = append(got, fmt.Sprintf("%T", n))
		}
		return true
	})
	var wantNodes []string
	if before != "" {
		wantNodes = append(wantNodes, "text:"+before)
	}
	wantNodes = append(wantNodes, "code:"+want)
	if after != "" {
		wantNodes = append(wantNodes, "text:"+after)
	}
	if fmt.Sprint(got) != fmt.Sprint(wantNodes) {
		t.Fatalf("Markdown of %q = %q, want %q", post, got, wantNodes)
	}
}

func TestCodeIsOneSpanForMattermost(t *testing.T) {
	for _, in := range []string{"@channel", "a`b", "`", "``x``", "a\n# title\n- item", "[x](http://e.x) <http://e.x>", "~town-square :smile:", "\\`a\\`"} {
		quoted := code(in)
		shown := visibleLine(in, maxCodeRunes)
		checkOneCodeSpan(t, "No app named "+quoted+" here.", "No app named ", " here.", shown)
		checkOneCodeSpan(t, quoted, "", "", shown)
	}
}

func FuzzCode(f *testing.F) {
	for _, s := range []string{"@channel", "a`b", "``", "` `", "a\nb", "\u202E", "\xff", "x|y", strings.Repeat("`", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		shown := visibleLine(s, maxCodeRunes)
		if n := utf8.RuneCountInString(shown); n > maxCodeRunes {
			t.Fatalf("visibleLine(%q) has %d runes, more than %d", s, n, maxCodeRunes)
		}
		if shown == "" {
			shown = "''"
		}
		for _, tt := range []struct {
			quote func(string) string
			shown string
		}{
			{code, shown},
			{codeCell, strings.ReplaceAll(shown, "|", "¦")},
		} {
			quoted, shown := tt.quote(s), tt.shown
			if strings.ContainsAny(quoted, "\r\n") {
				t.Fatalf("quoted %q = %q, spans lines", s, quoted)
			}
			if !utf8.ValidString(quoted) {
				t.Fatalf("quoted %q = %q, not UTF-8", s, quoted)
			}
			checkOneCodeSpan(t, "before "+quoted+" after", "before ", " after", shown)
			checkOneCodeSpan(t, quoted, "", "", shown)
		}
	})
}
