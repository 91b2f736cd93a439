package backup

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Policy says which snapshots Forget keeps, as restic's --keep-* options:
// the latest snapshot of each of the last Daily days that have one, of the
// last Weekly weeks, and so on; a snapshot kept by one rule is kept. Zero
// fields keep nothing by themselves.
type Policy struct {
	Last    int // the Last latest snapshots
	Daily   int
	Weekly  int
	Monthly int
	Yearly  int
}

// MaxKeep bounds each count of a Policy.
const MaxKeep = 9999

// IsZero reports whether p keeps nothing.
func (p Policy) IsZero() bool { return p == Policy{} }

// rules are a Policy's fields as people name them, in String's order.
func (p *Policy) rules() []struct {
	name  string
	n     *int
	alias []string
} {
	return []struct {
		name  string
		n     *int
		alias []string
	}{
		{"last", &p.Last, []string{"latest"}},
		{"daily", &p.Daily, []string{"day", "days"}},
		{"weekly", &p.Weekly, []string{"week", "weeks"}},
		{"monthly", &p.Monthly, []string{"month", "months"}},
		{"yearly", &p.Yearly, []string{"year", "years"}},
	}
}

// String is the policy as ParsePolicy reads it: "daily 7 weekly 4 monthly
// 6"; "" for the zero Policy.
func (p Policy) String() string {
	var parts []string
	for _, r := range p.rules() {
		if *r.n != 0 {
			parts = append(parts, r.name+" "+strconv.Itoa(*r.n))
		}
	}
	return strings.Join(parts, " ")
}

func (p Policy) validate() error {
	for _, r := range p.rules() {
		if *r.n < 0 || *r.n > MaxKeep {
			return fmt.Errorf("backup: policy: %s %d: want 1 to %d", r.name, *r.n, MaxKeep)
		}
	}
	return nil
}

// policyExample is what the errors suggest.
const policyExample = `"daily 7 weekly 4 monthly 6"`

// ParsePolicy reads a policy as people type it: "daily 7 weekly 4 monthly
// 6", in any order, case-insensitive, with commas, "keep" and "daily=7"
// allowed ("keep daily 7, weekly 4"). Periods are last, daily, weekly,
// monthly and yearly (and their plurals: "days 7"). Its errors say what is
// wrong, for people.
func ParsePolicy(s string) (Policy, error) {
	var p Policy
	if len(s) > 200 {
		return p, errors.New("backup: policy: too long: say what to keep, e.g. " + policyExample)
	}
	fields := strings.FieldsFunc(strings.ToLower(s), func(c rune) bool {
		return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == ';' || c == '=' || c == ':'
	})
	var words []string
	for _, f := range fields {
		if f != "keep" && f != "and" {
			words = append(words, f)
		}
	}
	if len(words) == 0 {
		return p, errors.New("backup: policy: empty: say what to keep, e.g. " + policyExample)
	}
	seen := map[string]bool{}
	rules := p.rules()
	for i := 0; i < len(words); i++ {
		w := words[i]
		var rule *struct {
			name  string
			n     *int
			alias []string
		}
		for j := range rules {
			if w == rules[j].name || containsString(rules[j].alias, w) {
				rule = &rules[j]
			}
		}
		if rule == nil {
			if _, err := strconv.Atoi(w); err == nil {
				return Policy{}, fmt.Errorf("backup: policy: %s: a number comes after its period, e.g. %s", w, policyExample)
			}
			return Policy{}, fmt.Errorf("backup: policy: %q is not a period: say last, daily, weekly, monthly or yearly, e.g. %s", w, policyExample)
		}
		if seen[rule.name] {
			return Policy{}, fmt.Errorf("backup: policy: %s is given twice", rule.name)
		}
		seen[rule.name] = true
		if i+1 == len(words) {
			return Policy{}, fmt.Errorf("backup: policy: %s needs a number after it, e.g. %q", rule.name, rule.name+" 7")
		}
		i++
		n, err := strconv.Atoi(words[i])
		switch {
		case err != nil && strings.TrimLeft(words[i], "+-0123456789") == "" && words[i] != "":
			return Policy{}, fmt.Errorf("backup: policy: %s %s: want 1 to %d", rule.name, words[i], MaxKeep)
		case err != nil:
			return Policy{}, fmt.Errorf("backup: policy: %s %q: want a whole number, e.g. %q", rule.name, words[i], rule.name+" 7")
		case n < 1 || n > MaxKeep:
			return Policy{}, fmt.Errorf("backup: policy: %s %d: want 1 to %d", rule.name, n, MaxKeep)
		}
		*rule.n = n
	}
	return p, nil
}
