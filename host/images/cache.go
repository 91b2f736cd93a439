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

	"github.com/toolbox-collective/toolbox/deploy/docker"
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

// imageKeyOf computes rc's folder key and image key for t.
func (r *run) imageKeyOf(ctx context.Context, rc recipe, t target) (folder, image string, err error) {
	fk, err := r.key(ctx, rc, t)
	if err != nil {
		return "", "", err
	}
	var ins []input
	if rc.imageInputs != nil {
		ins = rc.imageInputs()
	}
	return fk, imageKey(rc, fk, ins), nil
}

// tagState is what the engine has under a recipe's tag.
type tagState int

const (
	tagAbsent  tagState = iota // nothing (or the engine could not say)
	tagCurrent                 // this builder's image of the same key
	tagOlder                   // this builder's image of another key: replaced
	tagForeign                 // an image this builder did not make (no LabelKey): kept unless replace
)

// tagged looks up tag on the engine and compares its key with k.
func (r *run) tagged(ctx context.Context, tag, k string) (docker.Image, tagState) {
	img, err := r.engine.Image(ctx, tag)
	switch {
	case err != nil:
		return docker.Image{}, tagAbsent
	case img.Labels[LabelKey] == k:
		return img, tagCurrent
	case img.Labels[LabelKey] == "":
		return img, tagForeign
	}
	return img, tagOlder
}

// done says, and reports, whether the engine's image under rc's tag is to
// stay: it is the image of key k, or one this builder did not make (pulled
// or loaded: an official image has what ours lack) and replace is off.
func (r *run) done(rc recipe, st tagState) bool {
	switch {
	case st == tagCurrent:
		r.say(rc.Name, "cached (image %s)", rc.Tag)
		return true
	case st == tagForeign && !r.replace:
		r.say(rc.Name, "%s is on the engine and was not built here (an official image?): kept; `toolbox images build --replace` replaces it", rc.Tag)
		return true
	}
	return false
}

// image makes rc's image for t unless the engine has it with the same key,
// or has an image of the tag that this builder did not make (see done).
func (r *run) image(ctx context.Context, rc recipe, t target) error {
	fk, ik, err := r.imageKeyOf(ctx, rc, t)
	if err != nil {
		return err
	}
	if _, st := r.tagged(ctx, rc.Tag, ik); r.done(rc, st) {
		return nil
	}
	// One import of a tag at a time, also across processes.
	unlock, err := r.lock(ctx, rc.Name, filepath.Join(r.cache, "image-"+rc.Name+".lock"))
	if err != nil {
		return err
	}
	defer unlock()
	old, st := r.tagged(ctx, rc.Tag, ik)
	if r.done(rc, st) { // imported (or loaded) while we waited
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
	if st == tagForeign {
		r.say(rc.Name, "importing %s over the image of that tag not built here (replace is on)", rc.Tag)
	} else {
		r.say(rc.Name, "importing %s", rc.Tag)
	}
	err = r.step(ctx, rc.Name, "importing "+rc.Tag, func() error {
		return r.engine.ImportEntries(ctx, rc.Tag, entries, changes)
	})
	if err != nil {
		return fmt.Errorf("images: %s: %w", rc.Name, err)
	}
	r.say(rc.Name, "image %s ready in %s", rc.Tag, time.Since(start).Round(100*time.Millisecond))
	// The image this one replaces, if this builder made it, is now
	// untagged: remove it unless a container still uses it (or another tag
	// names it), which the engine refuses. An image it did not make stays,
	// untagged, for its owner to remove or tag again.
	if st == tagOlder {
		if cur, err := r.engine.Image(ctx, rc.Tag); err == nil && cur.ID != old.ID {
			_ = r.engine.RemoveImage(ctx, old.ID)
		}
	}
	return nil
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
