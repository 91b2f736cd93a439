package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/state"
)

// ErrFailed says that a command run from the terminal failed; what failed has
// been printed already.
var ErrFailed = errors.New("the command failed")

// LocalRouter is what RunHere needs of the router.
type LocalRouter interface {
	Router
	NeedsConfirmation(text string) bool
}

// RunHere runs text as the operator when no server holds the state: it asks
// for confirmation on the terminal unless yes, and waits for the jobs it
// starts, whose progress TerminalChat prints.
func RunHere(ctx context.Context, router LocalRouter, st Store, text string, yes bool, stdin io.Reader, stdout io.Writer) error {
	// No server runs on this state: a job still marked running died with its process.
	if _, err := router.Jobs().Recover(ctx); err != nil {
		return err
	}
	if !yes && router.NeedsConfirmation(text) {
		fmt.Fprintf(stdout, "%q asks for confirmation. Type yes to go on: ", text)
		line, _ := bufio.NewReader(stdin).ReadString('\n')
		if strings.TrimSpace(line) != "yes" {
			return errors.New("not confirmed; nothing was done")
		}
		yes = true
	}
	reply := router.Handle(ctx, commands.Request{Caller: commands.Caller{UserName: "operator", Terminal: true}, Text: text, Confirmed: yes})
	fmt.Fprintln(stdout, reply.Text)
	router.Jobs().Wait()
	failed := reply.Failed
	if reply.JobID != 0 {
		job, err := st.Job(reply.JobID)
		failed = err != nil || job.Status != state.JobSucceeded
	}
	if failed {
		return ErrFailed
	}
	return nil
}

// TerminalChat prints what the bot would post.
type TerminalChat struct {
	W  io.Writer
	mu sync.Mutex // jobs post from their own goroutines
	n  int
}

var _ commands.Chat = (*TerminalChat)(nil)

func (t *TerminalChat) Post(_ context.Context, _ string, text string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n++
	fmt.Fprintln(t.W, text)
	return fmt.Sprint(t.n), nil
}

func (t *TerminalChat) Edit(_ context.Context, _ string, text string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintln(t.W, text)
	return nil
}

func (t *TerminalChat) AskConfirmation(context.Context, string, string, string) (string, error) {
	return "", errors.New("confirmations are answered with --yes on the terminal")
}
