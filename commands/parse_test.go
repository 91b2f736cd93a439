package commands

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"only spaces", " \t\n ", nil},
		{"one word", "status", []string{"status"}},
		{"several words", "add wordpress  blog", []string{"add", "wordpress", "blog"}},
		{"leading and trailing spaces", "  help  status ", []string{"help", "status"}},
		{"tabs and newlines", "a\tb\nc\r\nd", []string{"a", "b", "c", "d"}},
		{"double quotes", `add wordpress "our site"`, []string{"add", "wordpress", "our site"}},
		{"single quotes", `add wordpress 'our site'`, []string{"add", "wordpress", "our site"}},
		{"empty double quotes", `a "" b`, []string{"a", "", "b"}},
		{"empty single quotes", `a '' b`, []string{"a", "", "b"}},
		{"quotes inside a word", `our" "site`, []string{"our site"}},
		{"adjacent quoted parts", `'a'"b"c`, []string{"abc"}},
		{"single quotes keep backslashes", `'a\b\'`, []string{`a\b\`}},
		{"single quotes keep double quotes", `'say "hi"'`, []string{`say "hi"`}},
		{"double quotes keep single quotes", `"it's"`, []string{"it's"}},
		{"escaped double quote in double quotes", `"a \"b\" c"`, []string{`a "b" c`}},
		{"escaped backslash in double quotes", `"a\\b"`, []string{`a\b`}},
		{"escaped space", `our\ site`, []string{"our site"}},
		{"escaped quote", `it\'s`, []string{"it's"}},
		{"escaped backslash", `a\\b`, []string{`a\b`}},
		{"lone escaped character is a word", `\x`, []string{"x"}},
		{"shell-style quote in quotes", `'it'\''s'`, []string{"it's"}},
		{"no-break space separates", "a\u00a0b", []string{"a", "b"}},
		{"em space and ideographic space separate", "a\u2003b\u3000c", []string{"a", "b", "c"}},
		{"line separator separates", "a\u2028b", []string{"a", "b"}},
		{"unicode space kept in quotes", "'a\u00a0b'", []string{"a\u00a0b"}},
		{"non-ASCII words", "ajouter «site» café 日本", []string{"ajouter", "«site»", "café", "日本"}},
		{"emoji", "status 🚀", []string{"status", "🚀"}},
		{"at most the limit", strings.Repeat("a", MaxTextBytes), []string{strings.Repeat("a", MaxTextBytes)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Split(tt.in)
			if err != nil {
				t.Fatalf("Split(%q) error: %v", tt.in, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Split(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSplitErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantMsg string // the sentence people read
		wantErr error  // the cause, when there is one
	}{
		{"unterminated double quote", `add "our site`, "A quote is not closed.", errUnterminatedQuote},
		{"unterminated single quote", `add 'our site`, "A quote is not closed.", errUnterminatedQuote},
		{"lone quote", `"`, "A quote is not closed.", errUnterminatedQuote},
		{"escaped closing quote", `"a\"`, "A quote is not closed.", errUnterminatedQuote},
		{"trailing backslash", `status \`, "The text ends with a lone backslash.", errTrailingEscape},
		{"only a backslash", `\`, "The text ends with a lone backslash.", errTrailingEscape},
		{"invalid UTF-8", "status \xff\xfe", "The command text is not valid UTF-8.", nil},
		{"truncated UTF-8 sequence", "caf\xc3", "The command text is not valid UTF-8.", nil},
		{"too long", strings.Repeat("a", MaxTextBytes+1), "The command text is too long (4097 bytes; at most 4096).", nil},
		{"too long in multi-byte runes", strings.Repeat("é", 3000), "The command text is too long (6000 bytes; at most 4096).", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Split(tt.in)
			if err == nil {
				t.Fatalf("Split(%.40q) = %q, want an error", tt.in, got)
			}
			if k := KindOf(err); k != Invalid {
				t.Errorf("KindOf(Split(%.40q) error) = %v, want Invalid", tt.in, k)
			}
			if msg, ref := message(err); msg != tt.wantMsg || ref != "" {
				t.Errorf("message(Split(%.40q) error) = %q, %q; want %q, no reference", tt.in, msg, ref, tt.wantMsg)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Split(%.40q) error = %v, want it to wrap %v", tt.in, err, tt.wantErr)
			}
		})
	}
}

func TestQuoteArgs(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"wordpress"}, "wordpress"},
		{[]string{"our site", ""}, `'our site' ''`},
		{[]string{"it's"}, `'it'\''s'`},
		{[]string{`a\b`, `"x"`}, `'a\b' '"x"'`},
		{[]string{"a\u00a0b"}, "'a\u00a0b'"},
		{[]string{"a\rb"}, "'a\rb'"},
	}
	for _, tt := range tests {
		if got := quoteArgs(tt.in); got != tt.want {
			t.Errorf("quoteArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzSplit checks that Split never panics, that whatever it refuses is
// refused with a message for people, and that its words survive a round trip
// through quoteArgs, which shows arguments back in chat.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{"", "status", `add wordpress "our site"`, `'it'\''s'`, `a\ b`, "a\u00a0b", `"\"`, `\`, "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		words, err := Split(in)
		if err != nil {
			if KindOf(err) != Invalid {
				t.Fatalf("Split(%q) error %v is of kind %v, want Invalid", in, err, KindOf(err))
			}
			if msg, ref := message(err); msg == "" || ref != "" {
				t.Fatalf("message(Split(%q) error) = %q, %q; want a sentence and no reference", in, msg, ref)
			}
			return
		}
		for _, w := range words {
			if !utf8.ValidString(w) {
				t.Fatalf("Split(%q) gave an invalid UTF-8 word %q", in, w)
			}
		}
		joined := quoteArgs(words)
		if len(joined) > MaxTextBytes {
			return // quoting may lengthen a text past the limit
		}
		again, err := Split(joined)
		if err != nil {
			t.Fatalf("Split(quoteArgs(%q)) = Split(%q) error: %v", words, joined, err)
		}
		if !slices.Equal(again, words) {
			t.Fatalf("Split(quoteArgs(Split(%q))) = %q, want %q (quoted: %q)", in, again, words, joined)
		}
	})
}
