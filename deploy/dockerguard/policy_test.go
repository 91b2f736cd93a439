package dockerguard

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
)

func testPolicy() Policy {
	return Policy{
		ManagedLabel: "toolbox.managed", ManagedValue: "1",
		ProtectedLabel: "toolbox.guard", ProtectedValue: "1",
		ProtectedRepositories: []string{"toolbox", "docker:27.5.1-cli"},
		PinnedPulls:           []string{"docker:27.5.1-cli"},
		EngineSocket:          "/var/run/docker.sock",
		SocketGrants: []SocketGrant{{
			Image: "docker:27.5.1-cli", Entrypoint: []string{"sh", "-c", "script"}, Cmd: []string{"./launcher", "bootstrap", "app"},
			Env: map[string]string{"REF": "abc"}, Target: "/var/run/docker.sock", ConfigPath: "/build/app.yml",
			CheckConfig: func(_ string, b []byte) error {
				if !bytes.HasPrefix(b, []byte("ok")) {
					return errors.New("not ok")
				}
				return nil
			},
		}},
	}
}

// testLookups knows the volumes "data" (the toolbox's), "foreign" and
// "guard" (the guard's), and the networks "apps" and "theirs".
func testLookups() lookups {
	vols := map[string]map[string]string{
		"data":    {"toolbox.managed": "1"},
		"foreign": {"owner": "someone"},
		"guard":   {"toolbox.managed": "1", "toolbox.guard": "1"},
	}
	nets := map[string]map[string]string{"apps": {"toolbox.managed": "1"}, "theirs": {}}
	return lookups{
		volume: func(n string) (map[string]string, bool, error) {
			l, ok := vols[n]
			return l, ok, nil
		},
		network: func(n string) (string, map[string]string, bool, error) {
			switch n {
			case "0123abcd": // a prefix of the ID of "apps"
				n = "apps"
			case "beef": // the toolbox's, named before the guard refused such names
				return n, map[string]string{"toolbox.managed": "1"}, true, nil
			}
			l, ok := nets[n]
			return n, l, ok, nil
		},
	}
}

func managedCreate(mod func(*createRequest)) createRequest {
	req := createRequest{
		Config:     &container.Config{Image: "app:1.0", Labels: map[string]string{"toolbox.managed": "1"}},
		HostConfig: &container.HostConfig{},
	}
	if mod != nil {
		mod(&req)
	}
	return req
}

func launcherCreate(mod func(*createRequest)) createRequest {
	return managedCreate(func(r *createRequest) {
		r.Image, r.Entrypoint, r.Cmd = "docker:27.5.1-cli", []string{"sh", "-c", "script"}, []string{"./launcher", "bootstrap", "app"}
		r.Env = []string{"REF=abc"}
		r.HostConfig.Mounts = []mount.Mount{{Type: mount.TypeBind, Source: "/var/run/docker.sock", Target: "/var/run/docker.sock"}}
		if mod != nil {
			mod(r)
		}
	})
}

// TestCheckCreate: what a container may and may not be created with.
func TestCheckCreate(t *testing.T) {
	hc := func(f func(*container.HostConfig)) createRequest {
		return managedCreate(func(r *createRequest) { f(r.HostConfig) })
	}
	mounts := func(m ...mount.Mount) createRequest {
		return hc(func(h *container.HostConfig) { h.Mounts = m })
	}
	allowed := map[string]createRequest{
		"plain labelled":   managedCreate(nil),
		"no host config":   managedCreate(func(r *createRequest) { r.HostConfig = nil }),
		"its own volume":   mounts(mount.Mount{Type: mount.TypeVolume, Source: "data", Target: "/data"}),
		"anonymous volume": mounts(mount.Mount{Type: mount.TypeVolume, Target: "/cache"}),
		"tmpfs":            mounts(mount.Mount{Type: mount.TypeTmpfs, Target: "/tmp"}),
		"its network":      hc(func(h *container.HostConfig) { h.NetworkMode = "apps" }),
		"no network":       hc(func(h *container.HostConfig) { h.NetworkMode = "none" }),
		"published port":   hc(func(h *container.HostConfig) { h.PortBindings = network.PortMap{} }),
		"endpoint on its network": managedCreate(func(r *createRequest) {
			r.NetworkingConfig = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"apps": {}}}
		}),
		"the catalog's launcher": launcherCreate(nil),
		"launcher, no network": launcherCreate(func(r *createRequest) {
			r.HostConfig.NetworkMode = "none"
			r.NetworkingConfig = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"none": {}}}
		}),
		"what the toolbox sets": managedCreate(func(r *createRequest) {
			r.Cmd, r.Entrypoint, r.Env, r.User, r.StopTimeout = []string{"serve"}, []string{"/app"}, []string{"A=1"}, "1000", new(int)
			r.Healthcheck = &container.HealthConfig{Test: []string{"CMD", "/app", "health"}, Retries: 3}
			r.AttachStdin, r.AttachStdout, r.AttachStderr, r.OpenStdin, r.StdinOnce = true, true, true, true, true
			r.HostConfig.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyUnlessStopped}
			r.HostConfig.Memory, r.HostConfig.MemoryReservation, r.HostConfig.ShmSize = 256<<20, 64<<20, 128<<20
			r.HostConfig.NetworkMode = "apps"
			r.HostConfig.Mounts = []mount.Mount{{Type: mount.TypeVolume, Source: "data", Target: "/data", ReadOnly: true}}
			r.NetworkingConfig = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"apps": {Aliases: []string{"app"}}}}
		}),
	}
	for name, req := range allowed {
		t.Run("allowed/"+name, func(t *testing.T) {
			if err := testPolicy().checkCreate(req, testLookups()); err != nil {
				t.Errorf("checkCreate = %v, want allowed", err)
			}
		})
	}
	refused := map[string]struct {
		req  createRequest
		want string
	}{
		"no label":           {managedCreate(func(r *createRequest) { r.Labels = nil }), "must carry the label toolbox.managed=1"},
		"wrong value":        {managedCreate(func(r *createRequest) { r.Labels["toolbox.managed"] = "0" }), "must carry the label"},
		"no config":          {createRequest{HostConfig: &container.HostConfig{}}, "needs a configuration"},
		"guard's label":      {managedCreate(func(r *createRequest) { r.Labels["toolbox.guard"] = "1" }), "the guard's own"},
		"privileged":         {hc(func(h *container.HostConfig) { h.Privileged = true }), "privileged"},
		"cap add":            {hc(func(h *container.HostConfig) { h.CapAdd = []string{"SYS_ADMIN"} }), "added capabilities (SYS_ADMIN)"},
		"devices":            {hc(func(h *container.HostConfig) { h.Devices = []container.DeviceMapping{{PathOnHost: "/dev/sda"}} }), "devices"},
		"gpu":                {hc(func(h *container.HostConfig) { h.DeviceRequests = []container.DeviceRequest{{Count: -1}} }), "devices"},
		"seccomp off":        {hc(func(h *container.HostConfig) { h.SecurityOpt = []string{"seccomp=unconfined"} }), "security options"},
		"apparmor off":       {hc(func(h *container.HostConfig) { h.SecurityOpt = []string{"apparmor=unconfined"} }), "security options"},
		"unmasked proc":      {hc(func(h *container.HostConfig) { h.MaskedPaths = []string{} }), "masked"},
		"sysctls":            {hc(func(h *container.HostConfig) { h.Sysctls = map[string]string{"kernel.x": "1"} }), "sysctls"},
		"runtime":            {hc(func(h *container.HostConfig) { h.Runtime = "runc-unsafe" }), "runtime"},
		"cgroup parent":      {hc(func(h *container.HostConfig) { h.CgroupParent = "/" }), "cgroup parent"},
		"runtime, isolation": {hc(func(h *container.HostConfig) { h.Isolation = "hyperv" }), "isolation"},
		"host network":       {hc(func(h *container.HostConfig) { h.NetworkMode = "host" }), "host's network"},
		"other's netns":      {hc(func(h *container.HostConfig) { h.NetworkMode = "container:abc" }), "another container's network"},
		"host pid":           {hc(func(h *container.HostConfig) { h.PidMode = "host" }), "PID namespace"},
		"other's pid":        {hc(func(h *container.HostConfig) { h.PidMode = "container:abc" }), "PID namespace"},
		"host ipc":           {hc(func(h *container.HostConfig) { h.IpcMode = "host" }), "IPC namespace"},
		"host uts":           {hc(func(h *container.HostConfig) { h.UTSMode = "host" }), "UTS namespace"},
		"host userns":        {hc(func(h *container.HostConfig) { h.UsernsMode = "host" }), "user namespace"},
		"host cgroupns":      {hc(func(h *container.HostConfig) { h.CgroupnsMode = "host" }), "cgroup namespace"},
		"volumes from":       {hc(func(h *container.HostConfig) { h.VolumesFrom = []string{"toolbox-guard"} }), "volumes from"},
		"binds":              {hc(func(h *container.HostConfig) { h.Binds = []string{"/:/host"} }), "binds (/:/host)"},
		"named via binds":    {hc(func(h *container.HostConfig) { h.Binds = []string{"data:/data"} }), "binds"},
		"links":              {hc(func(h *container.HostConfig) { h.Links = []string{"db:db"} }), "links"},
		"log driver":         {hc(func(h *container.HostConfig) { h.LogConfig.Type = "syslog" }), "log driver"},
		"annotations":        {hc(func(h *container.HostConfig) { h.Annotations = map[string]string{"run.oci.keep_original_groups": "1"} }), "annotations"},
		"host network endpoint": {managedCreate(func(r *createRequest) {
			r.NetworkingConfig = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"host": {}}}
		}), "host's network"},
		"foreign network":  {hc(func(h *container.HostConfig) { h.NetworkMode = "theirs" }), `network "theirs" is not the toolbox's`},
		"bind of /":        {mounts(mount.Mount{Type: mount.TypeBind, Source: "/", Target: "/host"}), "bind mounts"},
		"bind of /etc":     {mounts(mount.Mount{Type: mount.TypeBind, Source: "/etc", Target: "/etc2"}), "bind mounts"},
		"bind of /run":     {mounts(mount.Mount{Type: mount.TypeBind, Source: "/run", Target: "/r"}), "bind mounts"},
		"bind /run socket": {mounts(mount.Mount{Type: mount.TypeBind, Source: "/run/docker.sock", Target: "/s"}), "bind mounts"},
		"socket, no grant": {mounts(mount.Mount{Type: mount.TypeBind, Source: "/var/run/docker.sock", Target: "/var/run/docker.sock"}), "the engine's socket is mounted only"},
		"socket, dotted":   {mounts(mount.Mount{Type: mount.TypeBind, Source: "/var/run/../run/docker.sock", Target: "/s"}), "bind mounts"},
		"npipe":            {mounts(mount.Mount{Type: mount.TypeNamedPipe, Source: "x", Target: "/x"}), "npipe"},
		"image mount":      {mounts(mount.Mount{Type: mount.Type("image"), Source: "x", Target: "/x"}), "image"},
		"volume driver": {mounts(mount.Mount{Type: mount.TypeVolume, Source: "new", Target: "/x",
			VolumeOptions: &mount.VolumeOptions{DriverConfig: &mount.Driver{Name: "local", Options: map[string]string{"type": "none", "o": "bind", "device": "/etc"}}}}), "driver of its own"},
		"missing volume":          {mounts(mount.Mount{Type: mount.TypeVolume, Source: "nope", Target: "/x"}), `"nope" does not exist`},
		"foreign volume":          {mounts(mount.Mount{Type: mount.TypeVolume, Source: "foreign", Target: "/x"}), `"foreign" is not the toolbox's`},
		"guard's volume":          {mounts(mount.Mount{Type: mount.TypeVolume, Source: "guard", Target: "/x"}), `"guard" is the guard's own`},
		"launcher, other command": {launcherCreate(func(r *createRequest) { r.Cmd = []string{"sh"} }), "mounted only into the launchers"},
		"launcher, other image":   {launcherCreate(func(r *createRequest) { r.Image = "alpine:3" }), "mounted only into the launchers"},
		"launcher, other env":     {launcherCreate(func(r *createRequest) { r.Env = []string{"REF=main"} }), "mounted only into the launchers"},
		"launcher, more env":      {launcherCreate(func(r *createRequest) { r.Env = append(r.Env, "LD_PRELOAD=/x") }), "mounted only into the launchers"},
		"launcher, as a user":     {launcherCreate(func(r *createRequest) { r.User = "0" }), "mounted only into the launchers"},
		"launcher, more mounts": {launcherCreate(func(r *createRequest) {
			r.HostConfig.Mounts = append(r.HostConfig.Mounts, mount.Mount{Type: mount.TypeVolume, Source: "data", Target: "/data"})
		}), "mounted only into the launchers"},
		"launcher, privileged": {launcherCreate(func(r *createRequest) { r.HostConfig.Privileged = true }), "privileged"},
		// A launcher runs its grant's command only: no health check (run in
		// it, with the socket), stdin, terminal or other settings.
		"launcher, health check": {launcherCreate(func(r *createRequest) {
			r.Healthcheck = &container.HealthConfig{Test: []string{"CMD-SHELL", "docker run --privileged -v /:/h alpine"}}
		}), "with none of Healthcheck"},
		"launcher, stdin":       {launcherCreate(func(r *createRequest) { r.OpenStdin, r.AttachStdin = true, true }), "with none of AttachStdin, OpenStdin"},
		"launcher, stop signal": {launcherCreate(func(r *createRequest) { r.StopTimeout = new(int) }), "with none of StopTimeout"},
		"launcher, memory":      {launcherCreate(func(r *createRequest) { r.HostConfig.Memory = 1 << 30 }), "with none of Memory"},
		"launcher, on a network": {launcherCreate(func(r *createRequest) {
			r.HostConfig.NetworkMode = "apps"
			r.NetworkingConfig = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"apps": {}}}
		}), "on the default network or none"},
		"launcher, tty":     {launcherCreate(func(r *createRequest) { r.Tty = true }), "Tty"},
		"launcher, tmpfs":   {launcherCreate(func(r *createRequest) { r.HostConfig.Tmpfs = map[string]string{"/x": ""} }), "Tmpfs"},
		"launcher, volumes": {launcherCreate(func(r *createRequest) { r.Volumes = map[string]struct{}{"/x": {}} }), "Volumes"},
		"launcher, ports": {launcherCreate(func(r *createRequest) {
			r.HostConfig.PortBindings = network.PortMap{network.MustParsePort("80/tcp"): {{HostPort: "80"}}}
		}), "PortBindings"},
		"launcher, bind options": {launcherCreate(func(r *createRequest) {
			r.HostConfig.Mounts[0].BindOptions = &mount.BindOptions{Propagation: mount.PropagationRShared}
		}), "BindOptions"},
		// Settings the toolbox never sets through the guard.
		"other's cgroup": {hc(func(h *container.HostConfig) { h.Cgroup = "container:toolbox-guard" }), "Cgroup"},
		"published ports": {hc(func(h *container.HostConfig) {
			h.PortBindings = network.PortMap{network.MustParsePort("22/tcp"): {{HostPort: "2222"}}}
		}), "PortBindings"},
		"publish all":        {hc(func(h *container.HostConfig) { h.PublishAllPorts = true }), "PublishAllPorts"},
		"host volume driver": {hc(func(h *container.HostConfig) { h.VolumeDriver = "local" }), "VolumeDriver"},
		"no oom killer":      {hc(func(h *container.HostConfig) { h.OomKillDisable = new(bool) }), "OomKillDisable"},
		"no pids limit":      {hc(func(h *container.HostConfig) { l := int64(-1); h.PidsLimit = &l }), "PidsLimit"},
		"ulimits": {hc(func(h *container.HostConfig) {
			h.Ulimits = []*container.Ulimit{{Name: "nofile", Soft: 1 << 20, Hard: 1 << 20}}
		}), "Ulimits"},
		"cpu shares":      {hc(func(h *container.HostConfig) { h.CPUShares = 1 << 20 }), "CPUShares"},
		"negative memory": {hc(func(h *container.HostConfig) { h.Memory = -1 }), "not negative"},
		"shareable ipc":   {hc(func(h *container.HostConfig) { h.IpcMode = container.IPCModeShareable }), "IpcMode"},
		"exposed ports":   {managedCreate(func(r *createRequest) { r.ExposedPorts = network.PortSet{network.MustParsePort("22/tcp"): {}} }), "ExposedPorts"},
		"terminal":        {managedCreate(func(r *createRequest) { r.Tty = true }), "Tty"},
		"static address": {managedCreate(func(r *createRequest) {
			r.NetworkingConfig = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"apps": {MacAddress: network.HardwareAddr{2, 0, 0, 0, 0, 1}}}}
		}), "EndpointsConfig.apps.MacAddress"},
		"tmpfs size": {mounts(mount.Mount{Type: mount.TypeTmpfs, Target: "/t", TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 1 << 40}}), "TmpfsOptions"},
	}
	for name, c := range refused {
		t.Run("refused/"+name, func(t *testing.T) {
			err := testPolicy().checkCreate(c.req, testLookups())
			if !errors.Is(err, errDenied) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("checkCreate = %v, want a refusal saying %q", err, c.want)
			}
		})
	}
}

func tarOf(t *testing.T, files ...tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range files {
		h := h
		body := []byte("ok: yes\n")
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			_, _ = tw.Write(body)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestCheckGrantArchive: a launcher receives its app.yml and nothing else.
func TestCheckGrantArchive(t *testing.T) {
	g := testPolicy().SocketGrants[0]
	dir := tar.Header{Name: "build/", Typeflag: tar.TypeDir, Mode: 0o755}
	file := tar.Header{Name: "build/app.yml", Typeflag: tar.TypeReg, Mode: 0o644}
	if _, err := checkGrantArchive(g, "launcher", "/", tarOf(t, dir, file)); err != nil {
		t.Errorf("the app.yml archive: %v, want allowed", err)
	}
	for name, c := range map[string]struct {
		dest string
		tar  []byte
	}{
		"another path":     {"/", tarOf(t, tar.Header{Name: "usr/local/bin/docker", Typeflag: tar.TypeReg})},
		"file and another": {"/", tarOf(t, file, tar.Header{Name: "src/launcher", Typeflag: tar.TypeReg})},
		"twice":            {"/", tarOf(t, file, file)},
		"symlink":          {"/", tarOf(t, tar.Header{Name: "build/app.yml", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"})},
		"other folder":     {"/", tarOf(t, tar.Header{Name: "src/", Typeflag: tar.TypeDir})},
		"elsewhere":        {"/build", tarOf(t, tar.Header{Name: "app.yml", Typeflag: tar.TypeReg})},
		"empty":            {"/", tarOf(t)},
		"not a tar":        {"/", []byte("\x1f\x8b compressed")},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := checkGrantArchive(g, "launcher", c.dest, c.tar); !errors.Is(err, errDenied) {
				t.Errorf("checkGrantArchive = %v, want refused", err)
			}
		})
	}
	g.CheckConfig = func(string, []byte) error { return errors.New("docker_args is not allowed") }
	if _, err := checkGrantArchive(g, "launcher", "/", tarOf(t, file)); err == nil || !strings.Contains(err.Error(), "docker_args") {
		t.Errorf("a config the grant refuses: %v", err)
	}
}

// TestImageNames: no image takes the toolbox's own names.
func TestImageNames(t *testing.T) {
	p := testPolicy()
	for _, ref := range []string{"toolbox:dev-123", "docker.io/library/toolbox:x", "toolbox", "docker:27.5.1-cli", "docker:latest", "docker.io/library/docker:27.5.1-cli", "UPPER:case"} {
		if err := p.checkImageWrite(ref); !errors.Is(err, errDenied) {
			t.Errorf("checkImageWrite(%q) = %v, want refused", ref, err)
		}
	}
	for _, ref := range []string{"toolbox-test/standin:dev", "mattermost/mattermost-team-edition:11.11.1", "local_discourse/app:v1", "myregistry/toolbox:1"} {
		if err := p.checkImageWrite(ref); err != nil {
			t.Errorf("checkImageWrite(%q) = %v, want allowed", ref, err)
		}
	}
	for ref, ok := range map[string]bool{
		"docker:27.5.1-cli": true, "docker.io/library/docker:27.5.1-cli": true, "postgres:17.10": true,
		"docker:28": false, "toolbox:evil": false,
	} {
		if err := p.checkPull(ref); (err == nil) != ok {
			t.Errorf("checkPull(%q) = %v, want allowed %v", ref, err, ok)
		}
	}
}

// TestParseFilters reads both forms of the API's filters.
func TestParseFilters(t *testing.T) {
	for in, want := range map[string]int{
		``: 0, `{"label":{"a=b":true}}`: 1, `{"label":["a=b","c=d"]}`: 2,
	} {
		got, err := parseFilters(in)
		if err != nil || len(got["label"]) != want {
			t.Errorf("parseFilters(%q) = %v, %v; want %d labels", in, got, err, want)
		}
	}
	for _, in := range []string{`[`, `{"label":3}`} {
		if _, err := parseFilters(in); err == nil {
			t.Errorf("parseFilters(%q) accepted", in)
		}
	}
}

// FuzzCheckCreate feeds arbitrary creation bodies to the check: it never
// panics, and whatever it lets through, re-encoded as the guard forwards
// it, carries the label and none of the privileges it refuses.
func FuzzCheckCreate(f *testing.F) {
	for _, seed := range []string{
		`{"Image":"app:1","Labels":{"toolbox.managed":"1"}}`,
		`{"Image":"app:1","Labels":{"toolbox.managed":"1"},"HostConfig":{"Privileged":true}}`,
		`{"image":"app:1","labels":{"toolbox.managed":"1"},"hostconfig":{"privileged":true,"PRIVILEGED":false}}`,
		`{"Labels":{"toolbox.managed":"1"},"HostConfig":{"Mounts":[{"Type":"bind","Source":"/var/run/docker.sock","Target":"/s"}]}}`,
		`{"Labels":{"toolbox.managed":"1"},"HostConfig":{"Binds":["/:/h"],"NetworkMode":"host"}}`,
		`{"Labels":{"toolbox.managed":"1"},"HostConfig":{"Mounts":[{"Type":"volume","Source":"data","Target":"/d"}]}}`,
	} {
		f.Add([]byte(seed))
	}
	p := testPolicy()
	f.Fuzz(func(t *testing.T, body []byte) {
		var req createRequest
		if json.Unmarshal(body, &req) != nil {
			return
		}
		if p.checkCreate(req, testLookups()) != nil {
			return
		}
		clean, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("re-encoding an allowed request: %v", err)
		}
		var again createRequest
		if err := json.Unmarshal(clean, &again); err != nil {
			t.Fatalf("the forwarded body does not decode: %v", err)
		}
		hc := again.HostConfig
		if again.Config == nil || again.Labels["toolbox.managed"] != "1" {
			t.Fatalf("allowed without the label: %s", clean)
		}
		if hc != nil && (hc.Privileged || len(hc.CapAdd) > 0 || len(hc.Binds) > 0 || hc.NetworkMode == "host" || hc.PidMode != "" || len(hc.SecurityOpt) > 0 || len(hc.Devices) > 0) {
			t.Fatalf("allowed with privileges: %s", clean)
		}
		if hc != nil {
			for _, m := range hc.Mounts {
				if m.Type == mount.TypeBind && !slices.Equal(again.Cmd, p.SocketGrants[0].Cmd) {
					t.Fatalf("a bind allowed outside the grant: %s", clean)
				}
			}
		}
	})
}

// FuzzParseFilters: any filters either fail to parse or come back as sets.
func FuzzParseFilters(f *testing.F) {
	f.Add(`{"label":{"a=b":true}}`)
	f.Add(`{"label":["a=b"],"name":["x"]}`)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseFilters(s)
		if err == nil && got == nil {
			t.Fatal("nil filters without an error")
		}
	})
}

// TestCheckNetworksByName: a container's networks are forwarded under their
// names, never an ID prefix that the engine would look up again at the
// next start; networks that do not exist or whose name is hexadecimal
// (which the engine would read as an ID prefix) are refused.
func TestCheckNetworksByName(t *testing.T) {
	p := testPolicy()
	req := managedCreate(func(r *createRequest) {
		r.HostConfig = &container.HostConfig{NetworkMode: "0123abcd"}
		r.NetworkingConfig = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"0123abcd": {Aliases: []string{"app"}}}}
	})
	if err := p.checkCreate(req, testLookups()); err != nil {
		t.Fatal(err)
	}
	if req.HostConfig.NetworkMode != "apps" || len(req.NetworkingConfig.EndpointsConfig) != 1 || req.NetworkingConfig.EndpointsConfig["apps"] == nil ||
		!slices.Equal(req.NetworkingConfig.EndpointsConfig["apps"].Aliases, []string{"app"}) {
		t.Errorf("forwarded: mode %q, endpoints %v; want both named apps", req.HostConfig.NetworkMode, req.NetworkingConfig.EndpointsConfig)
	}
	for ref, want := range map[string]string{"beef": "could be another network's ID", "missing": "does not exist"} {
		err := p.checkCreate(managedCreate(func(r *createRequest) { r.HostConfig = &container.HostConfig{NetworkMode: container.NetworkMode(ref)} }), testLookups())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("network %q: %v, want %q", ref, err, want)
		}
		err = p.checkCreate(managedCreate(func(r *createRequest) {
			r.NetworkingConfig = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{ref: {}}}
		}), testLookups())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("endpoint on %q: %v, want %q", ref, err, want)
		}
	}
	if networkName("cafe01") || !networkName("toolbox") || !networkName("CAFE") || !networkName("cafe-01") {
		t.Error("networkName: only names of hexadecimal digits alone are refused")
	}
}

// With a cgroup parent set (TOOLBOX_CGROUP_PARENT), every container is made
// under exactly that one: not the engine's default, not another.
func TestCheckCreateCgroupParent(t *testing.T) {
	p := testPolicy()
	p.CgroupParent = "/toolbox-2g"
	for parent, want := range map[string]string{
		"/toolbox-2g":      "",
		"":                 `cgroup parent but /toolbox-2g ("" asked)`,
		"/":                `cgroup parent but /toolbox-2g ("/" asked)`,
		"/toolbox-2g/../x": "cgroup parent but /toolbox-2g",
	} {
		err := p.checkCreate(managedCreate(func(r *createRequest) { r.HostConfig.CgroupParent = parent }), testLookups())
		switch {
		case want == "" && err != nil:
			t.Errorf("cgroup parent %q: %v, want allowed", parent, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("cgroup parent %q: %v, want refused with %q", parent, err, want)
		}
	}
}
