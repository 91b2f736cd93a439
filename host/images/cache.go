package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// input is one thing a build or an image depends on.
type input struct {
	name string
	data []byte
}

func text(name, value string) input { return input{name, []byte(value)} }

// hashKey is the hex SHA-256 of the inputs, each framed by its name and
// length so that no two lists of inputs give the same bytes.
func hashKey(ins ...input) string {
	h := sha256.New()
	for _, in := range ins {
		fmt.Fprintf(h, "%s %d\n", in.name, len(in.data))
		h.Write(in.data)
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// folderKey is the content key of rc's cached build for t.
func folderKey(rc recipe, t target, ins []input) string {
	head := []input{text("recipe", rc.Name), text("layout", strconv.Itoa(rc.buildLayout)), text("target", t.String())}
	return hashKey(append(head, ins...)...)
}

// imageKey is the content key of rc's image made from the build with key
// folder.
func imageKey(rc recipe, folder string, ins []input) string {
	head := []input{text("folder", folder), text("tag", rc.Tag), text("image layout", strconv.Itoa(rc.imageLayout))}
	return hashKey(append(head, ins...)...)
}

// folderPath is where the build with key k is kept.
func (r *run) folderPath(rc recipe, k string) string {
	return filepath.Join(r.cache, rc.folder+"-"+k[:16])
}

// key computes rc's folder key for t.
func (r *run) key(ctx context.Context, rc recipe, t target) (string, error) {
	var ins []input
	if rc.inputs != nil {
		var err error
		if ins, err = rc.inputs(ctx, r, t); err != nil {
			return "", fmt.Errorf("images: %s: %w", rc.Name, err)
		}
	}
	return folderKey(rc, t, ins), nil
}

// folder returns rc's cached build for t, building it first if needed.
func (r *run) folder(ctx context.Context, rc recipe, t target) (string, error) {
	k, err := r.key(ctx, rc, t)
	if err != nil {
		return "", err
	}
	return r.ensureFolder(ctx, rc, t, k)
}

// ensureFolder returns the folder of the build with key k, building it into
// a temporary folder, renamed when complete, under a lock that makes
// concurrent builders of the same key wait for the first one.
func (r *run) ensureFolder(ctx context.Context, rc recipe, t target, k string) (string, error) {
	dir := r.folderPath(rc, k)
	if isDir(dir) {
		r.say(rc.Name, "cached build in %s", dir)
		return dir, nil
	}
	unlock, err := r.lock(ctx, rc.Name, dir+".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if isDir(dir) { // built while we waited
		r.say(rc.Name, "cached build in %s", dir)
		return dir, nil
	}
	tmp := dir + ".tmp"
	if err := removeTree(tmp); err != nil { // left over from a build that died
		return "", fmt.Errorf("images: %s: %w", rc.Name, err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", fmt.Errorf("images: %s: %w", rc.Name, err)
	}
	start := time.Now()
	r.say(rc.Name, "building from %s for %s (%s)", rc.From, t, rc.Takes)
	err = r.step(ctx, rc.Name, "building", func() error { return rc.build(ctx, r, t, tmp) })
	if err != nil {
		if rmErr := removeTree(tmp); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
		return "", fmt.Errorf("images: build %s: %w", rc.Name, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", fmt.Errorf("images: %s: %w", rc.Name, err)
	}
	r.say(rc.Name, "built in %s into %s", time.Since(start).Round(time.Second), dir)
	return dir, nil
}

// image makes rc's image for t unless the engine has it with the same key.
func (r *run) image(ctx context.Context, rc recipe, t target) error {
	fk, err := r.key(ctx, rc, t)
	if err != nil {
		return err
	}
	var ins []input
	if rc.imageInputs != nil {
		ins = rc.imageInputs()
	}
	ik := imageKey(rc, fk, ins)
	if r.current(ctx, rc.Tag, ik) {
		r.say(rc.Name, "cached (image %s)", rc.Tag)
		return nil
	}
	// One import of a tag at a time, also across processes.
	unlock, err := r.lock(ctx, rc.Name, filepath.Join(r.cache, "image-"+rc.Name+".lock"))
	if err != nil {
		return err
	}
	defer unlock()
	old, err := r.engine.Image(ctx, rc.Tag)
	if err == nil && old.Labels[LabelKey] == ik { // imported while we waited
		r.say(rc.Name, "cached (image %s)", rc.Tag)
		return nil
	}
	dir, err := r.ensureFolder(ctx, rc, t, fk)
	if err != nil {
		return err
	}
	entries, changes, err := rc.image(dir)
	if err != nil {
		return fmt.Errorf("images: %s: %w", rc.Name, err)
	}
	changes = append(changes, "LABEL "+LabelKey+"="+ik)
	start := time.Now()
	r.say(rc.Name, "importing %s", rc.Tag)
	err = r.step(ctx, rc.Name, "importing "+rc.Tag, func() error {
		return r.engine.ImportEntries(ctx, rc.Tag, entries, changes)
	})
	if err != nil {
		return fmt.Errorf("images: %s: %w", rc.Name, err)
	}
	r.say(rc.Name, "image %s ready in %s", rc.Tag, time.Since(start).Round(100*time.Millisecond))
	// The image this one replaces, if this builder made it, is now
	// untagged: remove it unless a container still uses it (or another tag
	// names it), which the engine refuses.
	if old.ID != "" && old.Labels[LabelKey] != "" {
		if cur, err := r.engine.Image(ctx, rc.Tag); err == nil && cur.ID != old.ID {
			_ = r.engine.RemoveImage(ctx, old.ID)
		}
	}
	return nil
}

// current reports whether the engine has tag with key k.
func (r *run) current(ctx context.Context, tag, k string) bool {
	img, err := r.engine.Image(ctx, tag)
	return err == nil && img.Labels[LabelKey] == k
}

// lockPoll is how often a waiting builder tries the lock again.
const lockPoll = 500 * time.Millisecond

// lock takes an exclusive flock on path, waiting (and saying so) while
// another builder, in this process or another, holds it.
func (r *run) lock(ctx context.Context, name, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("images: %s: lock: %w", name, err)
	}
	waited := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("images: %s: lock %s: %w", name, path, err)
		}
		if !waited {
			r.say(name, "waiting for another build that holds %s", path)
			waited = true
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("images: %s: %w", name, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// removeTree removes dir, first detaching anything mounted under it (a
// debootstrap that died may leave its /proc and /sys mounted there, and
// removing files through a mount would remove the host's).
func removeTree(dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := unmountUnder(dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}
