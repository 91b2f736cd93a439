package names

import (
	"errors"
	"fmt"
	"net/netip"
)

// MaxBase is the longest base domain: an app name of MaxApp characters and
// its dot still fit in MaxDomain.
const MaxBase = MaxDomain - MaxApp - 1

// BaseDomain accepts the domain under which apps get their default names
// (<app>.<base>, the chat chat.<base>): every such name passes Domain. Unlike
// a domain it may be one label, like localhost. An IP address is refused with
// the sslip.io name that resolves to it.
func BaseDomain(base string) error {
	fail := func(why string) error { return &Error{What: "a base domain", Name: base, Why: why} }
	if ip, err := netip.ParseAddr(base); err == nil {
		return fail("it is an IP address; certificates need a name, such as " + sslip(ip))
	}
	switch {
	case base == "":
		return fail("it is empty; " + domainRule)
	case len(base) > MaxBase:
		return fail(fmt.Sprintf("it is longer than %d characters, which leaves no room for the apps' names", MaxBase))
	}
	// The shortest name made from it says what is wrong with the base itself:
	// the reasons of Domain name no label in particular.
	var e *Error
	if err := Domain("chat." + base); errors.As(err, &e) {
		return fail(e.Why)
	}
	return nil
}
