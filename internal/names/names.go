// Package names holds the toolbox's rules for the names people give: app
// names and domain names. The commands, the catalog and the proxy all check
// with these functions, so a name one accepts the others accept too.
//
// The errors read as sentences for people (without the final period): they
// quote the name and say what is allowed.
package names

import (
	"fmt"
	"net/netip"
	"strings"
)

// Limits of the rules.
const (
	MaxApp    = 31  // characters of an app name
	MaxLabel  = 63  // characters of a domain label (RFC 1035)
	MaxDomain = 253 // characters of a domain name, dots included
)

// Error says why a name is refused.
type Error struct {
	What string // "an app name", "a domain name"
	Name string // the name as given (possibly long: Error cuts it)
	Why  string // what is wrong, and what is allowed
}

func (e *Error) Error() string {
	return fmt.Sprintf("%q is not %s: %s", cut(e.Name, 60), e.What, e.Why)
}

// cut shortens s to at most n bytes, on a rune boundary, marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

const appRule = "use 1 to 31 lowercase letters, digits and dashes, starting with a letter, like wordpress or wiki-2"

// App accepts 1 to 31 lowercase ASCII letters, digits and dashes, starting
// with a letter. An app name becomes a Docker project, container, volume and
// network name, and a key in the state.
func App(name string) error {
	fail := func(why string) error { return &Error{What: "an app name", Name: name, Why: why} }
	switch {
	case name == "":
		return fail("it is empty; " + appRule)
	case len(name) > MaxApp:
		return fail(fmt.Sprintf("it is longer than %d characters; %s", MaxApp, appRule))
	case !isLower(name[0]):
		return fail(appRule)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isLower(c) && !isDigit(c) && c != '-' {
			return fail(appRule)
		}
	}
	return nil
}

const domainRule = "use lowercase letters, digits and dashes in dot-separated labels of 1 to 63 characters, like wiki.example.org"

// Domain accepts a fully qualified host name that a route can match and a
// certificate can name: at least two labels of 1 to 63 lowercase ASCII
// letters, digits and dashes, not starting or ending with a dash, 253
// characters at most, with no final dot, wildcard, port, scheme or path. A
// name that reads as an IP address (the last label a number) is refused:
// certificate authorities do not issue for it.
func Domain(name string) error {
	fail := func(why string) error { return &Error{What: "a domain name", Name: name, Why: why} }
	if ip, err := netip.ParseAddr(name); err == nil {
		return fail("it is an IP address; certificates need a name, such as wiki." + sslip(ip))
	}
	switch {
	case name == "":
		return fail("it is empty; " + domainRule)
	case len(name) > MaxDomain:
		return fail(fmt.Sprintf("it is longer than %d characters", MaxDomain))
	case strings.Contains(name, "*"):
		return fail("wildcards are not routed; give the app's own name, like wiki.example.org")
	case strings.Contains(name, "://") || strings.ContainsAny(name, "/?#@"):
		return fail("give the host name alone, like wiki.example.org, without scheme or path")
	case strings.Contains(name, ":"):
		return fail("give the host name without a port, like wiki.example.org")
	case strings.ToLower(name) != name:
		return fail("write it in lowercase")
	case strings.HasSuffix(name, "."):
		return fail("remove the final dot")
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return fail("it needs at least two labels, like wiki.example.org")
	}
	for _, l := range labels {
		if err := label(l); err != "" {
			return fail(err)
		}
	}
	if last := labels[len(labels)-1]; strings.Trim(last, "0123456789") == "" {
		return fail("it ends in a number, so it reads as an address; certificates need a name like wiki.example.org")
	}
	return nil
}

// label says what is wrong with one label of a domain, or "".
func label(l string) string {
	switch {
	case l == "":
		return "it has an empty label (two dots in a row, or a dot at the start); " + domainRule
	case len(l) > MaxLabel:
		return fmt.Sprintf("a label is longer than %d characters", MaxLabel)
	case l[0] == '-' || l[len(l)-1] == '-':
		return "a label starts or ends with a dash; " + domainRule
	}
	for i := 0; i < len(l); i++ {
		if c := l[i]; !isLower(c) && !isDigit(c) && c != '-' {
			return domainRule
		}
	}
	return ""
}

// sslip is the sslip.io name of ip, a name that resolves to it.
func sslip(ip netip.Addr) string {
	ip = ip.WithZone("") // a zone is any text: keep it out of the sentence
	if ip.Is4() {
		return ip.String() + ".sslip.io"
	}
	return strings.ReplaceAll(ip.String(), ":", "-") + ".sslip.io"
}

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
