package schedule

import (
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Paris and Australia/Lord_Howe where the system has no zoneinfo
)

func load(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{"daily 03:00", "daily 03:00"},
		{"daily 3:00", "daily 03:00"},
		{"  Daily   23:59 ", "daily 23:59"},
		{"DAILY 00:00", "daily 00:00"},
		{"weekly sunday 04:30", "weekly sunday 04:30"},
		{"weekly Sunday 4:30", "weekly sunday 04:30"},
		{"Weekly MONDAY 12:05", "weekly monday 12:05"},
		{"weekly sat 01:00", "weekly saturday 01:00"},
		{"weekly\twed\t22:15", "weekly wednesday 22:15"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got.String() != tt.want {
				t.Errorf("Parse(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{"", `schedule: empty, want "daily HH:MM" or "weekly <weekday> HH:MM"`},
		{"   ", `schedule: empty`},
		{"hourly 03:00", `schedule "hourly 03:00": want "daily HH:MM" or "weekly <weekday> HH:MM"`},
		{"daily", `want "daily HH:MM"`},
		{"daily 03:00 04:00", `want "daily HH:MM"`},
		{"weekly 04:30", `want "daily HH:MM"`},
		{"daily sunday 04:30", `want "daily HH:MM"`},
		{"weekly sundy 04:30", `schedule "weekly sundy 04:30": unknown weekday "sundy", want monday to sunday`},
		{"weekly su 04:30", `unknown weekday "su"`},
		{"daily 24:00", `schedule "daily 24:00": hour 24 is not 00 to 23`},
		{"daily 03:60", `minute 60 is not 00 to 59`},
		{"daily 3", `time "3" is not HH:MM`},
		{"daily 03:0", `time "03:0" is not HH:MM`},
		{"daily 003:00", `is not HH:MM`},
		{"daily 03:00:00", `is not HH:MM`},
		{"daily +3:00", `is not HH:MM`},
		{"daily 3pm", `is not HH:MM`},
		{"daily ３:00", `is not HH:MM`},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want an error containing %q", tt.in, got, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q) error = %q, want it to contain %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestNext(t *testing.T) {
	paris := load(t, "Europe/Paris")
	lordHowe := load(t, "Australia/Lord_Howe") // moves its clock by 30 minutes
	utc := func(s string) time.Time {
		t.Helper()
		tm, err := time.Parse(time.DateTime, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, tt := range []struct {
		name, spec  string
		loc         *time.Location
		after, want string // UTC
	}{
		{"same day", "daily 03:00", paris, "2026-01-10 00:00:00", "2026-01-10 02:00:00"},
		{"strictly after", "daily 03:00", paris, "2026-01-10 02:00:00", "2026-01-11 02:00:00"},
		{"next day", "daily 03:00", paris, "2026-01-10 12:00:00", "2026-01-11 02:00:00"},
		{"summer", "daily 03:00", paris, "2026-07-10 12:00:00", "2026-07-11 01:00:00"},
		{"year end", "daily 00:30", paris, "2026-12-31 23:30:00", "2027-01-01 23:30:00"},
		{"spring forward, in the gap", "daily 02:30", paris, "2026-03-28 12:00:00", "2026-03-29 01:00:00"},
		{"spring forward, start of the gap", "daily 02:00", paris, "2026-03-28 12:00:00", "2026-03-29 01:00:00"},
		{"spring forward, end of the gap", "daily 03:00", paris, "2026-03-28 12:00:00", "2026-03-29 01:00:00"},
		{"after spring forward", "daily 02:30", paris, "2026-03-29 01:00:00", "2026-03-30 00:30:00"},
		{"fall back, first of two", "daily 02:30", paris, "2026-10-24 12:00:00", "2026-10-25 00:30:00"},
		{"fall back, not twice", "daily 02:30", paris, "2026-10-25 00:30:00", "2026-10-26 01:30:00"},
		{"fall back, after the repeat", "daily 03:00", paris, "2026-10-24 12:00:00", "2026-10-25 02:00:00"},
		{"half-hour fall back, first", "daily 01:45", lordHowe, "2026-04-04 00:00:00", "2026-04-04 14:45:00"},
		{"half-hour fall back, not twice", "daily 01:45", lordHowe, "2026-04-04 14:45:00", "2026-04-05 15:15:00"},
		{"half-hour spring forward", "daily 02:15", lordHowe, "2026-10-03 00:00:00", "2026-10-03 15:30:00"},
		{"weekly later this week", "weekly sunday 04:30", paris, "2026-01-07 12:00:00", "2026-01-11 03:30:00"},
		{"weekly same day", "weekly sunday 04:30", paris, "2026-01-11 00:00:00", "2026-01-11 03:30:00"},
		{"weekly a week on", "weekly sunday 04:30", paris, "2026-01-11 03:30:00", "2026-01-18 03:30:00"},
		{"weekly on spring forward", "weekly sunday 02:30", paris, "2026-03-28 00:00:00", "2026-03-29 01:00:00"},
		{"utc", "weekly monday 00:00", time.UTC, "2026-01-11 23:59:59", "2026-01-12 00:00:00"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := Parse(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			after, want := utc(tt.after), utc(tt.want)
			if got := spec.Next(after, tt.loc); !got.Equal(want) {
				t.Errorf("Parse(%q).Next(%v, %v) = %v, want %v", tt.spec, after, tt.loc, got.UTC(), want)
			}
			if got := spec.prev(want, tt.loc); !got.Equal(want) {
				t.Errorf("Parse(%q).prev(%v, %v) = %v, want %v", tt.spec, want, tt.loc, got.UTC(), want)
			}
		})
	}
	if got := (Spec{}).Next(utc("2026-01-01 00:00:00"), paris); !got.IsZero() {
		t.Errorf("Spec{}.Next = %v, want the zero Time", got)
	}
}

// TestNextEveryDay walks a year of daily occurrences in zones with and
// without daylight saving time: one a day, every day.
func TestNextEveryDay(t *testing.T) {
	for _, zone := range []string{"Europe/Paris", "America/New_York", "Australia/Lord_Howe", "UTC"} {
		loc := load(t, zone)
		for _, clock := range []string{"00:00", "01:45", "02:00", "02:30", "03:00", "23:59"} {
			spec, err := Parse("daily " + clock)
			if err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 1, 1, 0, 0, 0, 0, loc).Add(-time.Nanosecond)
			day := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
			for range 365 {
				next := spec.Next(at, loc)
				y, m, d := next.In(loc).Date()
				if wy, wm, wd := day.Date(); y != wy || m != wm || d != wd {
					t.Fatalf("%s daily %s: Next(%v) = %v, want it on %v", zone, clock, at, next, day.Format(time.DateOnly))
				}
				at, day = next, day.AddDate(0, 0, 1)
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"daily 03:00", "weekly sunday 04:30", "weekly Sat 4:05", "daily 24:00", "", "weekly  x 1:1"} {
		f.Add(s, int64(1774746000))
	}
	paris := load(f, "Europe/Paris")
	f.Fuzz(func(t *testing.T, s string, unix int64) {
		spec, err := Parse(s)
		if err != nil {
			// A clear error: about the schedule, one line, no final period,
			// and nothing parsed.
			msg := err.Error()
			if !strings.HasPrefix(msg, "schedule") || strings.ContainsAny(msg, "\n\r") || strings.HasSuffix(msg, ".") || spec != (Spec{}) {
				t.Fatalf("Parse(%q) = %+v, %q: want the zero Spec and a one-line error about the schedule", s, spec, msg)
			}
			return
		}
		if spec.String() == "invalid" {
			t.Fatalf("Parse(%q) = an invalid Spec without an error", s)
		}
		again, err := Parse(spec.String())
		if err != nil || again != spec {
			t.Fatalf("Parse(%q) = %v, but Parse(%q) = %v, %v", s, spec, spec.String(), again, err)
		}
		at := time.Unix(unix%(1<<35), 0) // years 1 to 3058
		next := spec.Next(at, paris)
		if !next.After(at) || next.Sub(at) > 8*24*time.Hour {
			t.Fatalf("Parse(%q).Next(%v) = %v", s, at, next)
		}
		if got := spec.Next(next.Add(-time.Nanosecond), paris); !next.Add(-time.Nanosecond).Before(at) && !got.Equal(next) {
			t.Fatalf("Parse(%q).Next(%v) = %v, want %v", s, next.Add(-time.Nanosecond), got, next)
		}
		if got := spec.prev(next, paris); !got.Equal(next) {
			t.Fatalf("Parse(%q).prev(%v) = %v, want it back", s, next, got)
		}
	})
}
