package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
)

// Image is a local image.
type Image struct {
	ID      string
	Tags    []string
	Labels  map[string]string
	Size    int64
	Created string
}

// FileSpec is one file of a scratch image: its content is Data, or the file
// at SourcePath when Data is nil. Mode 0 means 0644 for Data and the source
// file's permissions for SourcePath.
type FileSpec struct {
	Data       []byte
	SourcePath string
	Mode       fs.FileMode
}

const progressEvery = 2 * time.Second

// Image describes the local image ref. A missing image gives an error
// satisfying errdefs.IsNotFound.
func (e *Engine) Image(ctx context.Context, ref string) (Image, error) {
	res, err := e.cli.ImageInspect(ctx, ref)
	if err != nil {
		return Image{}, fmt.Errorf("docker: image %q: %w", ref, err)
	}
	img := Image{ID: res.ID, Tags: res.RepoTags, Size: res.Size, Created: res.Created}
	if res.Config != nil {
		img.Labels = res.Config.Labels
	}
	return img, nil
}

// ImagePresent tells whether ref is on the engine.
func (e *Engine) ImagePresent(ctx context.Context, ref string) (bool, error) {
	_, err := e.cli.ImageInspect(ctx, ref)
	switch {
	case err == nil:
		return true, nil
	case cerrdefs.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("docker: image %q: %w", ref, err)
	}
}

// RemoveImage untags and removes ref if no container uses it. An absent
// image is not an error.
func (e *Engine) RemoveImage(ctx context.Context, ref string) error {
	_, err := e.cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: remove image %q: %w", ref, err)
	}
	return nil
}

// PullImage pulls ref unless it is present, calling progress (if not nil)
// with a short line at most every two seconds.
func (e *Engine) PullImage(ctx context.Context, ref string, progress func(line string)) error {
	if ok, err := e.ImagePresent(ctx, ref); err != nil || ok {
		return err
	}
	if progress == nil {
		progress = func(string) {}
	}
	progress("pulling " + ref)
	resp, err := e.cli.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		return pullError(ref, err)
	}
	defer resp.Close()

	var p pullProgress
	lastReport := time.Now()
	for m, err := range resp.JSONMessages(ctx) {
		if err != nil {
			return pullError(ref, err)
		}
		if m.Error != nil {
			return pullError(ref, m.Error)
		}
		p.add(m)
		if time.Since(lastReport) >= progressEvery {
			progress(p.line(ref))
			lastReport = time.Now()
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("docker: pull image %q: %w", ref, err)
	}
	if ok, err := e.ImagePresent(ctx, ref); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("docker: pull image %q: the engine reported no error but the image is not there", ref)
	}
	return nil
}

// pullProgress sums the per-layer download progress of a pull.
type pullProgress struct {
	order  []string
	layers map[string]*layerProgress
}

type layerProgress struct{ current, total int64 }

func (p *pullProgress) add(m jsonstream.Message) {
	if m.ID == "" || (m.Progress == nil && !strings.HasSuffix(m.Status, "complete") && m.Status != "Already exists") {
		return
	}
	if p.layers == nil {
		p.layers = map[string]*layerProgress{}
	}
	l, ok := p.layers[m.ID]
	if !ok {
		l = &layerProgress{}
		p.layers[m.ID] = l
		p.order = append(p.order, m.ID)
	}
	switch {
	case m.Status == "Downloading" && m.Progress != nil:
		l.current, l.total = m.Progress.Current, m.Progress.Total
	case m.Status == "Download complete", m.Status == "Pull complete", m.Status == "Already exists":
		if l.total > 0 {
			l.current = l.total
		}
	}
}

func (p *pullProgress) line(ref string) string {
	var cur, total int64
	for _, id := range p.order {
		cur += p.layers[id].current
		total += p.layers[id].total
	}
	if total == 0 {
		return "pulling " + ref
	}
	return fmt.Sprintf("pulling %s: %s of %s", ref, humanBytes(cur), humanBytes(total))
}

// ErrRegistryUnreachable is wrapped by PullImage's error when the engine
// cannot reach the image's registry (no internet, or none allowed): the
// images must then be built on the machine (`toolbox images build`).
var ErrRegistryUnreachable = errors.New("its registry cannot be reached from the engine")

// pullError turns what the engine says into a sentence naming the image.
func pullError(ref string, err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("docker: pull image %q: %w", ref, err)
	case cerrdefs.IsNotFound(err), strings.Contains(msg, "not found"), strings.Contains(msg, "manifest unknown"):
		return fmt.Errorf("docker: cannot pull image %q: the registry does not have it: %w", ref, err)
	case cerrdefs.IsUnauthorized(err), cerrdefs.IsPermissionDenied(err), strings.Contains(msg, "access denied"), strings.Contains(msg, "unauthorized"):
		return fmt.Errorf("docker: cannot pull image %q: the registry refused access (wrong name, or a login is needed): %w", ref, err)
	case strings.Contains(msg, "dial tcp"), strings.Contains(msg, "no such host"), strings.Contains(msg, "timeout"),
		strings.Contains(msg, "connection refused"), strings.Contains(msg, "network is unreachable"):
		return fmt.Errorf("docker: cannot pull image %q: %w: %w", ref, ErrRegistryUnreachable, err)
	default:
		return fmt.Errorf("docker: cannot pull image %q: %w", ref, err)
	}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%d MB", n/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%d kB", n/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// BuildScratchImage builds tag from "FROM scratch", the given files (path in
// the image → content) and entrypoint, through the engine's image build
// (classic builder, no pull, no registry).
func (e *Engine) BuildScratchImage(ctx context.Context, tag string, files map[string]FileSpec, entrypoint []string, labels map[string]string) error {
	if len(files) == 0 {
		return fmt.Errorf("docker: build image %q: no files", tag)
	}
	dockerfile := "FROM scratch\nCOPY rootfs/ /\n"
	if len(entrypoint) > 0 {
		ep, _ := json.Marshal(entrypoint)
		dockerfile += "ENTRYPOINT " + string(ep) + "\n"
	}

	entries, err := buildContext(dockerfile, files)
	if err != nil {
		return fmt.Errorf("docker: build image %q: %w", tag, err)
	}

	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(writeTar(pw, entries))
	}()
	defer func() {
		_ = pr.Close() // unblocks the writer if the build stopped reading
		<-done
	}()

	res, err := e.cli.ImageBuild(ctx, pr, client.ImageBuildOptions{
		Tags:        []string{tag},
		Dockerfile:  "Dockerfile",
		Labels:      labels,
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
	})
	if err != nil {
		return fmt.Errorf("docker: build image %q: %w", tag, err)
	}
	defer res.Body.Close()
	if err := readStream(ctx, res.Body); err != nil {
		return fmt.Errorf("docker: build image %q: %w", tag, err)
	}
	return nil
}

// buildContext is the build's context: the Dockerfile, and the files under
// rootfs/ with FileSpec's default modes filled in.
func buildContext(dockerfile string, files map[string]FileSpec) ([]Entry, error) {
	entries := []Entry{{Name: "Dockerfile", Mode: 0o644, Data: []byte(dockerfile)}}
	for p, f := range files {
		clean := strings.TrimPrefix(path.Clean("/"+p), "/")
		if clean == "" || clean == "." {
			return nil, fmt.Errorf("bad file path %q", p)
		}
		if f.Data == nil && f.SourcePath == "" {
			return nil, fmt.Errorf("file %q has neither data nor source path", p)
		}
		e := Entry{Name: "rootfs/" + clean, Mode: f.Mode.Perm(), Data: f.Data}
		if f.Data == nil {
			e.SourcePath = f.SourcePath
		}
		if f.Mode == 0 {
			e.Mode = 0o644
			if f.Data == nil {
				st, err := os.Stat(f.SourcePath)
				if err != nil {
					return nil, fmt.Errorf("file %q: %w", p, err)
				}
				e.Mode = st.Mode().Perm()
			}
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// ImportImage creates tag from a root filesystem tar (like "docker import"),
// applying Dockerfile changes such as `ENTRYPOINT ["/app"]`.
func (e *Engine) ImportImage(ctx context.Context, tag string, rootfsTar io.Reader, changes []string) error {
	res, err := e.cli.ImageImport(ctx, client.ImageImportSource{Source: rootfsTar, SourceName: "-"}, tag, client.ImageImportOptions{Changes: changes})
	if err != nil {
		return fmt.Errorf("docker: import image %q: %w", tag, err)
	}
	defer res.Close()
	if err := readStream(ctx, res); err != nil {
		return fmt.Errorf("docker: import image %q: %w", tag, err)
	}
	return nil
}

// readStream consumes a JSON message stream (build, import), returning the
// first error it carries, with the last output lines for context.
func readStream(ctx context.Context, r io.Reader) error {
	dec := json.NewDecoder(r)
	var tail []string
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if m.Error != nil {
			msg := strings.TrimSpace(m.Error.Message)
			if len(tail) > 0 {
				msg += " (after: " + strings.Join(tail, " | ") + ")"
			}
			return errors.New(msg)
		}
		if line := strings.TrimSpace(m.Stream); line != "" {
			tail = append(tail, line)
			if len(tail) > 3 {
				tail = tail[1:]
			}
		}
	}
}
