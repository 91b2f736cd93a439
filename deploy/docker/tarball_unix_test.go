//go:build unix

package docker_test

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/toolbox-collective/toolbox/deploy/docker"
)

// TestTreeEntries lists a small root file system with what debootstrap's
// has: set-id programs, a sticky folder, links (absolute, relative, hard),
// device nodes, a fifo and a socket, files of other owners.
func TestTreeEntries(t *testing.T) {
	root := os.Geteuid() == 0
	dir := t.TempDir()
	mk := func(rel string, mode fs.FileMode, data string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if mode.IsDir() {
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // umask-free, set-id bits kept
			t.Fatal(err)
		}
	}
	mk("usr", fs.ModeDir|0o755, "")
	mk("usr/bin", fs.ModeDir|0o755, "")
	mk("usr/bin/su", fs.ModeSetuid|0o755, "su")
	mk("usr/bin/wall", fs.ModeSetgid|0o755, "wall")
	mk("tmp", fs.ModeDir|fs.ModeSticky|0o777, "")
	mk("etc", fs.ModeDir|0o755, "")
	mk("etc/shadow", 0o640, "secret")
	mk("dev", fs.ModeDir|0o755, "")
	mk("proc", fs.ModeDir|0o555, "")
	mk("proc/1/status", 0o444, "x")
	for _, d := range []string{"var", "var/cache", "var/cache/apt", "var/cache/apt/archives"} {
		mk(d, fs.ModeDir|0o755, "")
	}
	mk("var/cache/apt/archives/x.deb", 0o644, "deb")
	for _, l := range [][2]string{{"bin", "usr/bin"}, {"etc/mtab", "/proc/self/mounts"}, {"dev/fd", "/proc/self/fd"}} {
		if err := os.Symlink(l[1], filepath.Join(dir, l[0])); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(dir, "usr/bin/su"), filepath.Join(dir, "usr/bin/su2")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "dev/initctl"), 0o600); err != nil {
		t.Fatal(err)
	}
	sock, err := net.Listen("unix", filepath.Join(dir, "dev/log"))
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	shadowGID := os.Getgid()
	if root {
		// Device nodes and other owners need root: without it, these go untested.
		if err := syscall.Mknod(filepath.Join(dir, "dev/null"), syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
			t.Fatal(err)
		}
		shadowGID = 42
		if err := os.Lchown(filepath.Join(dir, "etc/shadow"), 0, shadowGID); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(filepath.Join(dir, "tmp"), 1234, 5678); err != nil {
			t.Fatal(err)
		}
	}
	// src may be a link to the folder.
	link := filepath.Join(t.TempDir(), "rootfs")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}

	var asked []string
	skip := func(rel string) bool {
		asked = append(asked, rel)
		return rel == "proc/1" || rel == "var/cache/apt/archives"
	}
	es, err := docker.TreeEntries(link, "", skip)
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"usr/bin/su", "dev/null", "proc/1", "var/cache/apt/archives"} {
		if rel == "dev/null" && !root {
			continue
		}
		if !slices.Contains(asked, rel) {
			t.Errorf("skip was not asked about %q (asked %q)", rel, asked)
		}
	}
	for _, rel := range []string{"", ".", "proc/1/status", "var/cache/apt/archives/x.deb"} {
		if slices.Contains(asked, rel) {
			t.Errorf("skip was asked about %q, want not", rel)
		}
	}

	uid, gid := os.Getuid(), os.Getgid()
	tmpUID, tmpGID := uid, gid
	if root {
		tmpUID, tmpGID = 1234, 5678
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	src := func(rel string) string { return filepath.Join(real, rel) }
	want := []docker.Entry{
		{Name: "bin", Mode: fs.ModeSymlink | 0o777, UID: uid, GID: gid, Link: "usr/bin"},
		{Name: "dev", Mode: fs.ModeDir | 0o755, UID: uid, GID: gid},
		{Name: "dev/fd", Mode: fs.ModeSymlink | 0o777, UID: uid, GID: gid, Link: "/proc/self/fd"},
		{Name: "etc", Mode: fs.ModeDir | 0o755, UID: uid, GID: gid},
		{Name: "etc/mtab", Mode: fs.ModeSymlink | 0o777, UID: uid, GID: gid, Link: "/proc/self/mounts"},
		{Name: "etc/shadow", Mode: 0o640, UID: uid, GID: shadowGID, SourcePath: src("etc/shadow")},
		{Name: "proc", Mode: fs.ModeDir | 0o555, UID: uid, GID: gid},
		{Name: "tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777, UID: tmpUID, GID: tmpGID},
		{Name: "usr", Mode: fs.ModeDir | 0o755, UID: uid, GID: gid},
		{Name: "usr/bin", Mode: fs.ModeDir | 0o755, UID: uid, GID: gid},
		{Name: "usr/bin/su", Mode: fs.ModeSetuid | 0o755, UID: uid, GID: gid, SourcePath: src("usr/bin/su")},
		{Name: "usr/bin/su2", Mode: fs.ModeSetuid | 0o755, UID: uid, GID: gid, SourcePath: src("usr/bin/su2")},
		{Name: "usr/bin/wall", Mode: fs.ModeSetgid | 0o755, UID: uid, GID: gid, SourcePath: src("usr/bin/wall")},
		{Name: "var", Mode: fs.ModeDir | 0o755, UID: uid, GID: gid},
		{Name: "var/cache", Mode: fs.ModeDir | 0o755, UID: uid, GID: gid},
		{Name: "var/cache/apt", Mode: fs.ModeDir | 0o755, UID: uid, GID: gid},
	}
	slices.SortFunc(es, func(a, b docker.Entry) int { return strings.Compare(a.Name, b.Name) })
	if !slices.EqualFunc(es, want, entryEqual) {
		t.Errorf("TreeEntries =\n%+v\nwant\n%+v", es, want)
	}

	// Through WriteTar: the set-id and sticky bits and the owners are in the
	// headers, the hard link is a second copy.
	got := readTar(t, bytes.NewReader(writeTar(t, es)), true)
	wantTar := map[string]member{
		"usr/bin/su":  {Type: tar.TypeReg, Name: "usr/bin/su", Mode: 0o4755, UID: uid, GID: gid, Data: "su"},
		"usr/bin/su2": {Type: tar.TypeReg, Name: "usr/bin/su2", Mode: 0o4755, UID: uid, GID: gid, Data: "su"},
		"tmp/":        {Type: tar.TypeDir, Name: "tmp/", Mode: 0o1777, UID: tmpUID, GID: tmpGID},
		"etc/shadow":  {Type: tar.TypeReg, Name: "etc/shadow", Mode: 0o640, UID: uid, GID: shadowGID, Data: "secret"},
		"dev/fd":      {Type: tar.TypeSymlink, Name: "dev/fd", Mode: 0o777, UID: uid, GID: gid, Link: "/proc/self/fd"},
	}
	for _, m := range got {
		if w, ok := wantTar[m.Name]; ok && m != w {
			t.Errorf("tar entry %+v, want %+v", m, w)
		}
		delete(wantTar, m.Name)
	}
	for name := range wantTar {
		t.Errorf("no %s in the tar", name)
	}

	// Under a folder of the archive, src is that folder's entry.
	sub, err := docker.TreeEntries(filepath.Join(dir, "usr"), "/opt/usr/", nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range sub {
		names = append(names, e.Name)
	}
	slices.Sort(names)
	if want := []string{"opt/usr", "opt/usr/bin", "opt/usr/bin/su", "opt/usr/bin/su2", "opt/usr/bin/wall"}; !slices.Equal(names, want) {
		t.Errorf("TreeEntries(usr, /opt/usr/) names = %q, want %q", names, want)
	}

	if _, err := docker.TreeEntries(filepath.Join(dir, "etc/shadow"), "", nil); err == nil {
		t.Error("TreeEntries of a file = nil error, want one")
	}
	if _, err := docker.TreeEntries(filepath.Join(dir, "missing"), "", nil); err == nil {
		t.Error("TreeEntries of a missing folder = nil error, want one")
	}
}

func entryEqual(a, b docker.Entry) bool {
	return a.Name == b.Name && a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID &&
		bytes.Equal(a.Data, b.Data) && a.SourcePath == b.SourcePath && a.Link == b.Link
}
