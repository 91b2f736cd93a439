package host

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/deploy/stack"
)

// Down removes the toolbox and its apps from the engine, after a
// confirmation on the terminal unless yes; volumes stay unless purge.
func Down(ctx context.Context, cfg Config, stdin io.Reader, stdout io.Writer, yes, purge bool) error {
	e, err := docker.Connect(ctx, cfg.engine())
	if err != nil {
		return err
	}
	defer e.Close()
	managed := map[string]string{stack.LabelManaged: "1"}
	cs, err := e.Containers(ctx, managed)
	if err != nil {
		return err
	}
	if len(cs) == 0 {
		fmt.Fprintln(stdout, "Nothing of the toolbox runs on this engine.")
	}
	what := "containers (the data is kept)"
	if purge {
		what = "containers AND ALL THEIR DATA"
	}
	if !yes {
		fmt.Fprintf(stdout, "This removes the toolbox's %d %s. Type yes to go on: ", len(cs), what)
		line, _ := bufio.NewReader(stdin).ReadString('\n')
		if strings.TrimSpace(line) != "yes" {
			return errors.New("not confirmed; nothing was removed")
		}
	}
	if purge {
		// The backups' volume is kept, but their key lives in the state,
		// which the purge deletes: it is shown here, the last time it can be.
		if key, err := botExec(ctx, e, "do", "backup key"); err == nil {
			fmt.Fprintf(stdout, "%s\nThe backups are kept; the purge deletes this key with the state. "+
				"To reach them again from a new toolbox, give it back as TOOLBOX_BACKUP_PASSWORD.\n\n", strings.TrimSpace(key))
		} else {
			fmt.Fprintf(stdout, "(the bot does not answer, so the backup key cannot be shown: the kept backups need it)\n")
		}
	}
	var errs []error
	for _, c := range cs {
		if err := e.RemoveContainer(ctx, c.Name); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(stdout, "- removed %s\n", c.Name)
	}
	nets, err := e.Networks(ctx, managed)
	errs = append(errs, err)
	for _, n := range nets {
		errs = append(errs, e.RemoveNetwork(ctx, n))
	}
	if purge {
		vols, err := e.Volumes(ctx, managed)
		errs = append(errs, err)
		backups, err := e.Volumes(ctx, map[string]string{stack.LabelManaged: "1", stack.LabelApp: stack.BackupsApp})
		errs = append(errs, err)
		for _, v := range vols {
			if slices.Contains(backups, v) {
				fmt.Fprintf(stdout, "- kept the backups in the volume %s (docker volume rm %s deletes them, for good)\n", v, v)
				continue
			}
			if err := e.RemoveVolume(ctx, v); err != nil {
				errs = append(errs, err)
				continue
			}
			fmt.Fprintf(stdout, "- deleted the volume %s\n", v)
		}
	}
	return errors.Join(errs...)
}
