package images

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	standincatalog "github.com/toolbox-collective/toolbox/internal/standin/catalog"
)

const (
	toolboxModule   = "github.com/toolbox-collective/toolbox"
	standinPackage  = "./internal/standin"
	errNoSourceHint = "the stand-in app is built from the toolbox's source, and this toolbox runs without it: run it from inside a checkout of " + toolboxModule
)

func standinRecipe() recipe {
	return recipe{
		Info: Info{
			Name:  "standin",
			Tag:   standincatalog.Image,
			From:  toolboxModule + "/internal/standin, with go build from the toolbox's source",
			Takes: "a few seconds",
			Needs: "Go and the toolbox's source tree (a checkout of its repository)",
			Lacks: "nothing: it is the tests' stand-in for a catalog app, made only here",
		},
		needs:       []need{needGo, needSource},
		folder:      "standin",
		buildLayout: 1,
		inputs:      standinInputs,
		build:       buildStandin,
		imageLayout: 1,
		imageInputs: func() []input { return nil },
		image: func(dir string) ([]docker.Entry, []string, error) {
			es := []docker.Entry{{Name: "standin", Mode: 0o755, SourcePath: filepath.Join(dir, "standin")}}
			return es, []string{`ENTRYPOINT ["/standin"]`, "LABEL toolbox.test=1"}, nil
		},
	}
}

// standinInputs are the stand-in's source: the toolbox's go.mod and go.sum,
// the Go version and every file of the toolbox's own packages it is built
// from.
func standinInputs(ctx context.Context, r *run, t target) ([]input, error) {
	mod, err := r.module()
	if err != nil {
		return nil, err
	}
	version, err := goCommand(ctx, "standin", mod, nil, "env", "GOVERSION")
	if err != nil {
		return nil, err
	}
	ins := []input{{"go version", bytes.TrimSpace(version)}}
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(mod, f))
		if err != nil {
			return nil, err
		}
		ins = append(ins, input{f, b})
	}
	out, err := goCommand(ctx, "standin", mod, staticEnv(t), "list", "-deps", "-json=Dir,GoFiles,EmbedFiles,Module", standinPackage)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			Dir                 string
			GoFiles, EmbedFiles []string
			Module              *struct{ Main bool }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list: %w", err)
		}
		if p.Module == nil || !p.Module.Main {
			continue // the standard library and go.sum's modules: pinned above
		}
		for _, f := range append(p.GoFiles, p.EmbedFiles...) {
			path := filepath.Join(p.Dir, f)
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			rel, _ := filepath.Rel(mod, path)
			ins = append(ins, input{filepath.ToSlash(rel), b})
		}
	}
	return ins, nil
}

func buildStandin(ctx context.Context, r *run, t target, dir string) error {
	mod, err := r.module()
	if err != nil {
		return err
	}
	_, err = r.goBuild(ctx, "standin", mod, staticEnv(t), "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, "standin"), standinPackage)
	return err
}

// module finds the toolbox's source tree: moduleDir if set, else the first
// folder from the working directory up whose go.mod declares the toolbox's
// module.
func (r *run) module() (string, error) {
	if r.moduleDir != "" {
		abs, err := filepath.Abs(r.moduleDir)
		if err != nil {
			return "", err
		}
		if modulePath(filepath.Join(abs, "go.mod")) != toolboxModule {
			return "", fmt.Errorf("%s is not the toolbox's source tree (its go.mod does not declare %s)", abs, toolboxModule)
		}
		return abs, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("%s: %w", errNoSourceHint, err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if modulePath(filepath.Join(d, "go.mod")) == toolboxModule {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%s (no go.mod of %s in %s or above)", errNoSourceHint, toolboxModule, wd)
		}
	}
}

// modulePath is the module a go.mod declares, "" if none.
func modulePath(gomod string) string {
	f, err := os.Open(gomod)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module"); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}
