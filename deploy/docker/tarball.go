package docker

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
	"slices"
	"strings"
	"time"
)

// Entry is one item of a tar stream the engine reads: a file, a folder or a symbolic link.
//
// A folder's Mode has fs.ModeDir, a link's fs.ModeSymlink; any other type bit
// (device, pipe, socket) is refused. A regular file with neither Data nor
// SourcePath is empty.
type Entry struct {
	Name       string      // slash-separated path inside the archive, no leading slash; folders may end with "/"
	Mode       fs.FileMode // permission bits plus fs.ModeDir / fs.ModeSymlink / fs.ModeSetuid, ModeSetgid, ModeSticky
	UID, GID   int
	Data       []byte // content of a regular file when SourcePath is empty
	SourcePath string // a file on this machine to copy (streamed, not read into memory)
	Link       string // target of a symbolic link
}

// WriteTar writes entries to w as a tar stream with fixed modification times (so the same entries give the same bytes), creating missing parent folders (0755, root) implicitly, and closes the tar writer (not w).
//
// Entries are written in name order, whatever their order in the slice, so
// that folders come before what they hold. Names are cleaned ("./a//b" is
// "a/b"); two entries of one name, a name that is the archive root, and an
// entry under something that is not a folder are errors. A SourcePath must
// be a regular file, and is copied with the size it had when opened: one
// that grows or shrinks meanwhile is an error.
func WriteTar(w io.Writer, entries []Entry) error {
	if err := writeTar(w, entries); err != nil {
		return fmt.Errorf("docker: write tar: %w", err)
	}
	return nil
}

// tarModTime is every entry's modification time.
func tarModTime() time.Time { return time.Unix(0, 0) }

type tarItem struct {
	name string // cleaned, no trailing slash
	Entry
}

func writeTar(w io.Writer, entries []Entry) error {
	items := make([]tarItem, 0, len(entries))
	for _, e := range entries {
		name := strings.TrimPrefix(path.Clean("/"+e.Name), "/")
		if name == "" {
			return fmt.Errorf("entry %q: names the archive root", e.Name)
		}
		if strings.HasSuffix(e.Name, "/") && !e.Mode.IsDir() {
			return fmt.Errorf("entry %q: ends with / but its mode %v is not a folder's", e.Name, e.Mode)
		}
		items = append(items, tarItem{name: name, Entry: e})
	}
	// A folder's name is a prefix of its contents' names: sorted, it comes first.
	slices.SortStableFunc(items, func(a, b tarItem) int { return strings.Compare(a.name, b.name) })

	tw := tar.NewWriter(w)
	isDir := map[string]bool{} // every name written: is it a folder?
	for i, it := range items {
		if i > 0 && items[i-1].name == it.name {
			return fmt.Errorf("entry %q: given twice", it.name)
		}
		for j := 0; j < len(it.name); j++ {
			if it.name[j] != '/' {
				continue
			}
			parent := it.name[:j]
			dir, seen := isDir[parent]
			if seen && !dir {
				return fmt.Errorf("entry %q: %q is not a folder", it.name, parent)
			}
			if !seen {
				h := &tar.Header{Typeflag: tar.TypeDir, Name: parent + "/", Mode: 0o755, ModTime: tarModTime()}
				if err := tw.WriteHeader(h); err != nil {
					return fmt.Errorf("folder %q: %w", parent, err)
				}
				isDir[parent] = true
			}
		}
		if err := writeEntry(tw, it); err != nil {
			return fmt.Errorf("entry %q: %w", it.name, err)
		}
		isDir[it.name] = it.Mode.IsDir()
	}
	return tw.Close()
}

func writeEntry(tw *tar.Writer, it tarItem) error {
	m := it.Mode
	if it.UID < 0 || it.GID < 0 {
		return fmt.Errorf("negative owner %d:%d", it.UID, it.GID)
	}
	h := &tar.Header{Name: it.name, Mode: tarMode(m), Uid: it.UID, Gid: it.GID, ModTime: tarModTime()}
	switch typ := m.Type(); {
	case typ == fs.ModeDir:
		if it.Data != nil || it.SourcePath != "" || it.Link != "" {
			return errors.New("a folder with content or a link target")
		}
		h.Typeflag, h.Name = tar.TypeDir, it.name+"/"
		return tw.WriteHeader(h)
	case typ == fs.ModeSymlink:
		if it.Link == "" {
			return errors.New("a symbolic link without a target")
		}
		if it.Data != nil || it.SourcePath != "" {
			return errors.New("a symbolic link with content")
		}
		h.Typeflag, h.Linkname = tar.TypeSymlink, it.Link
		return tw.WriteHeader(h)
	case typ != 0:
		return fmt.Errorf("mode %v: not a file, folder or symbolic link", m)
	}
	if it.Link != "" {
		return errors.New("a regular file with a link target")
	}
	h.Typeflag = tar.TypeReg
	if it.SourcePath == "" {
		h.Size = int64(len(it.Data))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(it.Data)
		return err
	}
	if it.Data != nil {
		return errors.New("both data and a source path")
	}
	f, err := os.Open(it.SourcePath)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", it.SourcePath)
	}
	h.Size = st.Size()
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	// Exactly the header's size, or the archive would be corrupt.
	n, err := io.CopyN(tw, f, h.Size)
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%s changed size while being copied: %d bytes, not %d", it.SourcePath, n, h.Size)
	}
	if err != nil {
		return err
	}
	if k, _ := f.Read(make([]byte, 1)); k > 0 {
		return fmt.Errorf("%s changed size while being copied: more than %d bytes", it.SourcePath, h.Size)
	}
	return nil
}

// tarMode gives the tar header's mode: permissions and the setuid, setgid
// and sticky bits in their Unix places.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// TreeEntries lists the folder src on this machine as entries under dst (dst "" = the archive root), keeping modes, owners (uid/gid from the file system), symbolic links as links, and skipping what the skip function (may be nil) returns true for (given the slash path relative to src). Device nodes, sockets and fifos are skipped. Files are referenced by SourcePath, not read.
//
// A skipped folder is skipped with all it holds; skip is not asked about src
// itself, which is the entry dst (none when dst is ""). src may be a symbolic
// link to a folder; links inside it are not followed. Hard links become
// separate regular files.
func TreeEntries(src, dst string, skip func(rel string) bool) ([]Entry, error) {
	root, err := filepath.EvalSymlinks(src)
	if err != nil {
		return nil, fmt.Errorf("docker: list %s: %w", src, err)
	}
	dst = strings.TrimPrefix(path.Clean("/"+dst), "/")
	var entries []Entry
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case rel == ".":
			if !d.IsDir() {
				return fmt.Errorf("%s is not a folder", src)
			}
			if dst == "" {
				return nil
			}
		case skip != nil && skip(rel):
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // gone meanwhile
		}
		if err != nil {
			return err
		}
		mode := info.Mode()
		e := Entry{
			Name: path.Join(dst, rel),
			Mode: mode & (fs.ModeDir | fs.ModeSymlink | fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky),
		}
		e.UID, e.GID = fileOwner(info)
		switch {
		case mode.IsDir():
		case mode&fs.ModeSymlink != 0:
			if e.Link, err = os.Readlink(p); err != nil {
				return err
			}
		case mode.IsRegular():
			e.SourcePath = p
		default:
			return nil // device, socket, fifo
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("docker: list %s: %w", src, err)
	}
	return entries, nil
}

// ImportEntries streams entries into the engine as image tag (ImportImage with changes), through a pipe, without building the archive in memory.
//
// An entry that cannot be written (a source file gone, say) fails the import
// with that entry's error.
func (e *Engine) ImportEntries(ctx context.Context, tag string, entries []Entry, changes []string) error {
	pr, pw := io.Pipe()
	written := make(chan error, 1)
	go func() {
		err := writeTar(pw, entries)
		pw.CloseWithError(err) // nil: the reader sees the end
		written <- err
	}()
	err := e.ImportImage(ctx, tag, pr, changes)
	_ = pr.Close() // unblocks the writer if the engine stopped reading
	if werr := <-written; werr != nil && !errors.Is(werr, io.ErrClosedPipe) {
		return fmt.Errorf("docker: import image %q: %w", tag, werr)
	}
	return err
}
