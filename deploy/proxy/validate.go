package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by the errors for a domain, app name or upstream
// that the Proxy refuses.
var ErrInvalid = errors.New("invalid")

// invalidError says what is wrong with a value, in a sentence.
type invalidError struct {
	what, value, why string
}

func (e *invalidError) Error() string {
	return fmt.Sprintf("proxy: invalid %s %q: %s", e.what, e.value, e.why)
}

func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(what, value, why string) error {
	const max = 80
	if len(value) > max {
		value = value[:max] + "..."
	}
	return &invalidError{what: what, value: value, why: why}
}

var (
	// appName is the commands package's rule for app names.
	appName     = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)
	domainLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// containerHost is a container name or network alias.
	containerHost = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
)

// ValidateDomain accepts a fully qualified host name that a route can match
// and a certificate can name: lowercase letters, digits and dashes in labels
// of 1 to 63 characters, at least two labels, no wildcard, port, trailing dot
// or IP address.
func ValidateDomain(d string) error {
	const what = "domain"
	if ip, err := netip.ParseAddr(d); err == nil {
		return invalid(what, d, "it is an IP address, not a domain name; use a name such as wiki."+sslip(ip))
	}
	switch {
	case d == "":
		return invalid(what, d, "it is empty")
	case strings.Contains(d, "*"):
		return invalid(what, d, "wildcards are not routed; give the app's own name, like wiki.example.org")
	case strings.Contains(d, "://") || strings.ContainsAny(d, "/?#@"):
		return invalid(what, d, "give the host name alone, like wiki.example.org, without scheme or path")
	case strings.Contains(d, ":"):
		return invalid(what, d, "give the host name without a port, like wiki.example.org")
	case strings.ToLower(d) != d:
		return invalid(what, d, "write it in lowercase: "+strings.ToLower(d))
	case strings.HasSuffix(d, "."):
		return invalid(what, d, "remove the final dot")
	case len(d) > 253:
		return invalid(what, d, "it is longer than 253 characters")
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return invalid(what, d, "it needs at least two labels, like wiki.example.org")
	}
	for _, l := range labels {
		if !domainLabel.MatchString(l) {
			return invalid(what, d, fmt.Sprintf("label %q: use 1 to 63 lowercase letters, digits or dashes, not starting or ending with a dash", l))
		}
	}
	if _, err := strconv.Atoi(labels[len(labels)-1]); err == nil {
		return invalid(what, d, "the last label is a number: this is not a domain name")
	}
	return nil
}

// sslip is the sslip.io name of ip.
func sslip(ip netip.Addr) string {
	if ip.Is4() {
		return ip.String() + ".sslip.io"
	}
	return strings.ReplaceAll(ip.String(), ":", "-") + ".sslip.io"
}

// validateApp accepts the app names the commands accept.
func validateApp(app string) error {
	if !appName.MatchString(app) {
		return invalid("app name", app, "use 1 to 31 lowercase letters, digits and dashes, starting with a letter")
	}
	return nil
}

// validateUpstream accepts host:port, the host being a container name,
// network alias or IP address.
func validateUpstream(u string) error {
	const what = "upstream"
	host, port, err := net.SplitHostPort(u)
	if err != nil {
		return invalid(what, u, "want host:port, such as wordpress-app:80")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return invalid(what, u, "the port must be a number from 1 to 65535")
	}
	if _, err := netip.ParseAddr(host); err != nil && !containerHost.MatchString(host) {
		return invalid(what, u, "the host must be a container name, network alias or IP address")
	}
	return nil
}
