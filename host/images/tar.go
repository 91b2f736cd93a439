package images

// TEMPORARY: a stand-in for deploy/docker's project-wide tar writer
// (docker.Entry, docker.WriteTar, docker.TreeEntries, Engine.ImportEntries),
// which is being added; replaced by it when it lands.

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"

	"github.com/toolbox-collective/toolbox/deploy/docker"
)

type entry struct {
	Name       string
	Mode       fs.FileMode
	UID, GID   int
	Data       []byte
	SourcePath string
	Link       string
}

func writeTar(w io.Writer, entries []entry) error {
	tw := tar.NewWriter(w)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.Name, Mode: int64(e.Mode.Perm()), Uid: e.UID, Gid: e.GID}
		if e.Mode&fs.ModeSticky != 0 {
			hdr.Mode |= 0o1000
		}
		if e.Mode&fs.ModeSetgid != 0 {
			hdr.Mode |= 0o2000
		}
		if e.Mode&fs.ModeSetuid != 0 {
			hdr.Mode |= 0o4000
		}
		switch {
		case e.Mode.IsDir():
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case e.Link != "":
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = e.Link
		default:
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Typeflag != tar.TypeReg {
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			continue
		}
		if e.SourcePath == "" {
			hdr.Size = int64(len(e.Data))
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if _, err := tw.Write(e.Data); err != nil {
				return err
			}
			continue
		}
		f, err := os.Open(e.SourcePath)
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err == nil {
			hdr.Size = st.Size()
			err = tw.WriteHeader(hdr)
		}
		if err == nil {
			_, err = io.Copy(tw, f)
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", e.SourcePath, err)
		}
	}
	return tw.Close()
}

func treeEntries(src, dst string, skip func(rel string) bool) ([]entry, error) {
	var out []entry
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel != "." && skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		name := path.Join(dst, rel)
		if name == "" || name == "." {
			return nil
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := entry{Name: name, Mode: info.Mode()}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			e.UID, e.GID = int(st.Uid), int(st.Gid)
		}
		switch {
		case info.IsDir():
		case info.Mode()&fs.ModeSymlink != 0:
			if e.Link, err = os.Readlink(p); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			e.SourcePath = p
		default:
			return nil // devices, sockets, pipes
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

func importEntries(ctx context.Context, e *docker.Engine, tag string, entries []entry, changes []string) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { err := writeTar(pw, entries); pw.CloseWithError(err); done <- err }()
	err := e.ImportImage(ctx, tag, pr, changes)
	pr.CloseWithError(errors.New("import ended"))
	if werr := <-done; err == nil && werr != nil {
		err = werr
	}
	return err
}
