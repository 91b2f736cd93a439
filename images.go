package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/host/images"
)

// imagesCommand is `toolbox images build [--env] [name...]`.
func imagesCommand(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "build" {
		return fmt.Errorf("usage: toolbox images build [--env] [--replace] [name...] (names: %v)", images.Names())
	}
	fs := flag.NewFlagSet("images build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := fs.Bool("env", false, "also print, as KEY=VALUE lines, where the tests find the built servers")
	replace := fs.Bool("replace", false, "replace images of the same tag that were not built here (official ones)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	e, err := docker.Connect(ctx, cfg.docker())
	if err != nil {
		return err
	}
	defer e.Close()
	start := time.Now()
	// Progress goes to stderr, so that --env's lines alone are on stdout.
	b := &images.Builder{Engine: e, CacheDir: cfg.CacheDir, Progress: func(line string) { fmt.Fprintln(stderr, line) }, Replace: *replace}
	if err := b.Build(ctx, fs.Args()...); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "images ready in %s\n", time.Since(start).Round(time.Second))
	if !*env {
		return nil
	}
	paths, err := b.Paths(ctx, fs.Args()...)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(paths))
	for k := range paths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(stdout, "%s=%s\n", k, paths[k])
	}
	return nil
}
