package names

import (
	"strings"
	"testing"
)

func TestBaseDomain(t *testing.T) {
	for _, ok := range []string{"localhost", "example.org", "203.0.113.7.sslip.io", "a-b.c9", strings.Repeat("a", 63) + "." + strings.Repeat("b", 63), strings.Repeat("a.", 110) + "b"} {
		if err := BaseDomain(ok); err != nil {
			t.Errorf("BaseDomain(%q) = %v, want nil", ok, err)
		}
	}
	for in, want := range map[string]string{
		"'); system('id'); //":             "give the host name alone",
		"":                                 "it is empty",
		"203.0.113.7":                      "203.0.113.7.sslip.io",
		"::1":                              "IP address",
		"Example.org":                      "lowercase",
		"example.org.":                     "final dot",
		"*.example.org":                    "wildcards",
		"https://example.org":              "without scheme or path",
		"example.org:8443":                 "without a port",
		"ex ample.org":                     "use lowercase letters",
		"-example.org":                     "starts or ends with a dash",
		"example..org":                     "empty label",
		"example.42":                       "ends in a number",
		strings.Repeat("a", 64) + ".org":   "longer than 63",
		strings.Repeat("a.", 111) + "b":    "no room for the apps' names",
		"ex\u00e4mple.org":                 "use lowercase letters",
		"example.org\n define('X', 1); //": "give the host name alone",
		"example.org'); x('":               "use lowercase letters",
	} {
		err := BaseDomain(in)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "is not a base domain") {
			t.Errorf("BaseDomain(%q) = %v, want an error saying %q", in, err, want)
		}
	}
}

// FuzzBaseDomain checks that a base domain accepted makes names that Domain
// accepts too, made of nothing but lowercase letters, digits, dashes and dots.
func FuzzBaseDomain(f *testing.F) {
	for _, s := range []string{"localhost", "example.org", "'); system('id'); //", "1.2.3.4", "a..b", "x.y-", "chat.example.org."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, base string) {
		if BaseDomain(base) != nil {
			return
		}
		for _, app := range []string{"chat", strings.Repeat("w", MaxApp)} {
			if err := Domain(app + "." + base); err != nil {
				t.Errorf("BaseDomain(%q) accepted, but its name %s.%s is refused: %v", base, app, base, err)
			}
		}
		if strings.Trim(base, "abcdefghijklmnopqrstuvwxyz0123456789-.") != "" {
			t.Errorf("BaseDomain(%q) accepted other characters", base)
		}
	})
}
