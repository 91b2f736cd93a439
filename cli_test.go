package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEverySubcommandHelp: each subcommand's -h and --help print its usage on
// stdout and succeed, doing nothing else: no state made, no file written, no
// engine reached, even with a configuration that would not load.
func TestEverySubcommandHelp(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir) // `state backup --help` must not write a file named --help here
	statePath := filepath.Join(dir, "toolbox.db")
	for _, env := range []map[string]string{
		{"TOOLBOX_STATE": statePath, "DOCKER_HOST": "unix:///nonexistent/docker.sock", "TOOLBOX_LISTEN": "127.0.0.1:0"},
		{"TOOLBOX_STATE": statePath, "TOOLBOX_LISTEN": "nope", "TOOLBOX_BASE_DOMAIN": "'); system('id'); //"},
	} {
		for _, c := range subcommands() {
			for _, args := range [][]string{{c.name, "--help"}, {c.name, "-h"}, {c.name, strings.Fields(c.synopsis + " x")[0], "--help"}, {"help", c.name}} {
				var stdout, stderr strings.Builder
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // a verb that ran instead would stop here
				err := run(ctx, args, envOf(env), strings.NewReader(""), &stdout, &stderr)
				cancel()
				want := "Usage: toolbox " + c.name
				if err != nil || !strings.HasPrefix(stdout.String(), want) || stderr.Len() > 0 {
					t.Errorf("toolbox %s = %v, stdout %q, stderr %q; want %q... on stdout alone", strings.Join(args, " "), err, stdout.String(), stderr.String(), want)
				}
			}
		}
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) > 0 {
		t.Errorf("the help wrote %v (%v), want nothing", entries, err)
	}
}

func TestUsageListsEverySubcommand(t *testing.T) {
	var stdout strings.Builder
	if err := run(t.Context(), []string{"help"}, envOf(nil), nil, &stdout, &stdout); err != nil {
		t.Fatal(err)
	}
	for _, c := range subcommands() {
		if !strings.Contains(stdout.String(), "  toolbox "+c.name) {
			t.Errorf("toolbox help does not list %s:\n%s", c.name, stdout.String())
		}
	}
	if err := run(t.Context(), []string{"nope"}, envOf(nil), nil, &stdout, &stdout); err == nil || !strings.Contains(err.Error(), `unknown command "nope"`) {
		t.Errorf("toolbox nope = %v, want an unknown command", err)
	}
}
