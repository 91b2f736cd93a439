// Package catalog is the collective's catalog of tools, as data: one Compose
// file per app under apps/, embedded in the binary, each with an x-toolbox
// block that says what the app is, what it needs, how to back it up and how
// to finish its installation.
//
// The files follow the Compose specification and are read with compose-go.
// Site-specific values and secrets are Compose interpolation variables:
// TOOLBOX_DOMAIN (the app's public domain name), TOOLBOX_APP (the instance
// name, used as the Compose project name), and the secrets and settings that
// the app's x-toolbox block declares. A file may use no other variable, and
// the x-toolbox block itself uses none: its commands run inside the service's
// container and read the container's environment, written $$VAR as anywhere
// in Compose.
//
// Every entry is parsed and validated strictly (see validate.go) once, when a
// Catalog is first used (about 100 ms of CPU for the embedded apps); All and
// Get then hand out copies.
//
// It imports nothing of the project but internal/names.
package catalog

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/toolbox-collective/toolbox/internal/names"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

//go:embed apps/*.yaml
var appFiles embed.FS

// ErrUnknownApp is returned (wrapped, with the known names) by Get for a name
// that is not in the catalog.
var ErrUnknownApp = errors.New("unknown app")

// The variables every app may use besides its own secrets and settings.
const (
	// VarDomain is the app's public domain name, such as
	// "wiki.203.0.113.7.sslip.io".
	VarDomain = "TOOLBOX_DOMAIN"
	// VarApp is the instance name; it is also the Compose project name, so it
	// must be lowercase letters, digits, '-' or '_', starting with a letter or
	// a digit.
	VarApp = "TOOLBOX_APP"
)

// App is one catalog entry: its x-toolbox block, read and checked, and the
// Compose file it came from.
type App struct {
	Name        string // file name without .yaml, such as "wordpress"
	Description string
	Upstream    string // the upstream project's URL
	Version     string // the upstream version the images are pinned to
	Memory      Memory
	Disk        int64  // bytes of disk the app needs: images and first data
	Entry       Entry  // where the reverse proxy sends the app's traffic
	HealthPath  string // HTTP path that answers 2xx or 3xx when the app is up
	// DataVolumes are the named volumes whose files a backup copies. A
	// database's own volume is not listed: its dump covers it.
	DataVolumes []string
	Dumps       []Dump // application-consistent dumps, one per database
	Secrets     []SecretSpec
	Settings    []Setting
	PostInstall []Step // run once, in order, after the first healthy start
	// Build is set when upstream supports only an image built on the host
	// (Discourse): Images then names an image that must be built, not pulled.
	Build *Build
	Notes string // what the collective should know, and what is not covered

	source []byte   // the Compose file
	images []string // sorted, distinct
}

// Memory is the app's memory model: for each service, what it reserves
// (uses working lightly: the capacity guard sums these), the most it may
// reach (its limit), and where the reservation comes from.
type Memory struct {
	Services []ServiceMemory // sorted by service name
}

// Reservation is what the app's services reserve together, in bytes.
func (m Memory) Reservation() int64 {
	var sum int64
	for _, s := range m.Services {
		sum += s.Reservation
	}
	return sum
}

// Limit is the most the app's services may reach together, in bytes.
func (m Memory) Limit() int64 {
	var sum int64
	for _, s := range m.Services {
		sum += s.Limit
	}
	return sum
}

// Measured reports whether every reservation comes from a measurement.
func (m Memory) Measured() bool {
	for _, s := range m.Services {
		if s.Basis != Measured {
			return false
		}
	}
	return len(m.Services) > 0
}

// Where a service's reservation comes from.
const (
	Measured = "measured" // measured here, on the date given
	Upstream = "upstream" // documented by upstream; not measured here
)

// ServiceMemory is one service's memory: its Compose mem_reservation and
// mem_limit, in bytes, and what the reservation is based on. Figure is the
// size the basis gives: what was measured (the reservation is at least
// that), or what upstream documents, which may be for the whole app or a
// single request, as Note says.
type ServiceMemory struct {
	Service            string
	Reservation, Limit int64
	Basis              string // Measured or Upstream
	Figure             int64
	Date               string // a measurement's date, 2026-12-02
	Source             string // how it was measured, or upstream's https page
	Note               string
}

// Entry is the service and container port the reverse proxy forwards to, on
// the Docker network (no host port is published).
type Entry struct {
	Service string
	Port    int
}

// Dump is a backup hook: Command, run in Service's container, writes the dump
// to stdout; Restore, run in a fresh Service container of the same version,
// reads it back from stdin. The backup stores the dump under File.
//
// Check proves that a restore loaded data: run in a Service container once
// Restore has returned, it exits 0 and prints on stdout one non-negative
// integer (see ParseCheck), the number of rows of a table that every
// installed instance fills; CheckNoun says what those rows are, so that a
// restore can report "412 users".
//
// The three commands may use the container's own environment, passwords
// included, but never put a password in their arguments, where every user of
// the machine sees it: for example sh -c 'MYSQL_PWD="$MARIADB_PASSWORD" exec
// mariadb-dump ...', or PostgreSQL's local socket, which needs none.
type Dump struct {
	Service   string
	Command   []string
	Restore   []string
	Check     []string
	CheckNoun string // plural, lowercase: "users", "pages"
	File      string // such as "wordpress.sql"
}

// ParseCheck reads what d.Check printed: one non-negative decimal integer,
// with surrounding white space (psql and mariadb end it with a newline).
func (d Dump) ParseCheck(stdout []byte) (int64, error) {
	s := strings.TrimSpace(string(stdout))
	if s == "" || strings.Trim(s, "0123456789") != "" {
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		return 0, fmt.Errorf("catalog: check of %s printed %q, want a count of %s", d.File, s, d.CheckNoun)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("catalog: check of %s: %w", d.File, err)
	}
	return n, nil
}

// SecretSpec is a secret the toolbox generates once per instance and passes
// as the variable Name. The value must be Length characters from [A-Za-z0-9]:
// secrets end up in URLs (postgres://user:secret@db/...) and in shell and
// Ruby strings, where other characters would need quoting.
type SecretSpec struct {
	Name   string
	Length int
}

// Setting is a value the collective provides, such as an SMTP server. A
// setting that is not required and not given takes Default (possibly empty).
// Secret settings (an SMTP password) must be kept like generated secrets.
type Setting struct {
	Name, Description string
	Required          bool
	Secret            bool
	Default           string
}

// Step is a post-install command run once in Service's container.
type Step struct {
	Service     string
	Command     []string
	Description string
}

// Build says how to produce the image of Service on the host, for an app
// whose upstream supports no other way. The toolbox clones Repository at Ref,
// writes the launcher's configuration from Service's Compose definition
// (environment and volumes) plus Params and Templates, runs Command in the
// clone, and tags the image Command produces (Output) as Service's image.
type Build struct {
	Service    string
	Repository string
	Ref        string
	BaseImage  string            // the image the build starts from, pinned
	Templates  []string          // launcher templates, in order
	Params     map[string]string // launcher parameters, such as the app version
	Command    []string
	Output     string // the image Command leaves behind
}

// Catalog is the embedded apps plus, optionally, a folder of the
// collective's own entries, written and checked the same way.
type Catalog struct {
	extra fs.FS

	once    sync.Once
	names   []string // sorted
	namesOK error    // why the entries could not be listed
	entries map[string]parsed
}

// parsed is one entry as read at first use.
type parsed struct {
	app App
	err error
}

// New returns the catalog; extra, when not nil, holds further <app>.yaml files.
// An extra entry may not take the name of an embedded one. The files are read
// at the first All or Get: files added or changed later are not seen.
func New(extra fs.FS) *Catalog { return &Catalog{extra: extra} }

// parseAll reads every entry, once.
func (c *Catalog) parseAll() {
	c.once.Do(func() {
		c.names, c.namesOK = c.list()
		if c.namesOK != nil {
			return
		}
		c.entries = make(map[string]parsed, len(c.names))
		for _, name := range c.names {
			app, err := c.load(name)
			c.entries[name] = parsed{app, err}
		}
	})
}

// All returns every app of the embedded catalog; see (*Catalog).All.
func All() ([]App, error) { return New(nil).All() }

// Get returns the embedded app called name; see (*Catalog).Get.
func Get(name string) (App, error) { return New(nil).Get(name) }

// All returns every app of the catalog, sorted by name, each parsed and
// validated. It fails, listing every problem found, if any entry is invalid.
func (c *Catalog) All() ([]App, error) {
	c.parseAll()
	if c.namesOK != nil {
		return nil, c.namesOK
	}
	apps := make([]App, 0, len(c.names))
	var errs []error
	for _, name := range c.names {
		e := c.entries[name]
		if e.err != nil {
			errs = append(errs, e.err)
			continue
		}
		apps = append(apps, e.app.clone())
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return apps, nil
}

// Get returns the app called name. For a name not in the catalog the error
// wraps ErrUnknownApp and lists the known names.
func (c *Catalog) Get(name string) (App, error) {
	c.parseAll()
	if c.namesOK != nil {
		return App{}, c.namesOK
	}
	e, ok := c.entries[name]
	if !ok {
		return App{}, fmt.Errorf("catalog: %w %q (known apps: %s)", ErrUnknownApp, name, strings.Join(c.names, ", "))
	}
	return e.app.clone(), e.err
}

// clone is a copy of a that shares nothing its holder could change with the
// catalog's own (the Compose file and the images are never handed out).
func (a App) clone() App {
	a.Memory.Services = slices.Clone(a.Memory.Services)
	a.DataVolumes = slices.Clone(a.DataVolumes)
	a.Dumps = slices.Clone(a.Dumps)
	for i := range a.Dumps {
		d := &a.Dumps[i]
		d.Command, d.Restore, d.Check = slices.Clone(d.Command), slices.Clone(d.Restore), slices.Clone(d.Check)
	}
	a.Secrets = slices.Clone(a.Secrets)
	a.Settings = slices.Clone(a.Settings)
	a.PostInstall = slices.Clone(a.PostInstall)
	for i := range a.PostInstall {
		a.PostInstall[i].Command = slices.Clone(a.PostInstall[i].Command)
	}
	if a.Build != nil {
		b := *a.Build
		b.Templates, b.Params, b.Command = slices.Clone(b.Templates), maps.Clone(b.Params), slices.Clone(b.Command)
		a.Build = &b
	}
	return a
}

// Project returns the app's Compose project, interpolated with vars and
// checked by compose-go. vars must hold TOOLBOX_DOMAIN, TOOLBOX_APP (the
// project name), every secret, and every required setting; settings left out
// take their default. A missing variable, or one the app does not declare, is
// an error that names it. The project carries secrets: do not log it.
func (a App) Project(ctx context.Context, vars map[string]string) (*types.Project, error) {
	if len(a.source) == 0 {
		// Without its file, compose-go would read one from the disk.
		return nil, fmt.Errorf("catalog: %q: not an app from the catalog (use All or Get)", a.Name)
	}
	values, err := a.values(vars)
	if err != nil {
		return nil, fmt.Errorf("catalog: %s: %w", a.Name, err)
	}
	p, err := loadProject(ctx, a.Name, a.source, values)
	if err != nil {
		return nil, fmt.Errorf("catalog: %s: %w", a.Name, err)
	}
	return p, nil
}

// Images returns the images the app's services run, sorted and distinct. When
// a.Build is set, a.Build.Service's image is built on the host, not pulled.
func (a App) Images() []string {
	return slices.Clone(a.images)
}

// values checks vars against what the app declares and fills in defaults.
func (a App) values(vars map[string]string) (map[string]string, error) {
	declared := map[string]bool{VarDomain: true, VarApp: true}
	for _, s := range a.Secrets {
		declared[s.Name] = true
	}
	for _, s := range a.Settings {
		declared[s.Name] = true
	}
	var unknown []string
	for k := range vars {
		if !declared[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, fmt.Errorf("unknown variables %s", strings.Join(unknown, ", "))
	}

	values := make(map[string]string, len(declared))
	var missing []string
	need := func(name string) {
		v, ok := vars[name]
		if !ok || v == "" {
			missing = append(missing, name)
			return
		}
		values[name] = v
	}
	need(VarDomain)
	need(VarApp)
	for _, s := range a.Secrets {
		need(s.Name)
	}
	for _, s := range a.Settings {
		v, ok := vars[s.Name]
		switch {
		case ok && v != "":
			values[s.Name] = v
		case s.Required:
			missing = append(missing, s.Name)
		default:
			values[s.Name] = s.Default
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("missing variables %s", strings.Join(missing, ", "))
	}
	return values, nil
}

func (c *Catalog) sources() []fs.FS {
	embedded, _ := fs.Sub(appFiles, "apps") // a constant path: cannot fail
	if c.extra == nil {
		return []fs.FS{embedded}
	}
	return []fs.FS{embedded, c.extra}
}

// list lists the apps of the catalog, sorted.
func (c *Catalog) list() ([]string, error) {
	seen := map[string]bool{}
	for i, src := range c.sources() {
		entries, err := fs.ReadDir(src, ".")
		if err != nil {
			return nil, fmt.Errorf("catalog: %w", err)
		}
		for _, e := range entries {
			name, ok := strings.CutSuffix(e.Name(), ".yaml")
			if !ok || e.IsDir() {
				continue
			}
			if err := names.App(name); err != nil {
				return nil, fmt.Errorf("catalog: the entry %s: %w", e.Name(), err)
			}
			if seen[name] && i > 0 {
				return nil, fmt.Errorf("catalog: the extra entry %s.yaml has the name of an app of the catalog", name)
			}
			seen[name] = true
		}
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

// Parse reads and checks one entry from its Compose file, as the catalog
// does: an app's entry as it was deployed, kept with its state, so that an
// upgrade can go back to it after the catalog moved on.
func Parse(ctx context.Context, name string, data []byte) (App, error) {
	return parse(ctx, name, data)
}

// Source is the entry's Compose file.
func (a App) Source() []byte { return slices.Clone(a.source) }

func (c *Catalog) load(name string) (App, error) {
	for _, src := range c.sources() {
		data, err := fs.ReadFile(src, name+".yaml")
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return App{}, fmt.Errorf("catalog: %w", err)
		}
		return parse(context.Background(), name, data)
	}
	return App{}, fmt.Errorf("catalog: %w %q", ErrUnknownApp, name)
}

// loadProject reads a Compose file with compose-go, with schema validation
// and consistency checks on, interpolating only from values: the process
// environment is never read, and a variable that values lacks is an error.
func loadProject(ctx context.Context, name string, data []byte, values map[string]string) (*types.Project, error) {
	var missing []string
	lookup := func(key string) (string, bool) {
		v, ok := values[key]
		if !ok {
			missing = append(missing, key)
		}
		return v, ok
	}
	details := types.ConfigDetails{
		WorkingDir:  "/",
		ConfigFiles: []types.ConfigFile{{Filename: name + ".yaml", Content: data}},
	}
	p, err := loader.LoadWithContext(ctx, details, func(o *loader.Options) {
		o.SetProjectName(values[VarApp], true)
		o.ResolvePaths = false
		o.SkipInclude = true
		o.Interpolate.LookupValue = lookup
	})
	if len(missing) > 0 {
		// Checked before loading; kept as a guard should the two ever disagree.
		slices.Sort(missing)
		return nil, fmt.Errorf("undeclared variables %s", strings.Join(slices.Compact(missing), ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	return p, nil
}
