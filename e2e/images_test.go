package e2e

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

// The images the catalog and `toolbox up` name, built here from real
// components because no registry can be reached: Caddy from its Go module,
// Mattermost from the recipe in e2e/mattermost, PostgreSQL from Debian.
const (
	caddyImage      = "caddy:2.11.9"
	mattermostImage = "mattermost/mattermost-team-edition:11.11.1"
	postgresImage   = "postgres:17.10"
)

// need returns the environment variable key, or stops the test saying how to get it.
func need(t *testing.T, key, how string) string {
	t.Helper()
	v := os.Getenv(key)
	if v == "" {
		msg := fmt.Sprintf("%s is not set: %s (bash .ci/run does it)", key, how)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return v
}

func fileHash(t *testing.T, h io.Writer, paths ...string) {
	t.Helper()
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// current reports whether tag exists with the content hash hash.
func current(t *testing.T, e *docker.Engine, tag, hash string) bool {
	img, err := e.Image(context.Background(), tag)
	return err == nil && img.Labels[dockertest.LabelContentHash] == hash
}

func buildCaddyImage(t *testing.T, e *docker.Engine) {
	t.Helper()
	bin := need(t, "TOOLBOX_CADDY_BIN", "build Caddy with CGO_ENABLED=0 go install github.com/caddyserver/caddy/v2/cmd/caddy@v2.11.9")
	h := sha256.New()
	fileHash(t, h, bin)
	h.Write([]byte("no entrypoint"))
	hash := hex.EncodeToString(h.Sum(nil))
	if current(t, e, caddyImage, hash) {
		return
	}
	files := map[string]docker.FileSpec{
		"usr/bin/caddy": {SourcePath: bin, Mode: 0o755},
		"tmp/.keep":     {Data: []byte{}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Like the official image: no entrypoint, the command names the binary.
	if err := e.BuildScratchImage(ctx, caddyImage, files, nil, map[string]string{dockertest.LabelContentHash: hash}); err != nil {
		t.Fatal(err)
	}
}

// importTar streams a tar made by write into the engine as tag.
func importTar(t *testing.T, e *docker.Engine, tag, hash string, changes []string, write func(*tar.Writer) error) {
	t.Helper()
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := write(tw)
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	changes = append(changes, "LABEL "+dockertest.LabelContentHash+"="+hash)
	if err := e.ImportImage(ctx, tag, pr, changes); err != nil {
		pr.CloseWithError(err)
		t.Fatal(err)
	}
}

// addTree puts the files under src into the tar at dst.
func addTree(tw *tar.Writer, src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		name := filepath.ToSlash(filepath.Join(dst, rel))
		info, err := os.Stat(p) // follows links: the build may link its folders
		if err != nil {
			return err
		}
		if info.IsDir() {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755})
		}
		return addFile(tw, p, name, int64(info.Mode().Perm()))
	})
}

func addFile(tw *tar.Writer, src, name string, mode int64) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: info.Size()}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// buildMattermostImage lays the recipe's server out as the official image
// does: /mattermost/bin/{mattermost,mmctl} and its resources, local mode's
// socket folder, working directory /mattermost.
func buildMattermostImage(t *testing.T, e *docker.Engine) {
	t.Helper()
	dir := need(t, "TOOLBOX_MATTERMOST_DIR", "build Mattermost with e2e/mattermost/build.sh")
	mmctl := filepath.Join(dir, "bin", "mmctl")
	if _, err := os.Stat(mmctl); err != nil {
		t.Fatalf("%s: the image's health check needs mmctl; .ci/run builds it beside the server", mmctl)
	}
	h := sha256.New()
	fileHash(t, h, filepath.Join(dir, "bin", "mattermost"), mmctl)
	h.Write([]byte("layout 2: passwd, HOME")) // change when the layout below changes
	hash := hex.EncodeToString(h.Sum(nil))
	if current(t, e, mattermostImage, hash) {
		return
	}
	changes := []string{`WORKDIR /mattermost`, `ENTRYPOINT ["/mattermost/bin/mattermost"]`, `ENV PATH=/mattermost/bin`, `ENV HOME=/mattermost`, `EXPOSE 8065`}
	importTar(t, e, mattermostImage, hash, changes, func(tw *tar.Writer) error {
		// mmctl looks up the current user, as on the official (distroless) image.
		passwd := []byte("root:x:0:0:root:/root:/sbin/nologin\nmattermost:x:2000:2000::/mattermost:/sbin/nologin\n")
		group := []byte("root:x:0:\nmattermost:x:2000:\n")
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755}); err != nil {
			return err
		}
		for name, data := range map[string][]byte{"etc/passwd": passwd, "etc/group": group} {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data))}); err != nil {
				return err
			}
			if _, err := tw.Write(data); err != nil {
				return err
			}
		}
		for _, d := range []string{"tmp/", "var/", "var/tmp/", "mattermost/", "mattermost/bin/", "mattermost/config/", "mattermost/data/", "mattermost/logs/", "mattermost/plugins/", "mattermost/client/", "mattermost/client/plugins/"} {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o1777}); err != nil {
				return err
			}
		}
		for _, b := range []string{"mattermost", "mmctl"} {
			if err := addFile(tw, filepath.Join(dir, "bin", b), "mattermost/bin/"+b, 0o755); err != nil {
				return err
			}
		}
		for _, d := range []string{"i18n", "templates", "fonts"} {
			if err := addTree(tw, filepath.Join(dir, d), "mattermost/"+d); err != nil {
				return err
			}
		}
		return nil
	})
}

// buildPostgresImage imports Debian's PostgreSQL (a debootstrap root file
// system) with an entrypoint that behaves like the official image's.
func buildPostgresImage(t *testing.T, e *docker.Engine) {
	t.Helper()
	rootfs := need(t, "TOOLBOX_PG_ROOTFS", "debootstrap --variant=minbase --include=postgresql bookworm DIR")
	script, err := os.ReadFile("testdata/postgres-entrypoint.sh")
	if err != nil {
		t.Fatal(err)
	}
	stamp, err := os.Stat(filepath.Join(rootfs, "usr/lib/postgresql"))
	if err != nil {
		t.Fatalf("%s holds no PostgreSQL: %v", rootfs, err)
	}
	h := sha256.New()
	h.Write(script)
	fmt.Fprint(h, rootfs, stamp.ModTime().UnixNano())
	hash := hex.EncodeToString(h.Sum(nil))
	if current(t, e, postgresImage, hash) {
		return
	}
	versions, _ := filepath.Glob(filepath.Join(rootfs, "usr/lib/postgresql/*/bin"))
	if len(versions) == 0 {
		t.Fatalf("no PostgreSQL binaries under %s", rootfs)
	}
	pgbin := "/" + strings.TrimPrefix(filepath.ToSlash(strings.TrimPrefix(versions[0], rootfs)), "/")
	changes := []string{
		`ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]`, `CMD ["postgres"]`,
		"ENV PATH=" + pgbin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"ENV PGDATA=/var/lib/postgresql/data", "EXPOSE 5432",
	}
	importTar(t, e, postgresImage, hash, changes, func(tw *tar.Writer) error {
		// The root file system as tar makes it (owners, links, modes kept),
		// then the entrypoint.
		cmd := exec.Command("tar", "-C", rootfs, "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*", "-cf", "-", ".")
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		tr := tar.NewReader(out)
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if _, err := io.Copy(tw, tr); err != nil {
				return err
			}
		}
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("tar %s: %w", rootfs, err)
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "./usr/local/bin/docker-entrypoint.sh", Mode: 0o755, Size: int64(len(script))}); err != nil {
			return err
		}
		_, err = tw.Write(script)
		return err
	})
}
