package images

import (
	"context"
	"io/fs"
	"path/filepath"
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
		needs:       needsGo,
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

// buildCaddy installs Caddy's own module at its version into dir/caddy.
func buildCaddy(ctx context.Context, r *run, t target, dir string) error {
	return r.goInstall(ctx, "caddy", t, caddyPackage, dir, "caddy", "-trimpath")
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
