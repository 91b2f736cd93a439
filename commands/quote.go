package commands

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxCodeRunes bounds what code shows of one piece of user text: a reply quotes
// a name or a value, never a whole message.
const maxCodeRunes = 120

// code renders user-typed text as one inline Markdown code span, which
// Mattermost shows literally: inside it, @channel mentions no one, ~town-square
// links nowhere, and *, _, :emoji:, <html> and URLs are plain characters.
// Whatever s holds, the result is a single code span on a single line:
//   - runs of white space (newlines included) collapse to one space, since a
//     newline would end the span's paragraph or start a block;
//   - characters that are not visible (controls, bidirectional overrides,
//     zero-width ones) and invalid UTF-8 show as U+FFFD, so the text cannot
//     hide or reorder what is around it;
//   - the fence is one backtick longer than the longest run of backticks
//     inside, and a space pads content that begins or ends with one, as
//     CommonMark asks, so no backtick of s can close the span early;
//   - at most maxCodeRunes runes are kept, the rest shown as "…".
//
// The empty text, which has no code span, shows as a span of two single
// quotes, the way Split reads an empty word.
func code(s string) string {
	return codeSpan(s, false)
}

// codeCell is code for a Markdown table cell. A table splits its row at
// every "|", even inside a code span; "\|" escapes it, but renderers disagree
// on a backslash before that, so a "|" shows as "¦" there.
func codeCell(s string) string {
	return codeSpan(s, true)
}

func codeSpan(s string, inTable bool) string {
	text := visibleLine(s, maxCodeRunes)
	if text == "" {
		return "`''`"
	}
	longest, run := 0, 0
	for i := 0; i < len(text); i++ {
		if text[i] == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	if inTable {
		text = strings.ReplaceAll(text, "|", "¦")
	}
	fence := strings.Repeat("`", longest+1)
	if text[0] == '`' || text[len(text)-1] == '`' {
		text = " " + text + " "
	}
	return fence + text + fence
}

// visibleLine returns s on one line with only visible characters, spaces
// collapsed and trimmed, at most n runes (the last one "…" when cut).
func visibleLine(s string, n int) string {
	out := make([]rune, 0, min(len(s), n+1))
	space := false
	for _, r := range s { // invalid UTF-8 comes as utf8.RuneError, shown as such
		if unicode.IsSpace(r) {
			space = len(out) > 0
			continue
		}
		if !unicode.IsGraphic(r) {
			r = utf8.RuneError
		}
		if space {
			out = append(out, ' ')
			space = false
		}
		out = append(out, r)
		if len(out) > n { // one past the bound: s is cut
			out = append(out[:n-1], '…')
			break
		}
	}
	return string(out)
}

// oneLine is the first line of a text the bot wrote (an error, a progress
// step), cut to n bytes, with "…" when anything was left out: a list item or
// a table cell holds one line. Any user text in it is already inside code
// spans.
func oneLine(s string, n int) string {
	s = strings.TrimSpace(s)
	line, rest, more := strings.Cut(s, "\n")
	line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
	if more && strings.TrimSpace(rest) != "" && len(line) < n {
		return line + " …"
	}
	return truncate(line, n)
}

// cellLine is oneLine for a Markdown table cell, where "|" would end the cell.
func cellLine(s string, n int) string {
	return strings.ReplaceAll(oneLine(s, n), "|", `\|`)
}
