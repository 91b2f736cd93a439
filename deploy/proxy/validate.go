package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"

	"github.com/toolbox-collective/toolbox/internal/names"
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

// containerHost is a container name or network alias.
var containerHost = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// nameError is a name that internal/names refuses, as the proxy's ErrInvalid.
type nameError struct{ err error }

func (e *nameError) Error() string   { return "proxy: " + e.err.Error() }
func (e *nameError) Unwrap() []error { return []error{e.err, ErrInvalid} }

func invalidName(err error) error {
	if err == nil {
		return nil
	}
	return &nameError{err}
}

// ValidateDomain accepts the domain names a route can match and a
// certificate can name: the project's one rule, internal/names.Domain.
func ValidateDomain(d string) error { return invalidName(names.Domain(d)) }

// validateApp accepts the app names the commands accept.
func validateApp(app string) error { return invalidName(names.App(app)) }

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
