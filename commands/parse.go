package commands

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxTextBytes bounds the text of one command; a longer text is refused before parsing.
const MaxTextBytes = 4096

var (
	errUnterminatedQuote = errors.New("a quote is not closed")
	errTrailingEscape    = errors.New("the text ends with a lone backslash")
)

// Split breaks a command text into words the way a shell would, so that
// `add wordpress "our site"` keeps "our site" together: single quotes keep
// everything literally, double quotes allow \" and \\, and a backslash outside
// quotes escapes the next character.
func Split(text string) ([]string, error) {
	if !utf8.ValidString(text) {
		return nil, Errorf(Invalid, "The command text is not valid UTF-8.")
	}
	if len(text) > MaxTextBytes {
		return nil, Errorf(Invalid, "The command text is too long (%d bytes; at most %d).", len(text), MaxTextBytes)
	}
	var (
		words   []string
		cur     strings.Builder
		inWord  bool
		quote   rune // 0, '\'' or '"'
		escaped bool
	)
	for _, r := range text {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case quote == '"':
			switch r {
			case '"':
				quote = 0
			case '\\':
				escaped = true
			default:
				cur.WriteRune(r)
			}
		case r == '\\':
			escaped, inWord = true, true
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case unicode.IsSpace(r):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	switch {
	case quote != 0:
		return nil, &Error{Kind: Invalid, Message: "A quote is not closed.", Err: errUnterminatedQuote}
	case escaped:
		return nil, &Error{Kind: Invalid, Message: "The text ends with a lone backslash.", Err: errTrailingEscape}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
