package dockerguard

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"reflect"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
)

// Policy says what the guard lets through.
type Policy struct {
	// ManagedLabel and ManagedValue mark the toolbox's containers, networks
	// and volumes: only those can be created, and only those are acted on.
	ManagedLabel, ManagedValue string
	// ProtectedLabel and ProtectedValue mark objects the client may look at
	// but never change, run in, copy into or mount: the guard's own container
	// and the volume of its socket.
	ProtectedLabel, ProtectedValue string
	// ProtectedRepositories are image names (familiar form: "toolbox",
	// "docker") that no build, tag, import or pull may write: an image put
	// under the bot's name would be started by the next `up` with the
	// engine's socket, one under the launcher's with it at once.
	ProtectedRepositories []string
	// PinnedPulls are the references of protected repositories that may be
	// pulled, exactly: from the registry, never from a local build.
	PinnedPulls []string
	// EngineSocket is the engine's socket path on its machine: a bind of it
	// is the one bind the guard may let through, for a SocketGrant.
	EngineSocket string
	// SocketGrants are the only containers that may mount the engine's
	// socket, each described exactly.
	SocketGrants []SocketGrant
	// CgroupParent is the parent cgroup every container is created under
	// (the toolbox's TOOLBOX_CGROUP_PARENT), exactly: "" for the engine's own.
	CgroupParent string
}

// SocketGrant is a container that may mount the engine's socket: its image,
// entrypoint, command and environment must be exactly these, it may receive
// only the file ConfigPath (checked by CheckConfig) through the archive
// endpoint, and nobody may exec in it.
type SocketGrant struct {
	Image      string // in ProtectedRepositories, so that no local image can take its name
	Entrypoint []string
	Cmd        []string
	Env        map[string]string
	Target     string // where the socket is mounted
	ConfigPath string // absolute path of the one file it may be given
	// CheckConfig vets that file's content for the container it is copied
	// into (its name, without the leading "/"); nil refuses any file.
	CheckConfig func(container string, content []byte) error
}

// errDenied wraps every refusal: the handler answers 403 with its message.
var errDenied = errors.New("refused by the toolbox's docker guard")

func deny(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errDenied, fmt.Sprintf(format, args...))
}

func (p Policy) managed(labels map[string]string) bool {
	return labels[p.ManagedLabel] == p.ManagedValue
}

func (p Policy) protected(labels map[string]string) bool {
	return p.ProtectedLabel != "" && labels[p.ProtectedLabel] == p.ProtectedValue
}

// checkNewLabels vets the labels of a container, network or volume about
// to be created: the toolbox's, never the guard's own.
func (p Policy) checkNewLabels(kind string, labels map[string]string) error {
	if !p.managed(labels) {
		return deny("a %s must carry the label %s=%s", kind, p.ManagedLabel, p.ManagedValue)
	}
	if p.protected(labels) {
		return deny("the label %s=%s is the guard's own", p.ProtectedLabel, p.ProtectedValue)
	}
	return nil
}

// createRequest is the body of POST /containers/create.
type createRequest struct {
	*container.Config
	HostConfig       *container.HostConfig     `json:",omitempty"`
	NetworkingConfig *network.NetworkingConfig `json:",omitempty"`
}

// lookups are what the creation checks need from the engine.
type lookups struct {
	volume func(name string) (labels map[string]string, found bool, err error)
	// network finds a network as the engine does, by ID, name or ID
	// prefix, and gives its name.
	network func(ref string) (name string, labels map[string]string, found bool, err error)
}

// checkCreate vets a container's creation. It returns the grant the
// container is created under, if it mounts the engine's socket.
func (p Policy) checkCreate(req createRequest, look lookups) error {
	if req.Config == nil {
		return deny("a container needs a configuration")
	}
	if err := p.checkNewLabels("container", req.Labels); err != nil {
		return err
	}
	hc := req.HostConfig
	if hc == nil {
		hc = &container.HostConfig{}
	}
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if hc.Privileged {
		add("privileged containers")
	}
	if len(hc.CapAdd) > 0 {
		add("added capabilities (%s)", strings.Join(hc.CapAdd, ", "))
	}
	if len(hc.Devices) > 0 || len(hc.DeviceRequests) > 0 || len(hc.DeviceCgroupRules) > 0 {
		add("devices")
	}
	if len(hc.SecurityOpt) > 0 {
		add("security options (%s)", strings.Join(hc.SecurityOpt, ", "))
	}
	if hc.MaskedPaths != nil || hc.ReadonlyPaths != nil {
		add("changes to the masked or read-only paths of /proc")
	}
	if len(hc.Sysctls) > 0 {
		add("sysctls")
	}
	if hc.CgroupParent != p.CgroupParent {
		if p.CgroupParent == "" {
			add("a cgroup parent")
		} else {
			add("cgroup parent but %s (%q asked)", p.CgroupParent, hc.CgroupParent)
		}
	}
	if hc.Runtime != "" || hc.Isolation != "" {
		add("runtime or isolation of its own")
	}
	if hc.PidMode != "" {
		add("the PID namespace %q", hc.PidMode)
	}
	if hc.UTSMode != "" {
		add("the UTS namespace %q", hc.UTSMode)
	}
	if hc.UsernsMode != "" {
		add("the user namespace %q", hc.UsernsMode)
	}
	if m := hc.CgroupnsMode; m != "" && m != container.CgroupnsModePrivate {
		add("the cgroup namespace %q", m)
	}
	switch m := hc.IpcMode; m {
	case "", container.IPCModePrivate, container.IPCModeShareable, container.IPCModeNone:
	default:
		add("the IPC namespace %q", m)
	}
	if len(hc.VolumesFrom) > 0 {
		add("volumes from other containers")
	}
	if len(hc.Binds) > 0 {
		add("binds (%s): the toolbox mounts named volumes", strings.Join(hc.Binds, ", "))
	}
	if len(hc.Links) > 0 {
		add("links")
	}
	if hc.LogConfig.Type != "" || len(hc.LogConfig.Config) > 0 {
		add("log driver of its own (%s)", hc.LogConfig.Type)
	}
	if len(hc.Annotations) > 0 {
		add("runtime annotations")
	}
	if problems != nil {
		return deny("containers get no %s", strings.Join(problems, ", no "))
	}
	if err := checkCreateFields(req, hc); err != nil {
		return err
	}

	if err := p.checkNetworks(hc, req.NetworkingConfig, look); err != nil {
		return err
	}
	socket := false
	for _, m := range hc.Mounts {
		isSocket, err := p.checkMount(m, look)
		if err != nil {
			return err
		}
		if extra := unlisted(m, mountFields); len(extra) > 0 {
			return deny("mounts are created with none of the settings the toolbox does not use: %s (%s)", strings.Join(extra, ", "), m.Target)
		}
		socket = socket || isSocket
	}
	if socket {
		if _, err := p.grantFor(req, hc); err != nil {
			return err
		}
	}
	return nil
}

// The fields of a container's creation that the toolbox sets through the
// guard (deploy/docker's apiConfig and runConfig): any other one set is
// refused, so that a field the guard does not know of (Cgroup, VolumeDriver,
// PortBindings, Ulimits, Tty, a Healthcheck on a launcher, ...) never
// passes unchecked. Caddy's published ports are set by `up` on the engine
// itself, never through the guard.
var (
	createConfigFields = fieldSet("Image", "Cmd", "Entrypoint", "Env", "Labels", "User", "StopTimeout", "Healthcheck",
		"AttachStdin", "AttachStdout", "AttachStderr", "OpenStdin", "StdinOnce")
	createHostFields     = fieldSet("Mounts", "NetworkMode", "RestartPolicy", "ShmSize", "Memory", "MemoryReservation", "CgroupParent")
	createEndpointFields = fieldSet("Aliases")
	mountFields          = fieldSet("Type", "Source", "Target", "ReadOnly")
	// A launcher holds the engine's socket: it runs its grant's command and
	// nothing else (no health check, stdin or terminal, resources or user).
	grantConfigFields = fieldSet("Image", "Cmd", "Entrypoint", "Env", "Labels")
	grantHostFields   = fieldSet("Mounts", "NetworkMode", "RestartPolicy")
)

func fieldSet(names ...string) map[string]bool {
	set := map[string]bool{}
	for _, n := range names {
		set[n] = true
	}
	return set
}

// setFields names the fields of the struct v that are set (not zero, not an
// empty list or map), those of embedded structs (Resources) flattened.
func setFields(v any) []string {
	var out []string
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil
		}
		rv = rv.Elem()
	}
	rt := rv.Type()
	for i := range rt.NumField() {
		f, fv := rt.Field(i), rv.Field(i)
		if !f.IsExported() {
			continue
		}
		if f.Anonymous && fv.Kind() == reflect.Struct {
			out = append(out, setFields(fv.Interface())...)
			continue
		}
		switch fv.Kind() {
		case reflect.Slice, reflect.Map:
			if fv.Len() == 0 {
				continue
			}
		default:
			if fv.IsZero() {
				continue
			}
		}
		out = append(out, f.Name)
	}
	return out
}

// unlisted is the fields set in v that allowed does not list.
func unlisted(v any, allowed map[string]bool) []string {
	var out []string
	for _, f := range setFields(v) {
		if !allowed[f] {
			out = append(out, f)
		}
	}
	return out
}

// checkCreateFields refuses the fields the toolbox never sets, and bounds
// the resources it does.
func checkCreateFields(req createRequest, hc *container.HostConfig) error {
	extra := unlisted(req.Config, createConfigFields)
	extra = append(extra, unlisted(hc, createHostFields)...)
	if nc := req.NetworkingConfig; nc != nil {
		for _, n := range slices.Sorted(maps.Keys(nc.EndpointsConfig)) {
			for _, f := range unlisted(nc.EndpointsConfig[n], createEndpointFields) {
				extra = append(extra, "EndpointsConfig."+n+"."+f)
			}
		}
	}
	if len(extra) > 0 {
		return deny("containers are created with none of the settings the toolbox does not use: %s", strings.Join(extra, ", "))
	}
	if hc.Memory < 0 || hc.MemoryReservation < 0 || hc.ShmSize < 0 {
		return deny("memory limits and /dev/shm's size are not negative")
	}
	return nil
}

// checkNetworks refuses the host's network and other containers' ones, and
// networks that are not the toolbox's. Each network is named, in what is
// forwarded, by its name: the engine keeps a container's networks under the
// names it is given and looks them up again at every start, by ID, then
// name, then ID prefix (moby daemon/network.go FindNetwork), so that an ID
// prefix given here could, by then, be another network's.
func (p Policy) checkNetworks(hc *container.HostConfig, nc *network.NetworkingConfig, look lookups) error {
	resolve := func(ref string) (string, error) {
		name, labels, found, err := look.network(ref)
		switch {
		case err != nil:
			return "", err
		case !found:
			return "", deny("the network %q does not exist: the toolbox creates its networks before the containers on them", ref)
		case !p.managed(labels):
			return "", deny("the network %q is not the toolbox's", ref)
		case !networkName(name):
			return "", deny("the network %q has a name that could be another network's ID", name)
		}
		return name, nil
	}
	switch mode := string(hc.NetworkMode); {
	case mode == "host":
		return deny("containers do not get the host's network")
	case strings.HasPrefix(mode, "container:"):
		return deny("containers do not join another container's network (%s)", mode)
	case mode == "", mode == "default", mode == "bridge", mode == "none":
	default:
		name, err := resolve(mode)
		if err != nil {
			return err
		}
		hc.NetworkMode = container.NetworkMode(name)
	}
	if nc == nil {
		return nil
	}
	byName := map[string]*network.EndpointSettings{}
	for _, ref := range slices.Sorted(maps.Keys(nc.EndpointsConfig)) {
		name := ref
		switch ref {
		case "host":
			return deny("containers do not get the host's network")
		case "default", "bridge", "none":
		default:
			var err error
			if name, err = resolve(ref); err != nil {
				return err
			}
		}
		if _, dup := byName[name]; dup {
			return deny("the network %q is given twice", name)
		}
		byName[name] = nc.EndpointsConfig[ref]
	}
	nc.EndpointsConfig = byName
	return nil
}

// networkName tells whether name can name a network of the toolbox: not
// only hexadecimal digits, which the engine would also read as a prefix of
// another network's ID when no network has that name any more.
func networkName(name string) bool {
	return strings.Trim(name, "0123456789abcdef") != ""
}

// checkMount lets through tmpfs, and volumes the toolbox made; a bind only
// of the engine's socket (reported, for the grant check).
func (p Policy) checkMount(m mount.Mount, look lookups) (socket bool, err error) {
	switch m.Type {
	case mount.TypeTmpfs:
		return false, nil
	case mount.TypeVolume:
		if o := m.VolumeOptions; o != nil && o.DriverConfig != nil {
			return false, deny("a mount may not create a volume with a driver of its own (%s)", m.Target)
		}
		if m.Source == "" {
			return false, nil // anonymous: a fresh empty volume
		}
		labels, found, err := look.volume(m.Source)
		if err != nil {
			return false, err
		}
		switch {
		case !found:
			return false, deny("the volume %q does not exist: the toolbox creates its volumes, labelled, before mounting them", m.Source)
		case !p.managed(labels):
			return false, deny("the volume %q is not the toolbox's", m.Source)
		case p.protected(labels):
			return false, deny("the volume %q is the guard's own", m.Source)
		}
		return false, nil
	case mount.TypeBind:
		// Exactly the path: the engine's record of the bind must name it too.
		if p.EngineSocket != "" && m.Source == p.EngineSocket {
			return true, nil
		}
		return false, deny("bind mounts of the machine's files are refused (%s)", m.Source)
	}
	return false, deny("mounts of type %q are refused", m.Type)
}

// grantFor finds the grant a socket-mounting container matches exactly.
func (p Policy) grantFor(req createRequest, hc *container.HostConfig) (SocketGrant, error) {
	env := map[string]string{}
	for _, kv := range req.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	fail := deny("the engine's socket is mounted only into the launchers the catalog names, exactly as it names them")
	extra := unlisted(req.Config, grantConfigFields)
	extra = append(extra, unlisted(hc, grantHostFields)...)
	if len(extra) > 0 {
		return SocketGrant{}, fmt.Errorf("%w, with none of %s", fail, strings.Join(extra, ", "))
	}
	mode := string(hc.NetworkMode)
	switch mode {
	case "", "default", "bridge", "none":
	default:
		return SocketGrant{}, fmt.Errorf("%w, on the default network or none", fail)
	}
	if nc := req.NetworkingConfig; nc != nil {
		for n := range nc.EndpointsConfig {
			if n != mode {
				return SocketGrant{}, fmt.Errorf("%w, on the default network or none", fail)
			}
		}
	}
	for _, g := range p.SocketGrants {
		if req.Image != g.Image || !slices.Equal(req.Entrypoint, g.Entrypoint) || !slices.Equal(req.Cmd, g.Cmd) ||
			!maps.Equal(env, g.Env) {
			continue
		}
		if len(hc.Mounts) != 1 || hc.Mounts[0].Target != g.Target {
			continue
		}
		return g, nil
	}
	return SocketGrant{}, fail
}

// grantOf is the grant of an existing container that mounts the engine's
// socket, by its image.
func (p Policy) grantOf(image string) (SocketGrant, bool) {
	for _, g := range p.SocketGrants {
		if g.Image == image {
			return g, true
		}
	}
	return SocketGrant{}, false
}

// compressedMagic are the first bytes of the compressions the engine
// detects in an archive it is sent (gzip, bzip2, xz, zstd): it unpacks
// whatever it detects, whatever the guard read.
var compressedMagic = [][]byte{{0x1f, 0x8b}, []byte("BZh"), {0xfd, '7', 'z', 'X', 'Z', 0x00}, {0x28, 0xb5, 0x2f, 0xfd}}

// compressed tells whether the engine would read an archive opening with
// head as compressed: one of compressedMagic, or a zstd skippable frame
// (0x184D2A50 to 0x184D2A5F, little-endian; moby/go-archive
// compression/compression_detect.go), whose payload hides the tar the
// guard checked and lets a frame of the client's follow.
func compressed(head []byte) bool {
	for _, magic := range compressedMagic {
		if bytes.HasPrefix(head, magic) {
			return true
		}
	}
	return len(head) >= 4 && head[1] == 0x2a && head[2] == 0x4d && head[3] == 0x18 && head[0]&0xf0 == 0x50
}

// checkGrantArchive vets what is copied into a socket-mounting container:
// only the grant's one file, as a plain tar extracted at "/". It returns the
// archive to forward, which the guard writes itself from the checked file:
// the client's bytes never reach the engine, which may read them otherwise
// than archive/tar does (a gzip header in a PAX entry's name, data past the
// end marker).
func checkGrantArchive(g SocketGrant, container, dest string, body []byte) ([]byte, error) {
	if path.Clean(dest) != "/" {
		return nil, deny("a launcher's files are copied at /, not %s", dest)
	}
	if compressed(body) {
		return nil, deny("a launcher's files come as a plain tar archive, not a compressed one")
	}
	want := strings.TrimPrefix(path.Clean(g.ConfigPath), "/")
	tr := tar.NewReader(bytes.NewReader(body))
	var content []byte
	found := false
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, deny("a launcher's files come as a plain tar archive: %v", err)
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		switch {
		case h.Typeflag == tar.TypeDir && strings.HasPrefix(want, name+"/"):
			continue // a parent folder of the file
		case h.Typeflag == tar.TypeReg && name == want && !found:
			content, err = io.ReadAll(tr)
			if err != nil {
				return nil, deny("a launcher's files: %v", err)
			}
			found = true
		default:
			return nil, deny("a launcher receives only %s, not %s", g.ConfigPath, h.Name)
		}
	}
	if !found {
		return nil, deny("a launcher receives only %s", g.ConfigPath)
	}
	if g.CheckConfig == nil {
		return nil, deny("this launcher receives no file")
	}
	if err := g.CheckConfig(container, content); err != nil {
		return nil, deny("the launcher's %s: %v", g.ConfigPath, err)
	}
	return grantArchive(want, content)
}

// grantArchive is a plain tar of the file name (its parent folders first),
// owned by root, as the toolbox writes it (deploy/docker's writeTar).
func grantArchive(name string, content []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := strings.Split(name, "/")
	for i := 1; i < len(dirs); i++ {
		h := &tar.Header{Typeflag: tar.TypeDir, Name: strings.Join(dirs[:i], "/") + "/", Mode: 0o755, Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("docker guard: rebuild the launcher's archive: %w", err)
		}
	}
	h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(content)), Format: tar.FormatUSTAR}
	if err := tw.WriteHeader(h); err != nil {
		return nil, fmt.Errorf("docker guard: rebuild the launcher's archive: %w", err)
	}
	if _, err := tw.Write(content); err != nil {
		return nil, fmt.Errorf("docker guard: rebuild the launcher's archive: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("docker guard: rebuild the launcher's archive: %w", err)
	}
	return buf.Bytes(), nil
}

// execFields are the settings of an exec the guard lets through: those
// deploy/docker's Exec sets, and the terminal's, environment, directory and
// user, which give a process no more than the container's own have.
var execFields = fieldSet("Cmd", "AttachStdin", "AttachStdout", "AttachStderr", "Tty", "ConsoleSize", "DetachKeys", "Env", "WorkingDir", "User")

// checkExecCreate vets the body of POST /containers/{id}/exec and returns
// it re-encoded from what was checked, as a container's creation is.
func checkExecCreate(body []byte) ([]byte, error) {
	var ex container.ExecCreateRequest
	if err := json.Unmarshal(body, &ex); err != nil {
		return nil, deny("exec: %v", err)
	}
	if ex.Privileged {
		return nil, deny("exec gets no privileges")
	}
	if extra := unlisted(ex, execFields); len(extra) > 0 {
		return nil, deny("exec gets none of the settings the toolbox does not use: %s", strings.Join(extra, ", "))
	}
	if len(ex.Cmd) == 0 {
		return nil, deny("exec needs a command")
	}
	return json.Marshal(ex)
}

// protectedRepository tells whether the image name ref falls under one of
// the protected repositories; unparsable names are refused as protected.
func (p Policy) protectedRepository(ref string) (bool, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return true, deny("the image name %q cannot be read: %v", ref, err)
	}
	name := reference.FamiliarName(named)
	for _, r := range p.ProtectedRepositories {
		if pn, err := reference.ParseNormalizedNamed(r); err == nil && reference.FamiliarName(pn) == name {
			return true, nil
		}
	}
	return false, nil
}

// checkImageWrite vets a name an image is about to get (build, tag, import).
func (p Policy) checkImageWrite(ref string) error {
	prot, err := p.protectedRepository(ref)
	if err != nil {
		return err
	}
	if prot {
		return deny("no image is built, tagged or imported under the name %q: it is the toolbox's own", ref)
	}
	return nil
}

// checkPull vets an image pull: the protected repositories only as the
// pinned references.
func (p Policy) checkPull(ref string) error {
	prot, err := p.protectedRepository(ref)
	if err != nil || !prot {
		return err
	}
	for _, pinned := range p.PinnedPulls {
		if sameReference(ref, pinned) {
			return nil
		}
	}
	return deny("the image %q is not pulled through the guard: its name is the toolbox's own", ref)
}

// sameReference compares two image references in their normalised form.
func sameReference(a, b string) bool {
	na, err1 := reference.ParseNormalizedNamed(a)
	nb, err2 := reference.ParseNormalizedNamed(b)
	return err1 == nil && err2 == nil && na.String() == nb.String()
}
