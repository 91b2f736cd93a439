package catalog

// Strict reading of a catalog entry. parse collects every problem it finds,
// each naming the app and what is wrong, and fails if there is any.
//
// The rules:
//
//   - The file is a Compose file that compose-go loads with its schema
//     validation and consistency checks on: an unknown Compose key fails.
//   - Top level: only services, volumes, x-toolbox, and other x-* keys (used
//     for YAML anchors). Services use only the keys a single-engine deployer
//     honours: image, command, entrypoint, environment, volumes, depends_on,
//     healthcheck, mem_limit, mem_reservation, restart, expose, shm_size. No
//     build, no ports (the proxy reaches apps on the Docker network), no
//     networks, no env_file, no bind mounts.
//   - x-toolbox is decoded with unknown keys rejected; description, upstream
//     (an https URL), version, memory, disk, entry.service, entry.port,
//     health_path and at least one dump are required.
//   - Every image is a literal name pinned to a version: a tag that starts
//     with a version of at least two numbers (17.10, v2026.8.0,
//     7.1.2-php8.3-apache), or a digest. No latest, no missing tag, no
//     floating words (stable, lts, alpine). The entry service's tag contains
//     x-toolbox.version.
//   - Variables: only TOOLBOX_DOMAIN, TOOLBOX_APP and the declared secrets and
//     settings; each declared one is used; x-toolbox itself uses none.
//   - The entry service exists and exposes the entry port; only the entry
//     service has expose.
//   - Every dump, post-install step and build names an existing service;
//     commands are not empty; dump files are plain, distinct file names;
//     every dump has a restore command, and a check command with what it
//     counts (check_counts: lowercase words, such as users). A build has an
//     https repository, a ref, a pinned base image, a command and an output
//     image other than the service's (pinned) image, and builds the app's
//     version.
//   - Data volumes are declared named volumes that a service mounts; every
//     service volume is a named volume declared at the top level, with no
//     driver options.
//   - Memory: every service sets mem_reservation (what it uses working
//     lightly, which the capacity guard counts) and mem_limit (the most it
//     may reach), the reservation at most the limit; x-toolbox.memory says,
//     for every service and no other, where its reservation comes from:
//     either measured (the figure, at most the reservation, the date and how)
//     or upstream (the figure upstream documents and the https page that
//     says it). See ServiceMemory.
//   - Every service has a restart policy (always or unless-stopped); a
//     depends_on condition service_healthy points at a service with a health
//     check; only service_healthy and service_started are used.

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/interpolation"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/distribution/reference"
	"go.yaml.in/yaml/v4"
)

// The x-toolbox block, as written in the files.
type xToolbox struct {
	Description string                    `yaml:"description"`
	Upstream    string                    `yaml:"upstream"`
	Version     string                    `yaml:"version"`
	Memory      map[string]xServiceMemory `yaml:"memory"`
	Disk        string                    `yaml:"disk"`
	Entry       xEntry                    `yaml:"entry"`
	HealthPath  string                    `yaml:"health_path"`
	DataVolumes []string                  `yaml:"data_volumes"`
	Dumps       []xDump                   `yaml:"dumps"`
	Secrets     []xSecret                 `yaml:"secrets"`
	Settings    []xSetting                `yaml:"settings"`
	PostInstall []xStep                   `yaml:"post_install"`
	Build       *xBuild                   `yaml:"build"`
	Notes       string                    `yaml:"notes"`
}

// xServiceMemory is one service's line of x-toolbox.memory, written on one
// line so that replacing an upstream figure by a measurement is one line:
//
//	wordpress: {upstream: 40m, source: "https://...", note: "..."}
//	wordpress: {measured: 120m, date: 2026-12-09, how: "docker stats ..."}
type xServiceMemory struct {
	Measured string `yaml:"measured"`
	Date     string `yaml:"date"`
	How      string `yaml:"how"`
	Upstream string `yaml:"upstream"`
	Source   string `yaml:"source"`
	Note     string `yaml:"note"`
}

type xEntry struct {
	Service string `yaml:"service"`
	Port    int    `yaml:"port"`
}

type xDump struct {
	Service   string   `yaml:"service"`
	File      string   `yaml:"file"`
	Command   []string `yaml:"command"`
	Restore   []string `yaml:"restore"`
	Check     []string `yaml:"check"`
	CheckNoun string   `yaml:"check_counts"`
}

type xSecret struct {
	Name   string `yaml:"name"`
	Length int    `yaml:"length"`
}

type xSetting struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Required    bool   `yaml:"required"`
	Secret      bool   `yaml:"secret"`
	Default     string `yaml:"default"`
}

type xStep struct {
	Service     string   `yaml:"service"`
	Description string   `yaml:"description"`
	Command     []string `yaml:"command"`
}

type xBuild struct {
	Service    string            `yaml:"service"`
	Repository string            `yaml:"repository"`
	Ref        string            `yaml:"ref"`
	BaseImage  string            `yaml:"base_image"`
	Templates  []string          `yaml:"templates"`
	Params     map[string]string `yaml:"params"`
	Command    []string          `yaml:"command"`
	Output     string            `yaml:"output"`
}

const extensionKey = "x-toolbox"

var (
	serviceKeys = []string{
		"command", "depends_on", "entrypoint", "environment", "expose", "healthcheck",
		"image", "mem_limit", "mem_reservation", "restart", "shm_size", "volumes",
	}
	variableName = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	versionTag   = regexp.MustCompile(`^v?[0-9]+(\.[0-9]+)+`)
	fileName     = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*\.[a-z0-9]+$`)
	checkNoun    = regexp.MustCompile(`^[a-z]+( [a-z]+)*$`)
)

// Secret lengths the catalog accepts.
const (
	minSecretLength = 16
	maxSecretLength = 128
)

// validator collects the problems of one entry.
type validator struct {
	problems []error
}

func (v *validator) addf(format string, args ...any) {
	v.problems = append(v.problems, fmt.Errorf(format, args...))
}

func (v *validator) err(name string) error {
	if len(v.problems) == 0 {
		return nil
	}
	errs := make([]error, len(v.problems))
	for i, p := range v.problems {
		errs[i] = fmt.Errorf("catalog: %s: %w", name, p)
	}
	return errors.Join(errs...)
}

// parse reads and validates one catalog entry.
func parse(ctx context.Context, name string, data []byte) (App, error) {
	var v validator
	app, ok := v.parse(ctx, name, data)
	if err := v.err(name); err != nil {
		return App{}, err
	}
	if !ok {
		return App{}, fmt.Errorf("catalog: %s: invalid entry", name)
	}
	return app, nil
}

func (v *validator) parse(ctx context.Context, name string, data []byte) (App, bool) {
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		v.addf("not YAML: %w", err)
		return App{}, false
	}
	if raw == nil {
		v.addf("empty file")
		return App{}, false
	}
	v.checkShape(raw)

	meta, ok := v.decodeMeta(raw[extensionKey])
	if !ok {
		return App{}, false
	}
	app := v.checkMeta(name, meta)
	app.source = data

	// Variables, checked on the file as written, before interpolation.
	declared := map[string]bool{VarDomain: true, VarApp: true}
	for _, s := range app.Secrets {
		declared[s.Name] = true
	}
	for _, s := range app.Settings {
		declared[s.Name] = true
	}
	used := template.ExtractVariables(raw, nil)
	for _, n := range slices.Sorted(maps.Keys(used)) {
		if !declared[n] {
			v.addf("undeclared variable %s: declare it in x-toolbox secrets or settings", n)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(declared)) {
		if _, ok := used[n]; !ok && n != VarDomain && n != VarApp {
			v.addf("variable %s is declared but never used", n)
		}
	}
	if len(v.problems) > 0 {
		return App{}, false
	}

	p, err := loadProject(ctx, name, data, placeholders(name, app))
	if err != nil {
		v.addf("%w", err)
		return App{}, false
	}
	v.checkProject(&app, p)
	return app, len(v.problems) == 0
}

// placeholders are the values used to load an entry for validation.
func placeholders(name string, a App) map[string]string {
	values := map[string]string{VarDomain: name + ".example.org", VarApp: name}
	for _, s := range a.Secrets {
		values[s.Name] = strings.Repeat("x", s.Length)
	}
	for _, s := range a.Settings {
		values[s.Name] = s.Default
		if values[s.Name] == "" {
			values[s.Name] = "placeholder"
		}
	}
	return values
}

// checkShape enforces the Compose subset the toolbox deploys, on the file as
// written.
func (v *validator) checkShape(raw map[string]any) {
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		if k != "services" && k != "volumes" && !strings.HasPrefix(k, "x-") {
			v.addf("top-level key %q is not supported by the toolbox (use services, volumes, x-toolbox)", k)
		}
	}
	if _, ok := raw[extensionKey]; !ok {
		v.addf("missing %s block", extensionKey)
	}
	services, _ := raw["services"].(map[string]any)
	if len(services) == 0 {
		v.addf("no services")
	}
	for _, sn := range slices.Sorted(maps.Keys(services)) {
		svc, ok := services[sn].(map[string]any)
		if !ok {
			continue // compose-go reports it
		}
		for _, k := range slices.Sorted(maps.Keys(svc)) {
			if !slices.Contains(serviceKeys, k) && !strings.HasPrefix(k, "x-") {
				v.addf("service %s: key %q is not supported by the toolbox (supported: %s)", sn, k, strings.Join(serviceKeys, ", "))
			}
		}
		image, _ := svc["image"].(string)
		switch {
		case image == "":
			v.addf("service %s: no image", sn)
		case strings.Contains(image, "$"):
			v.addf("service %s: image %q uses a variable: images must be literal", sn, image)
		default:
			if err := checkPinned(image); err != nil {
				v.addf("service %s: %w", sn, err)
			}
		}
	}
	volumes, _ := raw["volumes"].(map[string]any)
	for _, vn := range slices.Sorted(maps.Keys(volumes)) {
		if def, ok := volumes[vn].(map[string]any); ok && len(def) > 0 {
			v.addf("volume %s: options are not supported by the toolbox: declare it as %s: {}", vn, vn)
		}
	}
}

// checkPinned says whether image names an explicit version.
func checkPinned(image string) error {
	ref, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return fmt.Errorf("image %q: %w", image, err)
	}
	if _, ok := ref.(reference.Digested); ok {
		return nil
	}
	tagged, ok := ref.(reference.Tagged)
	if !ok {
		return fmt.Errorf("image %q is not pinned: give a version tag or a digest", image)
	}
	if tagged.Tag() == "latest" {
		return fmt.Errorf("image %q is not pinned: latest moves; give a version tag or a digest", image)
	}
	if !versionTag.MatchString(tagged.Tag()) {
		return fmt.Errorf("image %q is not pinned: tag %q is not a version (want at least major.minor, such as 17.10)", image, tagged.Tag())
	}
	return nil
}

// decodeMeta reads the x-toolbox block strictly. The block is interpolated
// the way Compose interpolates it ($$ becomes $), after checking that it
// uses no variable.
func (v *validator) decodeMeta(block any) (xToolbox, bool) {
	if block == nil {
		return xToolbox{}, false // reported by checkShape
	}
	tree := map[string]any{extensionKey: block}
	if used := template.ExtractVariables(tree, nil); len(used) > 0 {
		v.addf("%s uses variables %s: its commands run in the container, write $$VAR to read the container's environment",
			extensionKey, strings.Join(slices.Sorted(maps.Keys(used)), ", "))
		return xToolbox{}, false
	}
	tree, err := interpolation.Interpolate(tree, interpolation.Options{
		LookupValue: func(string) (string, bool) { return "", false },
	})
	if err != nil {
		v.addf("%s: %w", extensionKey, err)
		return xToolbox{}, false
	}
	// The memory block of before the per-service model (min, recommended)
	// would fail the decoding below with a message about types.
	if block, ok := tree[extensionKey].(map[string]any); ok {
		if memory, ok := block["memory"].(map[string]any); ok {
			for _, k := range slices.Sorted(maps.Keys(memory)) {
				if _, ok := memory[k].(map[string]any); !ok {
					v.addf("%s: memory.%s: each entry of memory is a service, with where its mem_reservation comes from: "+
						"{measured: 91m, date: 2026-12-02, how: ...} or {upstream: 40m, source: https://..., note: ...}", extensionKey, k)
				}
			}
			if len(v.problems) > 0 {
				return xToolbox{}, false
			}
		}
	}
	text, err := yaml.Marshal(tree[extensionKey])
	if err != nil {
		v.addf("%s: %w", extensionKey, err)
		return xToolbox{}, false
	}
	var meta xToolbox
	dec := yaml.NewDecoder(bytes.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(&meta); err != nil {
		var load *yaml.LoadErrors
		if errors.As(err, &load) {
			for _, e := range load.Errors {
				v.addf("%s: %w", extensionKey, e.Err) // the line would be that of the re-encoded block
			}
		} else {
			v.addf("%s: %w", extensionKey, err)
		}
		return xToolbox{}, false
	}
	return meta, true
}

// checkMeta checks the x-toolbox fields on their own and builds the App.
func (v *validator) checkMeta(name string, m xToolbox) App {
	a := App{
		Name:        name,
		Description: strings.TrimSpace(m.Description),
		Upstream:    m.Upstream,
		Version:     m.Version,
		Entry:       Entry{Service: m.Entry.Service, Port: m.Entry.Port},
		HealthPath:  m.HealthPath,
		DataVolumes: m.DataVolumes,
		Notes:       strings.TrimSpace(m.Notes),
	}
	required := func(field, value string) {
		if strings.TrimSpace(value) == "" {
			v.addf("%s: missing %s", extensionKey, field)
		}
	}
	required("description", m.Description)
	required("upstream", m.Upstream)
	required("version", m.Version)
	required("health_path", m.HealthPath)
	required("entry.service", m.Entry.Service)
	if m.Upstream != "" {
		if u, err := url.Parse(m.Upstream); err != nil || u.Scheme != "https" || u.Host == "" {
			v.addf("%s: upstream %q is not an https URL", extensionKey, m.Upstream)
		}
	}
	if m.HealthPath != "" && !strings.HasPrefix(m.HealthPath, "/") {
		v.addf("%s: health_path %q does not start with /", extensionKey, m.HealthPath)
	}
	if m.Entry.Port == 0 {
		v.addf("%s: missing entry.port", extensionKey)
	} else if m.Entry.Port < 1 || m.Entry.Port > 65535 {
		v.addf("%s: entry.port %d is not a port", extensionKey, m.Entry.Port)
	}

	size := func(field, s string) int64 {
		if s == "" {
			v.addf("%s: missing %s", extensionKey, field)
			return 0
		}
		n, err := parseSize(s)
		if err != nil {
			v.addf("%s: %s: %w", extensionKey, field, err)
		}
		return n
	}
	a.Disk = size("disk", m.Disk)
	a.Memory = v.checkMemorySources(m.Memory)

	if len(m.Dumps) == 0 {
		v.addf("%s: missing dumps: every app needs an application-consistent dump", extensionKey)
	}
	files := map[string]bool{}
	for i, d := range m.Dumps {
		where := fmt.Sprintf("%s: dumps[%d]", extensionKey, i)
		required := func(field, value string) {
			if value == "" {
				v.addf("%s: missing %s", where, field)
			}
		}
		required("service", d.Service)
		required("file", d.File)
		if len(d.Command) == 0 {
			v.addf("%s: missing command", where)
		}
		if len(d.Restore) == 0 {
			v.addf("%s: missing restore", where)
		}
		if len(d.Check) == 0 {
			v.addf("%s: missing check: the command that prints how many rows the restored %s holds (such as users), to prove that a restore loaded data",
				where, cmp.Or(d.File, "dump"))
		}
		switch {
		case d.CheckNoun == "":
			v.addf("%s: missing check_counts: what check counts, such as users", where)
		case !checkNoun.MatchString(d.CheckNoun):
			v.addf("%s: check_counts %q is not lowercase words, such as users", where, d.CheckNoun)
		}
		if d.File != "" && !fileName.MatchString(d.File) {
			v.addf("%s: file %q is not a plain file name with an extension", where, d.File)
		}
		if files[d.File] {
			v.addf("%s: file %q is used twice", where, d.File)
		}
		files[d.File] = true
		a.Dumps = append(a.Dumps, Dump{
			Service: d.Service, Command: d.Command, Restore: d.Restore,
			Check: d.Check, CheckNoun: d.CheckNoun, File: d.File,
		})
	}

	names := map[string]bool{}
	checkName := func(kind, n string) {
		switch {
		case !variableName.MatchString(n):
			v.addf("%s: %s %q: names are upper case letters, digits and _", extensionKey, kind, n)
		case strings.HasPrefix(n, "TOOLBOX_"):
			v.addf("%s: %s %q: the TOOLBOX_ prefix is reserved", extensionKey, kind, n)
		case names[n]:
			v.addf("%s: %s %q is declared twice", extensionKey, kind, n)
		}
		names[n] = true
	}
	for _, s := range m.Secrets {
		checkName("secret", s.Name)
		if s.Length < minSecretLength || s.Length > maxSecretLength {
			v.addf("%s: secret %s: length %d is not between %d and %d", extensionKey, s.Name, s.Length, minSecretLength, maxSecretLength)
		}
		a.Secrets = append(a.Secrets, SecretSpec{Name: s.Name, Length: s.Length})
	}
	for _, s := range m.Settings {
		checkName("setting", s.Name)
		if strings.TrimSpace(s.Description) == "" {
			v.addf("%s: setting %s: missing description", extensionKey, s.Name)
		}
		if s.Required && s.Default != "" {
			v.addf("%s: setting %s: a required setting has no default", extensionKey, s.Name)
		}
		a.Settings = append(a.Settings, Setting{
			Name: s.Name, Description: strings.TrimSpace(s.Description),
			Required: s.Required, Secret: s.Secret, Default: s.Default,
		})
	}
	for i, s := range m.PostInstall {
		where := fmt.Sprintf("%s: post_install[%d]", extensionKey, i)
		if s.Service == "" {
			v.addf("%s: missing service", where)
		}
		if len(s.Command) == 0 {
			v.addf("%s: missing command", where)
		}
		if strings.TrimSpace(s.Description) == "" {
			v.addf("%s: missing description", where)
		}
		a.PostInstall = append(a.PostInstall, Step{Service: s.Service, Command: s.Command, Description: strings.TrimSpace(s.Description)})
	}
	if b := m.Build; b != nil {
		where := extensionKey + ": build"
		if b.Service == "" {
			v.addf("%s: missing service", where)
		}
		if u, err := url.Parse(b.Repository); err != nil || u.Scheme != "https" || u.Host == "" {
			v.addf("%s: repository %q is not an https URL", where, b.Repository)
		}
		if b.Ref == "" {
			v.addf("%s: missing ref", where)
		}
		if b.BaseImage == "" {
			v.addf("%s: missing base_image", where)
		} else if err := checkPinned(b.BaseImage); err != nil {
			v.addf("%s: base_image: %w", where, err)
		}
		if len(b.Command) == 0 {
			v.addf("%s: missing command", where)
		}
		if b.Output == "" {
			v.addf("%s: missing output", where)
		}
		if ver, ok := b.Params["version"]; ok && ver != m.Version {
			v.addf("%s: params.version %q is not the app's version %q", where, ver, m.Version)
		}
		a.Build = &Build{
			Service: b.Service, Repository: b.Repository, Ref: b.Ref, BaseImage: b.BaseImage,
			Templates: b.Templates, Params: b.Params, Command: b.Command, Output: b.Output,
		}
	}
	return a
}

// checkProject checks the loaded Compose project against the x-toolbox block.
func (v *validator) checkProject(a *App, p *types.Project) {
	service := func(kind, name string) (types.ServiceConfig, bool) {
		s, ok := p.Services[name]
		if !ok && name != "" {
			v.addf("%s names service %q, which does not exist (services: %s)", kind, name, strings.Join(slices.Sorted(maps.Keys(p.Services)), ", "))
		}
		return s, ok
	}

	// Entry.
	if entry, ok := service(extensionKey+": entry", a.Entry.Service); ok {
		if !exposes(entry, a.Entry.Port) {
			v.addf("%s: entry service %s does not expose port %d (add expose: [\"%d\"])", extensionKey, a.Entry.Service, a.Entry.Port, a.Entry.Port)
		}
		if ref, err := reference.ParseNormalizedNamed(entry.Image); err == nil {
			if t, ok := ref.(reference.Tagged); ok && a.Version != "" && !strings.Contains(t.Tag(), strings.TrimPrefix(a.Version, "v")) {
				v.addf("%s: version %q does not match the entry image %s", extensionKey, a.Version, entry.Image)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		if len(p.Services[name].Expose) > 0 && name != a.Entry.Service {
			v.addf("service %s: only the entry service may expose a port", name)
		}
	}

	// Hooks.
	for i, d := range a.Dumps {
		service(fmt.Sprintf("%s: dumps[%d]", extensionKey, i), d.Service)
	}
	for i, s := range a.PostInstall {
		service(fmt.Sprintf("%s: post_install[%d]", extensionKey, i), s.Service)
	}
	if a.Build != nil {
		if s, ok := service(extensionKey+": build", a.Build.Service); ok && s.Image == a.Build.Output {
			v.addf("%s: build: the service image must be a pinned tag of the output, not the output itself", extensionKey)
		}
	}

	// Volumes.
	mounted := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		for _, vol := range p.Services[name].Volumes {
			if vol.Type != types.VolumeTypeVolume || vol.Source == "" {
				v.addf("service %s: volume for %s is not a named volume", name, vol.Target)
				continue
			}
			mounted[vol.Source] = true
		}
	}
	seen := map[string]bool{}
	for _, dv := range a.DataVolumes {
		switch {
		case seen[dv]:
			v.addf("%s: data volume %s is listed twice", extensionKey, dv)
		case !hasVolume(p, dv):
			v.addf("%s: data volume %s is not a declared volume", extensionKey, dv)
		case !mounted[dv]:
			v.addf("%s: data volume %s is not mounted by any service", extensionKey, dv)
		}
		seen[dv] = true
	}

	// Resources and lifecycle.
	v.checkMemory(&a.Memory, p)
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		s := p.Services[name]
		if s.Restart != types.RestartPolicyAlways && s.Restart != types.RestartPolicyUnlessStopped {
			v.addf("service %s: restart must be always or unless-stopped", name)
		}
		for _, dep := range slices.Sorted(maps.Keys(s.DependsOn)) {
			switch cond := s.DependsOn[dep].Condition; cond {
			case types.ServiceConditionHealthy:
				if hc := p.Services[dep].HealthCheck; hc == nil || hc.Disable || len(hc.Test) == 0 {
					v.addf("service %s: depends on %s being healthy, but %s has no healthcheck", name, dep, dep)
				}
			case types.ServiceConditionStarted:
			default:
				v.addf("service %s: depends_on %s: condition %s is not supported (use service_healthy or service_started)", name, dep, cond)
			}
		}
		a.images = append(a.images, s.Image)
	}
	slices.Sort(a.images)
	a.images = slices.Compact(a.images)
}

// isoDate is how a measurement's date is written.
var isoDate = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)

// checkMemorySources reads x-toolbox.memory on its own: each service's
// basis, figure and source. The services' own mem_ lines are read from the
// project (checkMemory).
func (v *validator) checkMemorySources(block map[string]xServiceMemory) Memory {
	if len(block) == 0 {
		v.addf("%s: missing memory: say, for each service, where its mem_reservation comes from (measured or upstream)", extensionKey)
		return Memory{}
	}
	var m Memory
	for _, service := range slices.Sorted(maps.Keys(block)) {
		x := block[service]
		where := fmt.Sprintf("%s: memory.%s", extensionKey, service)
		sm := ServiceMemory{Service: service, Note: strings.TrimSpace(x.Note)}
		figure := func(s string) int64 {
			n, err := parseSize(s)
			if err != nil {
				v.addf("%s: %w", where, err)
			}
			return n
		}
		switch {
		case x.Measured != "" && x.Upstream != "":
			v.addf("%s: give measured or upstream, not both", where)
		case x.Measured != "":
			sm.Basis, sm.Figure = Measured, figure(x.Measured)
			// An unquoted date reaches here as the YAML timestamp it is,
			// re-encoded at midnight UTC.
			if t, err := time.Parse(time.RFC3339, x.Date); err == nil && t.Equal(t.Truncate(24*time.Hour)) {
				x.Date = t.Format(time.DateOnly)
			}
			sm.Date, sm.Source = x.Date, strings.TrimSpace(x.How)
			if !isoDate.MatchString(x.Date) {
				v.addf("%s: a measurement needs its date, as 2026-12-02 (got %q)", where, x.Date)
			} else if _, err := time.Parse(time.DateOnly, x.Date); err != nil {
				v.addf("%s: date %q is not a date", where, x.Date)
			}
			if sm.Source == "" {
				v.addf("%s: a measurement needs how it was measured (how)", where)
			}
			if x.Source != "" {
				v.addf("%s: source belongs to an upstream figure; a measurement says how", where)
			}
		case x.Upstream != "":
			sm.Basis, sm.Figure, sm.Source = Upstream, figure(x.Upstream), x.Source
			if u, err := url.Parse(x.Source); err != nil || u.Scheme != "https" || u.Host == "" {
				v.addf("%s: an upstream figure needs the https page that documents it (source), got %q", where, x.Source)
			}
			if x.Date != "" || x.How != "" {
				v.addf("%s: date and how belong to a measurement", where)
			}
		default:
			v.addf("%s: missing measured or upstream: where the service's mem_reservation comes from", where)
		}
		m.Services = append(m.Services, sm)
	}
	return m
}

// checkMemory fills in each service's reservation and limit from the
// project and checks them against the memory block.
func (v *validator) checkMemory(m *Memory, p *types.Project) {
	sources := map[string]bool{}
	for i := range m.Services {
		sm := &m.Services[i]
		sources[sm.Service] = true
		s, ok := p.Services[sm.Service]
		if !ok {
			v.addf("%s: memory.%s names a service that does not exist (services: %s)", extensionKey, sm.Service, strings.Join(slices.Sorted(maps.Keys(p.Services)), ", "))
			continue
		}
		sm.Reservation, sm.Limit = int64(s.MemReservation), int64(s.MemLimit)
		if sm.Basis == Measured && sm.Reservation > 0 && sm.Figure > sm.Reservation {
			v.addf("service %s: mem_reservation %s is less than the %s measured", sm.Service, formatSize(sm.Reservation), formatSize(sm.Figure))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		s := p.Services[name]
		switch {
		case s.MemLimit <= 0:
			v.addf("service %s: missing mem_limit", name)
		case s.MemReservation <= 0:
			v.addf("service %s: missing mem_reservation: what it uses working lightly, which the capacity guard counts", name)
		case s.MemReservation > s.MemLimit:
			v.addf("service %s: mem_reservation %s is more than mem_limit %s", name, formatSize(int64(s.MemReservation)), formatSize(int64(s.MemLimit)))
		}
		if !sources[name] && len(m.Services) > 0 {
			v.addf("%s: memory.%s is missing: say where service %s's mem_reservation comes from (measured or upstream)", extensionKey, name, name)
		}
	}
}

func hasVolume(p *types.Project, volume string) bool {
	_, ok := p.Volumes[volume]
	return ok
}

// exposes says whether s lists port in expose ("8065" or "8065/tcp").
func exposes(s types.ServiceConfig, port int) bool {
	for _, e := range s.Expose {
		num, proto, _ := strings.Cut(e, "/")
		if n, err := strconv.Atoi(num); err == nil && n == port && (proto == "" || proto == "tcp") {
			return true
		}
	}
	return false
}
