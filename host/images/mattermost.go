package images

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/toolbox-collective/toolbox/deploy/docker"
)

const mattermostModule = "github.com/mattermost/mattermost/server/v8"

func mattermostRecipe(tag string) recipe {
	return recipe{
		Info: Info{
			Name:  "mattermost",
			Tag:   tag,
			From:  "Mattermost 11.4.0 server and mmctl from " + mattermostModule + " (the recipe in host/images/mattermost)",
			Takes: "about 4-6 minutes the first time",
			Needs: "Go and the Go module proxy",
			Lacks: "the web app, which needs Node.js and npm to build: browsers and the desktop app get no chat, only the API, mmctl and the mobile apps work; " +
				"the prepackaged plugins (Playbooks, Calls, ...); the server is 11.4.0 under the catalog's tag, runs as root rather than user 2000, and its CA roots are this host's " + caBundlePath,
			Default: true,
			Env:     "TOOLBOX_MATTERMOST_DIR",
		},
		needs:       needsGo,
		folder:      "mattermost",
		buildLayout: 1,
		inputs: func(context.Context, *run, target) ([]input, error) {
			return []input{
				{"go.mod", recipeFile("mattermost/go.mod.txt")},
				{"go.sum", recipeFile("mattermost/go.sum.txt")},
				{"main.go", recipeFile("mattermost/main.go.txt")},
				text("commands", "mattermost mmctl"),
				text("CGO_ENABLED", "0"),
			}, nil
		},
		build:       buildMattermost,
		imageLayout: 2, // 2: passwd, HOME
		imageInputs: func() []input { return []input{{"ca-certificates", caBundle()}} },
		image:       mattermostImage,
	}
}

// buildMattermost builds the server and mmctl (the catalog's health check
// runs it) into dir/bin, with the server's i18n, templates and fonts beside
// them, as the official distribution has them: dir is what
// TOOLBOX_MATTERMOST_DIR names for internal/mmtest.
func buildMattermost(ctx context.Context, r *run, t target, dir string) error {
	work, err := os.MkdirTemp("", "toolbox-mattermost-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	for src, dst := range map[string]string{"go.mod.txt": "go.mod", "go.sum.txt": "go.sum", "main.go.txt": "main.go"} {
		if err := os.WriteFile(filepath.Join(work, dst), recipeFile("mattermost/"+src), 0o644); err != nil {
			return err
		}
	}
	// The recipe's pseudo-versions of the Mattermost modules are served by
	// the module proxy but unknown to the checksum database, so GONOSUMDB
	// skips the database for those modules alone (go.sum still pins every
	// hash). -mod=mod lets go record in the temporary go.mod and go.sum what
	// building mmctl needs beyond main.go's import, instead of refusing.
	env := append(staticEnv(t), "GONOSUMDB=github.com/mattermost/mattermost", "GOFLAGS=-mod=mod", "GOWORK=off")
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	// One go build for both: they share most of their packages.
	if _, err := r.goBuild(ctx, "mattermost", work, env, "build", "-trimpath", "-o", bin+string(filepath.Separator),
		mattermostModule+"/cmd/mattermost", mattermostModule+"/cmd/mmctl"); err != nil {
		return err
	}
	out, err := goCommand(ctx, "mattermost", work, env, "list", "-m", "-f", "{{.Dir}}", mattermostModule)
	if err != nil {
		return err
	}
	src := strings.TrimSpace(string(out))
	for _, d := range []string{"i18n", "templates", "fonts"} {
		// CopyFS makes the files writable; the module cache's are not.
		if err := os.CopyFS(filepath.Join(dir, d), os.DirFS(filepath.Join(src, d))); err != nil {
			return fmt.Errorf("copy the server's %s: %w", d, err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "config"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config", "config.json"), []byte("{}\n"), 0o644)
}

// mattermostImage lays the server out as the official image does:
// /mattermost/bin/{mattermost,mmctl} and its resources, local mode's socket
// folder, working directory /mattermost.
func mattermostImage(dir string) ([]docker.Entry, []string, error) {
	// mmctl looks up the current user, as on the official (distroless) image.
	passwd := "root:x:0:0:root:/root:/sbin/nologin\nmattermost:x:2000:2000::/mattermost:/sbin/nologin\n"
	group := "root:x:0:\nmattermost:x:2000:\n"
	es := []docker.Entry{
		dirEntry("etc", 0o755),
		{Name: "etc/passwd", Mode: 0o644, Data: []byte(passwd)},
		{Name: "etc/group", Mode: 0o644, Data: []byte(group)},
	}
	es = append(es, caEntries(caBundle())...)
	for _, d := range []string{"tmp", "var", "var/tmp", "mattermost", "mattermost/bin", "mattermost/config", "mattermost/data",
		"mattermost/logs", "mattermost/plugins", "mattermost/client", "mattermost/client/plugins"} {
		es = append(es, docker.Entry{Name: d, Mode: fs.ModeDir | fs.ModeSticky | 0o777})
	}
	for _, b := range []string{"mattermost", "mmctl"} {
		es = append(es, docker.Entry{Name: "mattermost/bin/" + b, Mode: 0o755, SourcePath: filepath.Join(dir, "bin", b)})
	}
	for _, d := range []string{"i18n", "templates", "fonts"} {
		tree, err := docker.TreeEntries(filepath.Join(dir, d), "mattermost/"+d, nil)
		if err != nil {
			return nil, nil, err
		}
		es = append(es, rootOwned(tree)...)
	}
	changes := []string{`WORKDIR /mattermost`, `ENTRYPOINT ["/mattermost/bin/mattermost"]`, `ENV PATH=/mattermost/bin`, `ENV HOME=/mattermost`, `EXPOSE 8065`}
	return es, changes, nil
}
