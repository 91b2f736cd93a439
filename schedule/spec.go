package schedule

import (
	"fmt"
	"strings"
	"time"
)

// A Spec is when a job runs: every day, or every week on one weekday, at a
// wall-clock time in the scheduler's time zone. The zero Spec is invalid; get
// one from Parse.
type Spec struct {
	weekly  bool
	weekday time.Weekday
	hour    int
	minute  int
	valid   bool
}

const syntax = `"daily HH:MM" or "weekly <weekday> HH:MM"`

// Parse reads a schedule written by people: "daily 03:00" or
// "weekly sunday 04:30". Words are case-insensitive, weekdays are English
// (full or three letters), the time is 24-hour with two-digit minutes.
// Every error it returns is about the text and reads as a sentence fragment
// for the person who wrote it.
func Parse(s string) (Spec, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return Spec{}, fmt.Errorf("schedule: empty, want %s", syntax)
	}
	var sp Spec
	var clock string
	switch kind := strings.ToLower(f[0]); {
	case kind == "daily" && len(f) == 2:
		clock = f[1]
	case kind == "weekly" && len(f) == 3:
		wd, ok := weekday(f[1])
		if !ok {
			return Spec{}, fmt.Errorf("schedule %q: unknown weekday %q, want monday to sunday", s, f[1])
		}
		sp.weekly, sp.weekday, clock = true, wd, f[2]
	default:
		return Spec{}, fmt.Errorf("schedule %q: want %s", s, syntax)
	}
	h, m, ok := strings.Cut(clock, ":")
	hour, okh := number(h, 1, 2)
	minute, okm := number(m, 2, 2)
	switch {
	case !ok || !okh || !okm:
		return Spec{}, fmt.Errorf("schedule %q: time %q is not HH:MM", s, clock)
	case hour > 23:
		return Spec{}, fmt.Errorf("schedule %q: hour %d is not 00 to 23", s, hour)
	case minute > 59:
		return Spec{}, fmt.Errorf("schedule %q: minute %d is not 00 to 59", s, minute)
	}
	sp.hour, sp.minute, sp.valid = hour, minute, true
	return sp, nil
}

// number parses between min and max ASCII digits, nothing else.
func number(s string, min, max int) (int, bool) {
	if len(s) < min || len(s) > max {
		return 0, false
	}
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func weekday(s string) (time.Weekday, bool) {
	s = strings.ToLower(s)
	for d := time.Sunday; d <= time.Saturday; d++ {
		name := strings.ToLower(d.String())
		if s == name || s == name[:3] {
			return d, true
		}
	}
	return 0, false
}

// String returns the canonical text of s, which Parse reads back:
// "daily 03:00", "weekly sunday 04:30".
func (s Spec) String() string {
	switch {
	case !s.valid:
		return "invalid"
	case s.weekly:
		return fmt.Sprintf("weekly %s %02d:%02d", strings.ToLower(s.weekday.String()), s.hour, s.minute)
	}
	return fmt.Sprintf("daily %02d:%02d", s.hour, s.minute)
}

// Next returns the first occurrence of s strictly after after, with the
// wall-clock time read in loc (nil means time.Local). On a day the clock
// skips the time (spring forward), the occurrence is the first instant after
// the skip; on a day the clock shows it twice (fall back), it is the first of
// the two. Each day has at most one occurrence. Next of the zero Spec is the
// zero Time.
func (s Spec) Next(after time.Time, loc *time.Location) time.Time {
	return s.find(after, loc, 1)
}

// prev returns the last occurrence of s at or before at.
func (s Spec) prev(at time.Time, loc *time.Location) time.Time {
	return s.find(at, loc, -1)
}

// find walks days from at's date in direction dir (1 or -1) for the first
// occurrence after at (dir 1) or at or before it (dir -1).
func (s Spec) find(at time.Time, loc *time.Location, dir int) time.Time {
	if !s.valid {
		return time.Time{}
	}
	if loc == nil {
		loc = time.Local
	}
	y, m, d := at.In(loc).Date()
	for i := 0; i <= 8; i++ {
		// Noon UTC only normalises the date; the weekday does not depend on the zone.
		day := time.Date(y, m, d+dir*i, 12, 0, 0, 0, time.UTC)
		if s.weekly && day.Weekday() != s.weekday {
			continue
		}
		t := occurrence(day, s.hour, s.minute, loc)
		if dir > 0 && t.After(at) || dir < 0 && !t.After(at) {
			return t
		}
	}
	panic("schedule: no occurrence within 9 days") // unreachable: every week has the weekday
}

// occurrence returns the first instant of the given date in loc whose clock
// reads hour:minute or, if the clock skips that time, the instant it skips it.
func occurrence(day time.Time, hour, minute int, loc *time.Location) time.Time {
	y, m, d := day.Date()
	t := time.Date(y, m, d, hour, minute, 0, 0, loc)
	if t.Hour() != hour || t.Minute() != minute {
		// In a gap: time.Date put t on one side of the transition; the
		// transition is where t's zone starts or ends.
		start, end := t.ZoneBounds()
		wall := time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), 0, 0, time.UTC)
		if wall.After(time.Date(y, m, d, hour, minute, 0, 0, time.UTC)) {
			return start
		}
		return end
	}
	// The clock may show this time twice; if so, take the earlier one.
	if start, _ := t.ZoneBounds(); !start.IsZero() {
		_, before := start.Add(-time.Nanosecond).Zone()
		if _, now := t.Zone(); before > now {
			e := t.Add(-time.Duration(before-now) * time.Second)
			if e.Hour() == hour && e.Minute() == minute && e.Day() == d {
				return e
			}
		}
	}
	return t
}
