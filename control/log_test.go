package control

import (
	"bytes"
	"log/slog"
	"sync"
)

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// lockedBuffer is a terminal that jobs and the command write to at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
