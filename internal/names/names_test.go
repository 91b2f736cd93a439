package names

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestApp(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
		why      string // in the error
	}{
		{"plain", "wordpress", true, ""},
		{"dash and digit", "wiki-2", true, ""},
		{"one letter", "a", true, ""},
		{"31 characters", "a" + strings.Repeat("b", 30), true, ""},
		{"32 characters", "a" + strings.Repeat("b", 31), false, "longer than 31 characters"},
		{"empty", "", false, "it is empty"},
		{"uppercase", "WordPress", false, "lowercase letters"},
		{"leading digit", "2wiki", false, "starting with a letter"},
		{"leading dash", "-rf", false, "starting with a letter"},
		{"underscore", "my_wiki", false, "lowercase letters, digits and dashes"},
		{"dot", "wiki.org", false, "lowercase letters, digits and dashes"},
		{"slash", "Bad/Name", false, "is not an app name"},
		{"path", "../etc", false, "is not an app name"},
		{"space", "my wiki", false, "is not an app name"},
		{"quote", "wiki'", false, "is not an app name"},
		{"injection", "a'); system('id'); //", false, "is not an app name"},
		{"newline", "wiki\nrm", false, `"wiki\nrm" is not an app name`},
		{"non-ascii", "wikí", false, "is not an app name"},
		{"nul", "wiki\x00", false, "is not an app name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := App(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("App(%q) = %v, want ok %v", tt.in, err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), tt.why) {
				t.Errorf("App(%q) = %q, want it to say %q", tt.in, err, tt.why)
			}
		})
	}
}

func TestDomain(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	// 3 labels of 63, one of 57 and "org", with 4 dots: 253 characters.
	long253 := label63 + "." + label63 + "." + label63 + "." + strings.Repeat("b", 57) + ".org"
	tests := []struct {
		name, in string
		ok       bool
		why      string
	}{
		{"plain", "wiki.example.org", true, ""},
		{"two labels", "example.org", true, ""},
		{"digits and dashes", "my-wiki2.example-1.org", true, ""},
		{"punycode", "xn--bcher-kva.example", true, ""},
		{"digit label inside", "wiki.203.0.113.7.sslip.io", true, ""},
		{"label of 63", label63 + ".org", true, ""},
		{"label of 64", label63 + "a.org", false, "longer than 63 characters"},
		{"253 characters", long253, true, ""},
		{"254 characters", "a" + long253, false, "longer than 253 characters"},
		{"empty", "", false, "it is empty"},
		{"one label", "localhost", false, "at least two labels"},
		{"uppercase", "Wiki.Example.org", false, "lowercase"},
		{"trailing dot", "wiki.example.org.", false, "remove the final dot"},
		{"two trailing dots", "wiki.example.org..", false, "remove the final dot"},
		{"only a dot", ".", false, "remove the final dot"},
		{"leading dot", ".example.org", false, "empty label"},
		{"double dot", "wiki..org", false, "empty label"},
		{"leading dash", "-rf.example.org", false, "starts or ends with a dash"},
		{"trailing dash", "wiki-.example.org", false, "starts or ends with a dash"},
		{"underscore", "not_a_domain.org", false, "is not a domain name"},
		{"no dot underscore", "not_a_domain", false, "is not a domain name"},
		{"IPv4", "203.0.113.7", false, "IP address; certificates need a name, such as wiki.203.0.113.7.sslip.io"},
		{"IPv6", "2001:db8::1", false, "IP address"},
		{"IP-like", "10.1", false, "ends in a number"},
		{"numeric last label", "example.123", false, "ends in a number"},
		{"wildcard", "*.example.org", false, "wildcards"},
		{"port", "wiki.example.org:8080", false, "without a port"},
		{"scheme", "https://wiki.example.org", false, "without scheme or path"},
		{"path", "wiki.example.org/admin", false, "without scheme or path"},
		{"user", "me@wiki.example.org", false, "without scheme or path"},
		{"space", "wiki example.org", false, "is not a domain name"},
		{"quote", `wiki".example.org`, false, "is not a domain name"},
		{"single quote", "wiki'.example.org", false, "is not a domain name"},
		{"injection", "'); system('id'); //", false, "is not a domain name"},
		{"caddy placeholder", "{http.request.host}.org", false, "is not a domain name"},
		{"backslash", `wiki\.example.org`, false, "is not a domain name"},
		{"newline", "wiki.example.org\nevil.org", false, `\n`},
		{"non-ascii", "wikí.example.org", false, "is not a domain name"},
		{"fullwidth dot", "wiki。example.org", false, "is not a domain name"},
	}
	if len(long253) != 253 {
		t.Fatalf("test setup: long253 has %d characters", len(long253))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Domain(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("Domain(%q) = %v, want ok %v", tt.in, err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), tt.why) {
				t.Errorf("Domain(%q) = %q, want it to say %q", tt.in, err, tt.why)
			}
		})
	}
}

func TestErrorIsAnError(t *testing.T) {
	var e *Error
	if err := Domain("nope"); !errors.As(err, &e) || e.What != "a domain name" || e.Name != "nope" {
		t.Errorf("Domain(%q) = %#v, want an *Error naming it", "nope", err)
	}
	long := strings.Repeat("é", 100)
	if msg := App(long).Error(); len(msg) > 300 || !utf8.ValidString(msg) {
		t.Errorf("App(100 × é) = %q: want a short message on rune boundaries", msg)
	}
}

// The reference rules, written differently from the code under test.
var (
	refApp    = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)
	refLabel  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	refNumber = regexp.MustCompile(`^[0-9]+$`)
)

func refDomain(s string) bool {
	labels := strings.Split(s, ".")
	if len(s) > 253 || len(labels) < 2 || refNumber.MatchString(labels[len(labels)-1]) {
		return false
	}
	for _, l := range labels {
		if !refLabel.MatchString(l) {
			return false
		}
	}
	return true
}

func checkMessage(t *testing.T, fn, in string, err error) {
	t.Helper()
	msg := err.Error()
	if strings.ContainsAny(msg, "\n\r\x00") || !utf8.ValidString(msg) || len(msg) > 400 {
		t.Errorf("%s(%q) error %q: want one short line of valid text", fn, in, msg)
	}
	if !strings.Contains(msg, "is not a") {
		t.Errorf("%s(%q) error %q does not say what is refused", fn, in, msg)
	}
}

func FuzzNames(f *testing.F) {
	for _, s := range []string{
		"wordpress", "wiki.example.org", "", ".", "a..b", "-a.b", "203.0.113.7", "::1", "10.1",
		"'); system('id'); //", `"my site"`, "a/b", "WIKI.org", "wiki.org.", strings.Repeat("a.", 130) + "org",
		"xn--bcher-kva.example", "wikí.org", "\x00", "a\u200b.org",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if err := App(s); (err == nil) != refApp.MatchString(s) {
			t.Errorf("App(%q) = %v, disagrees with the reference rule", s, err)
		} else if err != nil {
			checkMessage(t, "App", s, err)
		}
		if err := Domain(s); (err == nil) != refDomain(s) {
			t.Errorf("Domain(%q) = %v, disagrees with the reference rule", s, err)
		} else if err != nil {
			checkMessage(t, "Domain", s, err)
		}
	})
}
