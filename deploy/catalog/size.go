package catalog

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// maxSize bounds the sizes the catalog accepts (1 PiB): far above any machine
// the toolbox will run on, and far below an int64 overflow.
const maxSize int64 = 1 << 50

var errSize = errors.New("size must be a number with an optional k, m, g or t suffix, such as 512m or 2.5g")

// parseSize reads a size the way Compose reads mem_limit: a decimal number of
// bytes with an optional binary suffix (k = 1024, m = 1024², g = 1024³,
// t = 1024⁴), upper or lower case. A fraction is allowed when it gives a whole
// number of bytes ("2.5g"). The result is at least 1 byte and at most maxSize.
func parseSize(s string) (int64, error) {
	num := strings.ToLower(s)
	mul := int64(1)
	if n := len(num); n > 0 {
		switch num[n-1] {
		case 'k':
			mul = 1 << 10
		case 'm':
			mul = 1 << 20
		case 'g':
			mul = 1 << 30
		case 't':
			mul = 1 << 40
		}
		if mul != 1 {
			num = num[:n-1]
		}
	}
	whole, frac, hasFrac := strings.Cut(num, ".")
	if whole == "" || !allDigits(whole) || (hasFrac && (frac == "" || !allDigits(frac))) {
		return 0, fmt.Errorf("%q: %w", s, errSize)
	}
	if len(whole) > 16 || len(frac) > 6 {
		return 0, fmt.Errorf("%q: size out of range", s)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, errSize)
	}
	if w > maxSize/mul {
		return 0, fmt.Errorf("%q: size out of range", s)
	}
	n := w * mul
	if hasFrac {
		f, err := strconv.ParseInt(frac, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q: %w", s, errSize)
		}
		div := int64(1)
		for range len(frac) {
			div *= 10
		}
		// f < div <= 1e6 and mul <= 2^40, so f*mul fits in an int64.
		if (f*mul)%div != 0 {
			return 0, fmt.Errorf("%q: not a whole number of bytes", s)
		}
		n += f * mul / div
	}
	if n < 1 || n > maxSize {
		return 0, fmt.Errorf("%q: size out of range", s)
	}
	return n, nil
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// formatSize writes a byte count for people: "512 MiB", "1 GiB", "2.5 GiB".
func formatSize(n int64) string {
	const (
		mib = 1 << 20
		gib = 1 << 30
	)
	switch {
	case n >= gib:
		return trimZero(strconv.FormatFloat(float64(n)/gib, 'f', 1, 64)) + " GiB"
	case n >= mib:
		return trimZero(strconv.FormatFloat(float64(n)/mib, 'f', 0, 64)) + " MiB"
	default:
		return strconv.FormatInt(n, 10) + " B"
	}
}

func trimZero(s string) string {
	return strings.TrimSuffix(s, ".0")
}
