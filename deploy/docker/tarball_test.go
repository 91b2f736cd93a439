package docker_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

// member is what a test checks of one tar entry.
type member struct {
	Type     byte
	Name     string
	Mode     int64
	UID, GID int
	Link     string
	Data     string
}

// readTar reads a tar stream back; with fixedTimes, it checks that every
// entry has WriteTar's fixed modification time.
func readTar(t *testing.T, r io.Reader, fixedTimes bool) []member {
	t.Helper()
	var got []member
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read tar entry %s: %v", h.Name, err)
		}
		if fixedTimes && !h.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("%s: modification time %v, want the fixed %v", h.Name, h.ModTime, time.Unix(0, 0))
		}
		got = append(got, member{Type: h.Typeflag, Name: h.Name, Mode: h.Mode, UID: h.Uid, GID: h.Gid, Link: h.Linkname, Data: string(data)})
	}
}

func writeTar(t *testing.T, entries []docker.Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := docker.WriteTar(&buf, entries); err != nil {
		t.Fatalf("WriteTar: %v", err)
	}
	return buf.Bytes()
}

func TestWriteTar(t *testing.T) {
	src := filepath.Join(t.TempDir(), "source")
	if err := os.WriteFile(src, []byte("from disk\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	entries := []docker.Entry{
		{Name: "usr/bin/su", Mode: fs.ModeSetuid | 0o755, Data: []byte("#!su\n")},
		{Name: "tmp/", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
		{Name: "/var/mail", Mode: fs.ModeDir | fs.ModeSetgid | 0o775, GID: 8},
		{Name: "./var/mail/alice", Mode: 0o660, UID: 1000, GID: 8, Data: []byte("hi")},
		{Name: "bin", Mode: fs.ModeSymlink | 0o777, Link: "usr/bin"},
		{Name: "etc/big", Mode: 0o644, SourcePath: src},
		{Name: "etc//empty", Mode: 0o400},
	}
	want := []member{
		{Type: tar.TypeSymlink, Name: "bin", Mode: 0o777, Link: "usr/bin"},
		{Type: tar.TypeDir, Name: "etc/", Mode: 0o755}, // implicit
		{Type: tar.TypeReg, Name: "etc/big", Mode: 0o644, Data: "from disk\n"},
		{Type: tar.TypeReg, Name: "etc/empty", Mode: 0o400},
		{Type: tar.TypeDir, Name: "tmp/", Mode: 0o1777},
		{Type: tar.TypeDir, Name: "usr/", Mode: 0o755},     // implicit
		{Type: tar.TypeDir, Name: "usr/bin/", Mode: 0o755}, // implicit
		{Type: tar.TypeReg, Name: "usr/bin/su", Mode: 0o4755, Data: "#!su\n"},
		{Type: tar.TypeDir, Name: "var/", Mode: 0o755}, // implicit
		{Type: tar.TypeDir, Name: "var/mail/", Mode: 0o2775, GID: 8},
		{Type: tar.TypeReg, Name: "var/mail/alice", Mode: 0o660, UID: 1000, GID: 8, Data: "hi"},
	}
	b := writeTar(t, entries)
	if got := readTar(t, bytes.NewReader(b), true); !slices.Equal(got, want) {
		t.Errorf("WriteTar wrote\n%+v\nwant\n%+v", got, want)
	}

	// The same entries, in any order, give the same bytes.
	reversed := slices.Clone(entries)
	slices.Reverse(reversed)
	if again := writeTar(t, reversed); !bytes.Equal(again, b) {
		t.Error("WriteTar of the same entries in another order gave other bytes")
	}
	if err := os.Chtimes(src, time.Now(), time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if again := writeTar(t, entries); !bytes.Equal(again, b) {
		t.Error("WriteTar gave other bytes once a source file's modification time changed")
	}
}

func TestWriteTarRefuses(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		entries []docker.Entry
		want    string
	}{
		{"the same name twice", []docker.Entry{{Name: "a", Mode: 0o644}, {Name: "/a", Mode: 0o600}}, "given twice"},
		{"the archive root", []docker.Entry{{Name: "./", Mode: fs.ModeDir | 0o755}}, "archive root"},
		{"an entry under a file", []docker.Entry{{Name: "a", Mode: 0o644}, {Name: "a/b", Mode: 0o644}}, `"a" is not a folder`},
		{"a slash on a file", []docker.Entry{{Name: "a/", Mode: 0o644}}, "not a folder's"},
		{"a link without a target", []docker.Entry{{Name: "l", Mode: fs.ModeSymlink | 0o777}}, "without a target"},
		{"a device", []docker.Entry{{Name: "dev/null", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666}}, "not a file, folder or symbolic link"},
		{"data and a source path", []docker.Entry{{Name: "f", Mode: 0o644, Data: []byte("x"), SourcePath: "/etc/hostname"}}, "both data and a source path"},
		{"a folder with data", []docker.Entry{{Name: "d", Mode: fs.ModeDir | 0o755, Data: []byte("x")}}, "a folder with content"},
		{"a file with a link target", []docker.Entry{{Name: "f", Mode: 0o644, Link: "g"}}, "with a link target"},
		{"a negative owner", []docker.Entry{{Name: "f", Mode: 0o644, UID: -1}}, "negative owner"},
		{"a missing source", []docker.Entry{{Name: "f", Mode: 0o644, SourcePath: filepath.Join(dir, "missing")}}, "no such file"},
		{"a folder as source", []docker.Entry{{Name: "f", Mode: 0o644, SourcePath: dir}}, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := docker.WriteTar(io.Discard, tt.entries)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("WriteTar(%+v) = %v, want an error containing %q", tt.entries, err, tt.want)
			}
		})
	}
}

// hookWriter calls hook before its first write: the header of the only entry.
type hookWriter struct {
	hook func()
	buf  bytes.Buffer
}

func (w *hookWriter) Write(p []byte) (int, error) {
	if w.hook != nil {
		w.hook()
		w.hook = nil
	}
	return w.buf.Write(p)
}

// TestWriteTarSourceChangesSize: a source file that grows or shrinks after
// its header is written fails the write rather than corrupting the stream.
func TestWriteTarSourceChangesSize(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(path string) error
	}{
		{"shrinks", func(p string) error { return os.Truncate(p, 3) }},
		{"grows", func(p string) error {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteString("more")
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "log")
			if err := os.WriteFile(src, []byte("0123456789"), 0o644); err != nil {
				t.Fatal(err)
			}
			w := &hookWriter{hook: func() {
				if err := tt.change(src); err != nil {
					t.Error(err)
				}
			}}
			err := docker.WriteTar(w, []docker.Entry{{Name: "log", Mode: 0o644, SourcePath: src}})
			if err == nil || !strings.Contains(err.Error(), "changed size") {
				t.Errorf("WriteTar of a file that %s = %v, want a changed size error", tt.name, err)
			}
		})
	}
}

func TestImportEntries(t *testing.T) {
	t.Parallel()
	e := dockertest.Engine(t)
	labels := dockertest.Labels(t, e)
	ctx := timeout(t, time.Minute)

	src := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(src, []byte("not really a program\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tag := "toolbox-test/entries:" + dockertest.Unique(t, "t")
	t.Cleanup(func() { _ = e.RemoveImage(t.Context(), tag) })
	entries := []docker.Entry{
		{Name: "usr/bin/app", Mode: fs.ModeSetuid | 0o755, SourcePath: src},
		{Name: "bin", Mode: fs.ModeSymlink | 0o777, Link: "usr/bin"},
		{Name: "tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
		{Name: "srv/data/records.txt", Mode: 0o640, UID: 70, GID: 70, Data: []byte("first\n")},
	}
	changes := []string{`ENTRYPOINT ["/bin/app"]`}
	for k, v := range labels {
		changes = append(changes, "LABEL "+k+"="+v)
	}
	if err := e.ImportEntries(ctx, tag, entries, changes); err != nil {
		t.Fatal(err)
	}
	img, err := e.Image(ctx, tag)
	if err != nil || !slices.Contains(img.Tags, tag) || img.Labels[dockertest.LabelTestRun] != labels[dockertest.LabelTestRun] {
		t.Fatalf("Image(%s) = %+v, %v; want it tagged and labelled", tag, img, err)
	}

	// What the engine made of the entries, read back from a container of
	// the image (created, never started; removed by its labels).
	raw := rawClient(t)
	c, err := raw.ContainerCreate(ctx, client.ContainerCreateOptions{Name: dockertest.Unique(t, "tbt-entries"), Config: &container.Config{Image: tag, Labels: labels}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want member
	}{
		{"/usr/bin/app", member{Type: tar.TypeReg, Name: "app", Mode: 0o4755, Data: "not really a program\n"}},
		{"/bin", member{Type: tar.TypeSymlink, Name: "bin", Mode: 0o777, Link: "usr/bin"}},
		{"/tmp", member{Type: tar.TypeDir, Name: "tmp/", Mode: 0o1777}},
		{"/srv/data/records.txt", member{Type: tar.TypeReg, Name: "records.txt", Mode: 0o640, UID: 70, GID: 70, Data: "first\n"}},
	} {
		res, err := raw.CopyFromContainer(ctx, c.ID, client.CopyFromContainerOptions{SourcePath: tc.path})
		if err != nil {
			t.Errorf("copy %s from the container: %v", tc.path, err)
			continue
		}
		got := readTar(t, res.Content, false)
		res.Content.Close()
		for i := range got {
			got[i].Mode &= 0o7777 // the engine adds the file type bits
		}
		if len(got) == 0 || got[0] != tc.want {
			t.Errorf("%s in the image: %+v, want %+v", tc.path, got, tc.want)
		}
	}

	// An entry that cannot be written fails the import with its own error.
	missing := filepath.Join(t.TempDir(), "missing")
	bad := "toolbox-test/entries-bad:" + dockertest.Unique(t, "t")
	t.Cleanup(func() { _ = e.RemoveImage(t.Context(), bad) })
	err = e.ImportEntries(ctx, bad, []docker.Entry{{Name: "etc/motd", Mode: 0o644, Data: []byte("hi\n")}, {Name: "x", Mode: 0o644, SourcePath: missing}}, changes)
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("ImportEntries with a missing source file = %v, want an error naming it", err)
	}
	if ok, err := e.ImagePresent(ctx, bad); ok || err != nil {
		t.Errorf("ImagePresent(%s) after a failed import = %v, %v; want false", bad, ok, err)
	}
}
