package images

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/toolbox-collective/toolbox/deploy/docker"
)

const (
	resticModule  = "github.com/restic/restic"
	resticVersion = "v0.18.1"
	resticPackage = resticModule + "/cmd/restic@" + resticVersion
	// resticTags embeds Go's time zone database: the official image has
	// Alpine's tzdata, and restic reads TZ for snapshot times and for the
	// days and weeks of forget's --keep-daily and --keep-weekly.
	resticTags = "timetzdata"
)

// ResticImage is the restic image the backups run, as the official image
// names it; `toolbox images build restic` makes it where none can be pulled.
const ResticImage = "restic/restic:0.18.1"

// ResticBinary is where the restic image has restic, also its entrypoint.
const ResticBinary = "/usr/bin/restic"

// EnvResticBin is the variable Paths sets to a restic binary of this
// machine's platform, for tests that run restic without a container.
const EnvResticBin = "TOOLBOX_RESTIC_BIN"

func resticRecipe() recipe {
	return recipe{
		Info: Info{
			Name:  "restic",
			Tag:   ResticImage,
			From:  resticPackage + " (CGO_ENABLED=0, -tags " + resticTags + ")",
			Takes: "about 1-3 minutes the first time",
			Needs: "Go and the Go module proxy",
			Lacks: "what the official (Alpine) image adds around the static binary: a shell and BusyBox (this one is FROM scratch: only " + ResticBinary + ", the CA roots, /tmp, /root and root in /etc/passwd), " +
				"openssh-client (no sftp: repositories), fuse (no restic mount), jq; its time zones are Go's embedded database rather than tzdata, and its CA roots are this host's " + caBundlePath + " (none if the host has none)",
			Env: EnvResticBin,
		},
		needs:       needsGo,
		folder:      "restic-" + resticVersion,
		buildLayout: 1,
		inputs: func(context.Context, *run, target) ([]input, error) {
			return []input{text("package", resticPackage), text("CGO_ENABLED", "0"), text("tags", resticTags)}, nil
		},
		build:       buildRestic,
		imageLayout: 2, // 2: passwd, so that HOME is /root
		imageInputs: func() []input { return []input{{"ca-certificates", caBundle()}} },
		image:       resticImage,
		envPath:     "restic",
	}
}

// buildRestic installs restic's own module at its version into dir/restic,
// as restic's release builds do (static, -trimpath, stripped) but without
// the self-update command.
func buildRestic(ctx context.Context, r *run, t target, dir string) error {
	return r.goInstall(ctx, "restic", t, resticPackage, dir, "restic", "-trimpath", "-ldflags=-s -w", "-tags="+resticTags)
}

// resticImage is laid out like the official image where restic looks: the
// binary at /usr/bin/restic as the entrypoint, the CA roots, /tmp, and root's
// home /root (in /etc/passwd, so that the engine sets HOME) for restic's
// cache, ~/.cache/restic.
func resticImage(dir string) ([]docker.Entry, []string, error) {
	es := []docker.Entry{
		dirEntry("usr", 0o755), dirEntry("usr/bin", 0o755),
		{Name: strings.TrimPrefix(ResticBinary, "/"), Mode: 0o755, SourcePath: filepath.Join(dir, "restic")},
		dirEntry("etc", 0o755),
		{Name: "etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/sbin/nologin\n")},
		{Name: "etc/group", Mode: 0o644, Data: []byte("root:x:0:\n")},
		dirEntry("root", 0o700),
		{Name: "tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
	}
	es = append(es, caEntries(caBundle())...)
	return es, []string{`ENTRYPOINT ["` + ResticBinary + `"]`}, nil
}
