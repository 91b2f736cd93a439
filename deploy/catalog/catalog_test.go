package catalog

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	standincatalog "github.com/toolbox-collective/toolbox/internal/standin/catalog"
)

var update = flag.Bool("update", false, "rewrite testdata/catalog.golden")

// vars returns a complete set of variables for a: every secret, every
// setting, and the built-in ones.
func vars(a App) map[string]string {
	v := map[string]string{VarDomain: a.Name + ".203.0.113.7.sslip.io", VarApp: "t-" + a.Name}
	for _, s := range a.Secrets {
		v[s.Name] = strings.Repeat("s", s.Length)
	}
	for _, s := range a.Settings {
		v[s.Name] = "value-of-" + strings.ToLower(s.Name)
	}
	return v
}

// TestEntries loads every embedded entry (All validates them strictly), then
// each project with real-looking values, and checks what the rest of the
// toolbox relies on.
func TestEntries(t *testing.T) {
	t.Parallel()
	apps, err := All()
	if err != nil {
		t.Fatalf("All() = %v", err)
	}
	var names []string
	for _, a := range apps {
		names = append(names, a.Name)
	}
	if want := []string{"discourse", "gitlab", "loomio", "mattermost", "mediawiki", "wordpress"}; !slices.Equal(names, want) {
		t.Errorf("All() names = %v, want %v", names, want)
	}
	for _, a := range apps {
		t.Run(a.Name, func(t *testing.T) {
			t.Parallel()
			v := vars(a)
			p, err := a.Project(t.Context(), v)
			if err != nil {
				t.Fatalf("Project() = %v", err)
			}
			if p.Name != v[VarApp] {
				t.Errorf("project name = %q, want %q", p.Name, v[VarApp])
			}
			var images []string
			for _, s := range p.Services {
				images = append(images, s.Image)
				if s.MemLimit <= 0 {
					t.Errorf("service %s: no mem_limit", s.Name)
				}
				for k, val := range s.Environment {
					if val != nil && (strings.Contains(*val, "${") || strings.Contains(*val, "placeholder")) {
						t.Errorf("service %s: %s = %q, not interpolated", s.Name, k, *val)
					}
				}
			}
			slices.Sort(images)
			if got := a.Images(); !slices.Equal(got, slices.Compact(images)) {
				t.Errorf("Images() = %v, want %v", got, images)
			}
			entry, ok := p.Services[a.Entry.Service]
			if !ok {
				t.Fatalf("entry service %s missing", a.Entry.Service)
			}
			if !exposes(entry, a.Entry.Port) {
				t.Errorf("entry service %s does not expose %d", a.Entry.Service, a.Entry.Port)
			}
			// The domain reaches the app somewhere in the entry service.
			var env strings.Builder
			for k, val := range entry.Environment {
				if val != nil {
					env.WriteString(k + "=" + *val + "\n")
				}
			}
			if !strings.Contains(env.String(), v[VarDomain]) {
				t.Errorf("entry service environment does not carry %s", VarDomain)
			}
			// Hooks are exec'd as is: Compose escapes ($$) are already undone.
			for _, d := range a.Dumps {
				for _, arg := range slices.Concat(d.Command, d.Restore, d.Check) {
					if strings.Contains(arg, "$$") {
						t.Errorf("dump %s: %q still has $$", d.File, arg)
					}
				}
			}
			if a.Memory.Reservation() <= 0 || a.Memory.Reservation() > a.Memory.Limit() || a.Disk <= 0 {
				t.Errorf("Memory = %+v, Disk = %d", a.Memory, a.Disk)
			}
			// Every service has its reservation, its limit and its source.
			if len(a.Memory.Services) != len(p.Services) {
				t.Errorf("memory of %d services, want %d", len(a.Memory.Services), len(p.Services))
			}
			for _, sm := range a.Memory.Services {
				if sm.Reservation <= 0 || sm.Reservation > sm.Limit || sm.Figure <= 0 || sm.Source == "" ||
					(sm.Basis != Measured && sm.Basis != Upstream) {
					t.Errorf("service memory %+v", sm)
				}
				if sm.Basis == Measured && sm.Date == "" {
					t.Errorf("measured without a date: %+v", sm)
				}
			}
		})
	}
}

// TestDumpsKeepPasswordsOutOfArguments: a password in a process's arguments
// is visible to every user of the machine (ps, /proc); the dumps and
// restores pass it in the environment.
func TestDumpsKeepPasswordsOutOfArguments(t *testing.T) {
	t.Parallel()
	apps, err := All()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range apps {
		for _, d := range a.Dumps {
			for _, cmd := range [][]string{d.Command, d.Restore, d.Check} {
				line := strings.Join(cmd, " ")
				if strings.Contains(line, ` -p"`) || strings.Contains(line, ` -p$`) || strings.Contains(line, "--password") {
					t.Errorf("%s: %q passes a password in the arguments", a.Name, line)
				}
			}
		}
	}
}

func TestGet(t *testing.T) {
	t.Parallel()
	a, err := Get("wordpress")
	if err != nil {
		t.Fatalf("Get(wordpress) = %v", err)
	}
	if a.Name != "wordpress" || a.Entry.Service != "wordpress" || a.Entry.Port != 80 {
		t.Errorf("Get(wordpress) = %s %+v", a.Name, a.Entry)
	}
	if got, want := a.Dumps[0].Command[2], `MYSQL_PWD="$MARIADB_PASSWORD" exec mariadb-dump`; !strings.Contains(got, want) {
		t.Errorf("dump command = %q, want it to contain %q", got, want)
	}

	_, err = Get("nextcloud")
	if !errors.Is(err, ErrUnknownApp) {
		t.Fatalf("Get(nextcloud) = %v, want ErrUnknownApp", err)
	}
	for _, want := range []string{`"nextcloud"`, "discourse, gitlab, loomio, mattermost, mediawiki, wordpress"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Get(nextcloud) = %q, want it to mention %s", err, want)
		}
	}
}

func TestProjectVariables(t *testing.T) {
	t.Parallel()
	a, err := Get("mattermost")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(map[string]string)
		want []string // substrings of the error; none means success
	}{
		{"complete", func(map[string]string) {}, nil},
		{"setting default", func(v map[string]string) { delete(v, "BOT_HOSTNAME") }, nil},
		{"missing", func(v map[string]string) { delete(v, "DB_PASSWORD"); delete(v, VarDomain) },
			[]string{"missing variables", "DB_PASSWORD", VarDomain}},
		{"empty secret", func(v map[string]string) { v["DB_PASSWORD"] = "" }, []string{"missing variables DB_PASSWORD"}},
		{"unknown", func(v map[string]string) { v["SMTP_HOST"] = "smtp.example.org" }, []string{"unknown variables SMTP_HOST"}},
		{"bad project name", func(v map[string]string) { v[VarApp] = "Chat Room" }, []string{"invalid project name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := vars(a)
			tt.edit(v)
			p, err := a.Project(t.Context(), v)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Project() = %v", err)
				}
				want := "toolbox"
				if h, ok := v["BOT_HOSTNAME"]; ok {
					want = h
				}
				got := p.Services["mattermost"].Environment["MM_SERVICESETTINGS_ALLOWEDUNTRUSTEDINTERNALCONNECTIONS"]
				if got == nil || *got != want {
					t.Errorf("allowed internal connections = %v, want %q", got, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Project() = nil error, want %v", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Project() = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestProjectNeedsCatalogApp(t *testing.T) {
	t.Parallel()
	a := App{Name: "wordpress"}
	if _, err := a.Project(t.Context(), map[string]string{}); err == nil || !strings.Contains(err.Error(), "not an app from the catalog") {
		t.Errorf("App{}.Project() = %v, want an error", err)
	}
}

// TestProjectIgnoresEnvironment checks that the process environment never
// fills a variable in. It cannot run in parallel (t.Setenv).
func TestProjectIgnoresEnvironment(t *testing.T) {
	t.Setenv("DB_PASSWORD", "from-the-environment")
	a, err := Get("wordpress")
	if err != nil {
		t.Fatal(err)
	}
	v := vars(a)
	delete(v, "DB_PASSWORD")
	if _, err := a.Project(t.Context(), v); err == nil || !strings.Contains(err.Error(), "DB_PASSWORD") {
		t.Errorf("Project() without DB_PASSWORD = %v, want an error naming it", err)
	}
}

func TestValidFixture(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("testdata", "valid.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := parse(t.Context(), "valid", data)
	if err != nil {
		t.Fatalf("parse(valid.yaml) = %v", err)
	}
	want := App{
		Name: "valid", Description: "A test app", Upstream: "https://example.org", Version: "1.2.3",
		Memory: Memory{Services: []ServiceMemory{
			{Service: "db", Reservation: 192 << 20, Limit: 256 << 20, Basis: Upstream, Figure: 128 << 20,
				Source: "https://www.postgresql.org/docs/current/runtime-config-resource.html", Note: "the default shared_buffers"},
			{Service: "web", Reservation: 128 << 20, Limit: 256 << 20, Basis: Measured, Figure: 100 << 20,
				Date: "2026-12-02", Source: "docker stats after a few page views"},
		}}, Disk: 1 << 30,
		Entry: Entry{Service: "web", Port: 8080}, HealthPath: "/health", DataVolumes: []string{"files"},
	}
	if a.Name != want.Name || a.Description != want.Description || a.Upstream != want.Upstream ||
		a.Version != want.Version || !slices.Equal(a.Memory.Services, want.Memory.Services) || a.Disk != want.Disk ||
		a.Entry != want.Entry || a.HealthPath != want.HealthPath || !slices.Equal(a.DataVolumes, want.DataVolumes) {
		t.Errorf("parse(valid.yaml) = %+v, want %+v", a, want)
	}
	if got, want := a.Dumps, []Dump{{
		Service: "db", File: "web.sql",
		Command:   []string{"sh", "-c", `exec pg_dump -U "$POSTGRES_USER"`},
		Restore:   []string{"sh", "-c", `exec psql -U "$POSTGRES_USER"`},
		Check:     []string{"sh", "-c", `exec psql -U "$POSTGRES_USER" -tA -c "SELECT count(*) FROM items"`},
		CheckNoun: "items",
	}}; !slices.EqualFunc(got, want, func(a, b Dump) bool {
		return a.Service == b.Service && a.File == b.File && slices.Equal(a.Command, b.Command) &&
			slices.Equal(a.Restore, b.Restore) && slices.Equal(a.Check, b.Check) && a.CheckNoun == b.CheckNoun
	}) {
		t.Errorf("Dumps = %q, want %q", got, want)
	}
	if got, want := a.Images(), []string{"example/web:1.2.3", "postgres:17.10"}; !slices.Equal(got, want) {
		t.Errorf("Images() = %v, want %v", got, want)
	}
}

// TestChecks: every dump of the catalog says how a restore proves that it
// loaded data, and the counting commands print nothing but the number.
func TestChecks(t *testing.T) {
	t.Parallel()
	apps, err := New(standincatalog.Files).All()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range apps {
		for _, d := range a.Dumps {
			if len(d.Check) == 0 || d.CheckNoun == "" {
				t.Errorf("%s: dump %s: Check = %q, CheckNoun = %q", a.Name, d.File, d.Check, d.CheckNoun)
			}
			line := strings.Join(d.Check, " ")
			switch {
			case strings.Contains(line, "mariadb"):
				// -N: no column name above the number; -B: no table frame.
				if !strings.Contains(line, " -N -B ") {
					t.Errorf("%s: check %q: mariadb without -N -B prints more than the number", a.Name, line)
				}
			case strings.Contains(line, "psql"):
				// -t: no header or row count footer; -A: no padding.
				if !strings.Contains(line, " -tA ") {
					t.Errorf("%s: check %q: psql without -tA prints more than the number", a.Name, line)
				}
			}
		}
	}
}

func TestParseCheck(t *testing.T) {
	t.Parallel()
	d := Dump{File: "wordpress.sql", CheckNoun: "options"}
	tests := []struct {
		out  string
		want int64 // -1: an error
	}{
		{"412\n", 412},
		{"0\n", 0},
		{" 7 \r\n", 7},
		{"9223372036854775807", 1<<63 - 1},
		{"", -1},
		{"\n", -1},
		{"-1\n", -1},
		{"+3", -1},
		{"3.0", -1},
		{"count\n412\n", -1},
		{"412\n413\n", -1},
		{"(1 row)", -1},
		{"9223372036854775808", -1},
		{"ERROR:  relation \"wp_options\" does not exist", -1},
	}
	for _, tt := range tests {
		got, err := d.ParseCheck([]byte(tt.out))
		if tt.want < 0 {
			if err == nil {
				t.Errorf("ParseCheck(%q) = %d, want an error", tt.out, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseCheck(%q) = %d, %v, want %d", tt.out, got, err, tt.want)
		}
	}
	_, err := d.ParseCheck([]byte("Table 'wordpress.wp_options' doesn't exist"))
	if err == nil || !strings.Contains(err.Error(), "wordpress.sql") || !strings.Contains(err.Error(), "options") {
		t.Errorf("ParseCheck(an error message) = %v, want an error naming the dump and what it counts", err)
	}
}

func TestBrokenEntries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want string
	}{
		{"unknown_x_key", "field colour not found"},
		{"unknown_x_nested_key", "field comand not found"},
		{"unknown_compose_key", `"restrt"`},
		{"unknown_compose_nested_key", "services.db.healthcheck additional properties 'intervall' not allowed"},
		{"bad_compose_value", "'services[web].mem_limit' invalid size: 'lots'"},
		{"unsupported_compose_key", `key "ports" is not supported`},
		{"unsupported_top_level_key", `top-level key "networks" is not supported`},
		{"missing_description", "x-toolbox: missing description"},
		{"missing_x_toolbox", "missing x-toolbox block"},
		{"unpinned_image", `image "example/web" is not pinned`},
		{"latest_image", "latest moves"},
		{"floating_tag", `tag "alpine" is not a version`},
		{"variable_image", "images must be literal"},
		{"dump_no_service", `dumps[0] names service "database", which does not exist`},
		{"post_install_no_service", `post_install[0] names service "api", which does not exist`},
		{"entry_port_not_exposed", "entry service web does not expose port 8080"},
		{"expose_not_entry", "service db: only the entry service may expose a port"},
		{"undeclared_variable", "undeclared variable API_KEY"},
		{"unused_secret", "variable SPARE is declared but never used"},
		{"variable_in_x_toolbox", "x-toolbox uses variables POSTGRES_USER"},
		{"bind_mount", "volume for /srv/files is not a named volume"},
		{"data_volume_undeclared", "data volume uploads is not a declared volume"},
		{"missing_mem_limit", "service web: missing mem_limit"},
		{"missing_mem_reservation", "service web: missing mem_reservation"},
		{"reservation_over_limit", "service web: mem_reservation 512 MiB is more than mem_limit 256 MiB"},
		{"missing_memory_source", "memory.db is missing: say where service db's mem_reservation comes from"},
		{"memory_source_unknown_service", `memory.cache names a service that does not exist`},
		{"measured_without_date", "memory.web: a measurement needs its date"},
		{"upstream_without_source", "memory.db: an upstream figure needs the https page that documents it"},
		{"measured_over_reservation", "service web: mem_reservation 128 MiB is less than the 200 MiB measured"},
		{"memory_both_bases", "memory.web: give measured or upstream, not both"},
		{"memory_min_recommended", "memory.min: each entry of memory is a service"},
		{"bad_size", `disk: "lots": size must be`},
		{"healthy_without_healthcheck", "depends on db being healthy, but db has no healthcheck"},
		{"missing_restore", "dumps[0]: missing restore"},
		{"missing_check", "dumps[0]: missing check: the command that prints how many rows the restored web.sql holds"},
		{"bad_check_counts", `dumps[0]: check_counts "Items!" is not lowercase words`},
		{"no_restart", "service web: restart must be always or unless-stopped"},
		{"short_secret", "secret DB_PASSWORD: length 8 is not between 16 and 128"},
		{"required_with_default", "setting GREETING: a required setting has no default"},
		{"version_mismatch", `version "2.0.0" does not match the entry image example/web:1.2.3`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(filepath.Join("testdata", tt.file+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = parse(t.Context(), tt.file, data)
			if err == nil {
				t.Fatalf("parse(%s.yaml) = nil error, want one mentioning %q", tt.file, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parse(%s.yaml) = %q, want it to mention %q", tt.file, err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "catalog: "+tt.file+": ") {
				t.Errorf("parse(%s.yaml) = %q, want it to start with the app name", tt.file, err)
			}
		})
	}
}

func TestSummary(t *testing.T) {
	t.Parallel()
	apps, err := All()
	if err != nil {
		t.Fatal(err)
	}
	got := Summary(apps, nil)
	golden := filepath.Join("testdata", "catalog.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("Summary() =\n%s\nwant (%s)\n%s", got, golden, want)
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64 // 0: an error
	}{
		{"512m", 512 << 20},
		{"512M", 512 << 20},
		{"1g", 1 << 30},
		{"2.5g", 5 << 29},
		{"2560m", 2560 << 20},
		{"64k", 64 << 10},
		{"1t", 1 << 40},
		{"1024", 1024},
		{"", 0},
		{"g", 0},
		{"1.5", 0}, // not a whole number of bytes
		{"1.g", 0},
		{".5g", 0},
		{"-1g", 0},
		{"0", 0},
		{"1gb", 0},
		{"1 g", 0},
		{"2048t", 0}, // more than maxSize
		{"99999999999999999999", 0},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if tt.want == 0 {
			if err == nil {
				t.Errorf("parseSize(%q) = %d, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v, want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestFormatSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   int64
		want string
	}{
		{512 << 20, "512 MiB"},
		{1 << 30, "1 GiB"},
		{2560 << 20, "2.5 GiB"},
		{1000, "1000 B"},
	}
	for _, tt := range tests {
		if got := formatSize(tt.in); got != tt.want {
			t.Errorf("formatSize(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"512m", "2.5g", "1t", "1024", "1.5", "0.000001t", "9007199254740993k", ".", "1e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			return
		}
		if n < 1 || n > maxSize {
			t.Fatalf("parseSize(%q) = %d, out of range", s, n)
		}
		// The same size written in bytes reads back the same.
		if m, err := parseSize(strconv.FormatInt(n, 10)); err != nil || m != n {
			t.Fatalf("parseSize(%q) = %d, but parseSize(%d) = %d, %v", s, n, n, m, err)
		}
	})
}

// FuzzParse feeds arbitrary files to the strict reader: it must never panic,
// and whatever it accepts must satisfy the rules.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := parse(t.Context(), "fuzz", data)
		if err != nil {
			return
		}
		if a.Description == "" || len(a.Dumps) == 0 || a.Memory.Reservation() <= 0 || a.Memory.Reservation() > a.Memory.Limit() {
			t.Fatalf("parse accepted an invalid entry: %+v", a)
		}
		for _, d := range a.Dumps {
			if len(d.Restore) == 0 || len(d.Check) == 0 || d.CheckNoun == "" {
				t.Fatalf("parse accepted a dump without restore or check: %+v", d)
			}
		}
		for _, img := range a.Images() {
			if err := checkPinned(img); err != nil {
				t.Fatalf("parse accepted image %q: %v", img, err)
			}
		}
	})
}

func TestExtraCatalog(t *testing.T) {
	c := New(standincatalog.Files)
	app, err := c.Get("standin")
	if err != nil {
		t.Fatalf("Get(standin) from the extra folder: %v", err)
	}
	if app.Entry.Service != "app" || app.Entry.Port != 8080 {
		t.Errorf("standin entry = %+v", app.Entry)
	}
	all, err := c.All()
	if err != nil {
		t.Fatal(err)
	}
	embedded, _ := All()
	if len(all) != len(embedded)+1 {
		t.Errorf("All() with the extra folder has %d apps, want %d", len(all), len(embedded)+1)
	}
	dup := New(fstest.MapFS{"wordpress.yaml": &fstest.MapFile{Data: []byte("services: {}")}})
	if _, err := dup.All(); err == nil || !strings.Contains(err.Error(), "has the name of an app of the catalog") {
		t.Errorf("an extra entry named like an embedded one: err = %v", err)
	}
}
