package dockerguard

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"path"
	"strings"
)

// The toolbox builds only images "FROM scratch" of the files it sends
// (deploy/docker's BuildScratchImage: the Dockerfile, then rootfs/...):
// no RUN, no base image, no ADD. The classic builder fetches an ADD's URL
// from the engine's own process, on the machine's network (its loopback
// included), and runs a base image's ONBUILD triggers, so that any other
// Dockerfile could read what only the machine reaches into an image.
const maxDockerfile = 64 << 10

// checkDockerfile vets the Dockerfile of a build: FROM scratch, then COPY
// of the context's files and an ENTRYPOINT in exec form, nothing else
// (no parser directive, no line continuation, no variable, no flag).
func checkDockerfile(content []byte) error {
	lines := strings.Split(string(content), "\n")
	from := false
	for _, line := range lines {
		if strings.ContainsAny(line, "\r\\`$#") && !strings.HasPrefix(line, "ENTRYPOINT [") {
			return deny("build: the Dockerfile line %q has a directive, continuation, comment or variable", line)
		}
		words := strings.Fields(line)
		switch {
		case len(words) == 0:
		case !from:
			if len(words) != 2 || words[0] != "FROM" || words[1] != "scratch" {
				return deny("build: images are built FROM scratch, not %q", line)
			}
			from = true
		case words[0] == "COPY":
			if len(words) != 3 {
				return deny("build: COPY takes a source and a destination (%q)", line)
			}
			for _, w := range words[1:] {
				if strings.HasPrefix(w, "-") || strings.ContainsAny(w, `["'*?`) {
					return deny("build: COPY takes no flags, lists or patterns (%q)", line)
				}
			}
		case words[0] == "ENTRYPOINT":
			var argv []string
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "ENTRYPOINT ")), &argv); err != nil || len(argv) == 0 ||
				strings.HasSuffix(line, `\`) || strings.HasSuffix(line, "`") {
				return deny("build: ENTRYPOINT is in exec form (%q)", line)
			}
		default:
			return deny("build: the Dockerfile has %s: the toolbox builds from scratch with COPY and ENTRYPOINT only", words[0])
		}
	}
	if !from {
		return deny("build: the Dockerfile is empty")
	}
	return nil
}

// buildContext is a build's context on its way to the engine: a plain tar
// whose first entry is the checked Dockerfile, and no later entry of that
// name (the last one extracted is the one built). Bytes reach the engine
// only once the tar reader has read them and the guard checked the entry
// they belong to; the end of the archive ends the stream.
type buildContext struct {
	tr   *tar.Reader
	read bytes.Buffer // what tr consumed, not yet checked
	out  bytes.Buffer // checked, to forward
	data bool         // within an entry's content
	err  error        // once out is drained
}

// newBuildContext reads the context up to the end of its Dockerfile and
// checks it; the rest is checked as the engine reads it.
func newBuildContext(body io.Reader) (*buildContext, error) {
	br := bufio.NewReader(body)
	if head, _ := br.Peek(8); compressed(head) {
		return nil, deny("build: the context is a plain tar archive, not a compressed one")
	}
	c := &buildContext{}
	c.tr = tar.NewReader(io.TeeReader(br, &c.read))
	h, err := c.tr.Next()
	if err != nil {
		return nil, deny("build: the context is a tar archive whose first entry is the Dockerfile: %v", err)
	}
	if h.Name != "Dockerfile" || h.Typeflag != tar.TypeReg || h.Size > maxDockerfile {
		return nil, deny("build: the context's first entry is the Dockerfile, a file, not %q", h.Name)
	}
	content, err := io.ReadAll(c.tr)
	if err != nil {
		return nil, deny("build: the Dockerfile: %v", err)
	}
	if err := checkDockerfile(content); err != nil {
		return nil, err
	}
	c.release()
	return c, nil
}

func (c *buildContext) release() {
	_, _ = c.read.WriteTo(&c.out)
}

func (c *buildContext) Read(p []byte) (int, error) {
	for c.out.Len() == 0 && c.err == nil {
		c.step()
	}
	if c.out.Len() > 0 {
		return c.out.Read(p)
	}
	return 0, c.err
}

// step reads on: a chunk of the current entry, or the next header.
func (c *buildContext) step() {
	if c.data {
		var chunk [32 << 10]byte
		n, err := c.tr.Read(chunk[:])
		c.release()
		switch {
		case errors.Is(err, io.EOF):
			c.data = false
		case err != nil:
			c.err = deny("build: the context: %v", err)
		case n == 0:
			c.data = false
		}
		return
	}
	h, err := c.tr.Next()
	switch {
	case errors.Is(err, io.EOF):
		c.release() // the end of the archive
		c.err = io.EOF
		return
	case err != nil:
		c.err = deny("build: the context: %v", err)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
	if strings.EqualFold(name, "Dockerfile") || name == ".dockerignore" {
		c.err = deny("build: the context has a second Dockerfile or a .dockerignore (%q)", h.Name)
		return
	}
	c.release()
	c.data = true
}
