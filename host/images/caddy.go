package images

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/toolbox-collective/toolbox/deploy/docker"
)

const (
	caddyModule  = "github.com/caddyserver/caddy/v2"
	caddyVersion = "v2.11.9"
	caddyPackage = caddyModule + "/cmd/caddy@" + caddyVersion
)

// caddyfile is the official image's default configuration, minus its
// welcome page: up and the tests give Caddy their own.
const caddyfile = `# The default configuration of the locally built Caddy image.
:80 {
	respond "Caddy works"
}
`

func caddyRecipe() recipe {
	return recipe{
		Info: Info{
			Name:    "caddy",
			Tag:     "caddy:" + strings.TrimPrefix(caddyVersion, "v"),
			From:    caddyPackage,
			Takes:   "about 2-3 minutes the first time",
			Needs:   "Go and the Go module proxy",
			Lacks:   "what the official image adds around the same static binary: a shell and BusyBox (this one is FROM scratch), mailcap's MIME types and the welcome page; its CA roots are this host's " + caBundlePath + " (none if the host has none)",
			Default: true,
			Env:     "TOOLBOX_CADDY_BIN",
		},
		folder:      "caddy-" + caddyVersion,
		buildLayout: 1,
		inputs: func(context.Context, *run, target) ([]input, error) {
			return []input{text("package", caddyPackage), text("CGO_ENABLED", "0")}, nil
		},
		build:       buildCaddy,
		imageLayout: 1,
		imageInputs: func() []input {
			return []input{text("Caddyfile", caddyfile), {"ca-certificates", caBundle()}}
		},
		image:   caddyImage,
		envPath: "caddy",
	}
}

// buildCaddy installs Caddy's own module at its version (go install
// pkg@version: its go.mod and go.sum, nothing of ours) into dir/caddy.
func buildCaddy(ctx context.Context, r *run, t target, dir string) error {
	work, err := os.MkdirTemp("", "toolbox-caddy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	env := append(staticEnv(t), "GOFLAGS=", "GOWORK=off")
	bin := filepath.Join(work, "bin", "caddy")
	if t.GOOS == runtime.GOOS && t.GOARCH == runtime.GOARCH {
		env = append(env, "GOBIN="+filepath.Dir(bin))
	} else {
		// go install refuses GOBIN for another platform; it puts the
		// binary in $GOPATH/bin/GOOS_GOARCH, keeping the module cache.
		modcache, err := goCommand(ctx, "caddy", work, nil, "env", "GOMODCACHE")
		if err != nil {
			return err
		}
		env = append(env, "GOBIN=", "GOPATH="+work, "GOMODCACHE="+strings.TrimSpace(string(modcache)))
		bin = filepath.Join(work, "bin", t.GOOS+"_"+t.GOARCH, "caddy")
	}
	if _, err := r.goBuild(ctx, "caddy", work, env, "install", "-trimpath", caddyPackage); err != nil {
		return err
	}
	if err := os.Rename(bin, filepath.Join(dir, "caddy")); err != nil {
		return fmt.Errorf("go install left no binary: %w", err)
	}
	return nil
}

// caddyImage is laid out like the official image: the binary at
// /usr/bin/caddy, no entrypoint, a command that names the binary, Caddy's
// configuration and data folders at /config and /data.
func caddyImage(dir string) ([]docker.Entry, []string, error) {
	es := []docker.Entry{
		dirEntry("usr", 0o755), dirEntry("usr/bin", 0o755),
		{Name: "usr/bin/caddy", Mode: 0o755, SourcePath: filepath.Join(dir, "caddy")},
		dirEntry("etc", 0o755), dirEntry("etc/caddy", 0o755),
		{Name: "etc/caddy/Caddyfile", Mode: 0o644, Data: []byte(caddyfile)},
		dirEntry("config", 0o755), dirEntry("data", 0o755), dirEntry("srv", 0o755),
		{Name: "tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
	}
	es = append(es, caEntries(caBundle())...)
	changes := []string{
		`CMD ["/usr/bin/caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]`,
		"ENV XDG_CONFIG_HOME=/config", "ENV XDG_DATA_HOME=/data",
		"WORKDIR /srv", "EXPOSE 80 443 443/udp 2019",
	}
	return es, changes, nil
}
