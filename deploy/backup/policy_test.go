package backup

import (
	"strings"
	"testing"
)

func TestParsePolicy(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Policy
	}{
		{"daily 7 weekly 4 monthly 6", Policy{Daily: 7, Weekly: 4, Monthly: 6}},
		{"Monthly 6 DAILY 7", Policy{Daily: 7, Monthly: 6}},
		{"keep daily 7, weekly 4 and monthly 12", Policy{Daily: 7, Weekly: 4, Monthly: 12}},
		{"daily=7 yearly=3", Policy{Daily: 7, Yearly: 3}},
		{"last 3", Policy{Last: 3}},
		{"days 14 weeks 8 months 24 years 10 latest 2", Policy{Last: 2, Daily: 14, Weekly: 8, Monthly: 24, Yearly: 10}},
		{"  daily\t7\n", Policy{Daily: 7}},
	} {
		got, err := ParsePolicy(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParsePolicy(%q) = %+v, %v, want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParsePolicyErrors(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", "empty"},
		{"keep", "empty"},
		{"daily", "daily needs a number after it"},
		{"daily seven", `daily "seven": want a whole number`},
		{"daily 7 daily 8", "daily is given twice"},
		{"daily 7 days 8", "daily is given twice"},
		{"hourly 24", `"hourly" is not a period`},
		{"7 daily", "a number comes after its period"},
		{"daily 0", "daily 0: want 1 to 9999"},
		{"daily -1", "daily -1: want 1 to 9999"},
		{"weekly 10000", "weekly 10000: want 1 to 9999"},
		{"weekly 99999999999999999999", "want 1 to 9999"},
		{"daily 7.5", `want a whole number`},
		{strings.Repeat("daily 7 ", 40), "too long"},
	} {
		_, err := ParsePolicy(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParsePolicy(%q) = %v, want an error saying %q", tt.in, err, tt.want)
		}
	}
}

func TestPolicyArgs(t *testing.T) {
	p := Policy{Last: 1, Daily: 7, Weekly: 4, Monthly: 6, Yearly: 2}
	got := strings.Join(p.args(), " ")
	if want := "--keep-last 1 --keep-daily 7 --keep-weekly 4 --keep-monthly 6 --keep-yearly 2"; got != want {
		t.Errorf("args() = %q, want %q", got, want)
	}
	if s := p.String(); s != "last 1 daily 7 weekly 4 monthly 6 yearly 2" {
		t.Errorf("String() = %q", s)
	}
}

func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{"daily 7 weekly 4 monthly 6", "keep last 3, yearly=2", "daily", "7 daily", "daily -0", "monthly 0x10", "daily 7 daily 7", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePolicy(s)
		if err != nil {
			if p != (Policy{}) {
				t.Errorf("ParsePolicy(%q) = %+v with error %v, want the zero Policy", s, p, err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "backup: policy") || strings.HasSuffix(msg, ".") {
				t.Errorf("ParsePolicy(%q) error %q: want it to start with \"backup: policy\" and end without a period", s, msg)
			}
			return
		}
		if p.IsZero() || p.validate() != nil {
			t.Errorf("ParsePolicy(%q) = %+v, nil: want a valid policy that keeps something", s, p)
		}
		again, err := ParsePolicy(p.String())
		if err != nil || again != p {
			t.Errorf("ParsePolicy(%q) = %+v, but ParsePolicy(%q) = %+v, %v", s, p, p.String(), again, err)
		}
	})
}
