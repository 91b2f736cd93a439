package engine

import (
	"errors"
	"fmt"
)

// errTooMuchOutput stops reading a command that printed more than its budget:
// the copy fails, the exec's stream is closed, and the command gets EPIPE.
var errTooMuchOutput = errors.New("printed too much")

// readBudget is how many bytes may still be read of one command's output,
// shared by its stdout and stderr (written one after the other by one copy).
type readBudget struct{ left, total int64 }

func newReadBudget(n int64) *readBudget { return &readBudget{left: n, total: n} }

// take counts n more bytes read, failing once the budget is spent.
func (b *readBudget) take(n int) error {
	b.left -= int64(n)
	if b.left < 0 {
		return fmt.Errorf("%w: more than %s", errTooMuchOutput, sizeText(b.total))
	}
	return nil
}

// capture keeps at most keep bytes of a stream: the first ones (stdout, what
// a verb reads) or the last ones (stderr, where the reason of a failure is),
// reading no more than the budget allows.
type capture struct {
	budget *readBudget
	keep   int
	last   bool
	buf    []byte
}

func (c *capture) Write(p []byte) (int, error) {
	if err := c.budget.take(len(p)); err != nil {
		return 0, err
	}
	switch {
	case !c.last:
		if room := c.keep - len(c.buf); room > 0 {
			c.buf = append(c.buf, p[:min(room, len(p))]...)
		}
	default:
		c.buf = append(c.buf, p...)
		if len(c.buf) > 2*c.keep { // trim now and then, not on every write
			c.buf = append(c.buf[:0], c.buf[len(c.buf)-c.keep:]...)
		}
	}
	return len(p), nil
}

func (c *capture) String() string {
	b := c.buf
	if c.last && len(b) > c.keep {
		b = b[len(b)-c.keep:]
	}
	return string(b)
}

func sizeText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
