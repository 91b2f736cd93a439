package images

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// goHowTo says how to get the go command.
const goHowTo = "install Go 1.26 or newer (https://go.dev/dl/; Debian 12's golang package is too old) and put its bin folder on PATH"

// goCommand runs `go args...` in dir with env added to this process's
// environment, returning its standard output. The error carries the end of
// what go said.
func goCommand(ctx context.Context, name, dir string, env []string, args ...string) ([]byte, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("%s is built from source with Go, and `go` is not on PATH: %s", name, goHowTo)
	}
	cmd := exec.CommandContext(ctx, gobin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...) // later values win
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, lastLines(stderr.String(), 30))
	}
	return stdout.Bytes(), nil
}

// goBuild runs a go command that compiles, waiting for a free Go build slot.
func (r *run) goBuild(ctx context.Context, name, dir string, env []string, args ...string) ([]byte, error) {
	select {
	case r.goSlots <- struct{}{}:
	default:
		r.say(name, "waiting for another Go build to finish")
		r.setWaiting(name, true)
		select {
		case r.goSlots <- struct{}{}:
			r.setWaiting(name, false)
			r.say(name, "building")
		case <-ctx.Done():
			r.setWaiting(name, false)
			return nil, ctx.Err()
		}
	}
	defer func() { <-r.goSlots }()
	return goCommand(ctx, name, dir, env, args...)
}

// goInstall installs the command pkg (path@version: go install builds it
// with its module's own go.mod and go.sum, nothing of ours), static, for t,
// with flags, and moves the binary to dir/bin. It waits for a Go build slot.
func (r *run) goInstall(ctx context.Context, name string, t target, pkg, dir, bin string, flags ...string) error {
	work, err := os.MkdirTemp("", "toolbox-"+name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	env := append(staticEnv(t), "GOFLAGS=", "GOWORK=off")
	built := filepath.Join(work, "bin", bin)
	if t.GOOS == runtime.GOOS && t.GOARCH == runtime.GOARCH {
		env = append(env, "GOBIN="+filepath.Dir(built))
	} else {
		// go install refuses GOBIN for another platform; it puts the
		// binary in $GOPATH/bin/GOOS_GOARCH, keeping the module cache.
		modcache, err := goCommand(ctx, name, work, nil, "env", "GOMODCACHE")
		if err != nil {
			return err
		}
		env = append(env, "GOBIN=", "GOPATH="+work, "GOMODCACHE="+strings.TrimSpace(string(modcache)))
		built = filepath.Join(work, "bin", t.GOOS+"_"+t.GOARCH, bin)
	}
	args := append(append([]string{"install"}, flags...), pkg)
	if _, err := r.goBuild(ctx, name, work, env, args...); err != nil {
		return err
	}
	if err := os.Rename(built, filepath.Join(dir, bin)); err != nil {
		return fmt.Errorf("go install left no binary: %w", err)
	}
	return nil
}

// staticEnv is the environment of a static build for t.
func staticEnv(t target) []string {
	return []string{"CGO_ENABLED=0", "GOOS=" + t.GOOS, "GOARCH=" + t.GOARCH}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

func (r *run) setWaiting(name string, w bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.waiting != nil {
		r.waiting[name] = w
	}
}
