package images

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

// TestMediaWikiImage runs the catalog's mediawiki entry on the locally built
// MediaWiki and MariaDB images: its services with the catalog's own
// environment (rendered by the catalog as deploy/stack renders it), volumes
// and health checks, then its post-install step verbatim. The wiki must
// then answer the catalog's health path with JSON, keep LocalSettings.php
// in the config volume (MW_CONFIG_FILE), show a page made with
// maintenance/edit.php over HTTP, take a file into the images volume as
// www-data (Apache's user) and serve it, and, run again, the post-install
// step must say it is already installed and change nothing.
func TestMediaWikiImage(t *testing.T) {
	e := dockertest.Engine(t)
	needDebootstrap(t)
	wikiTag := builtImage(t, e, "mediawiki")
	dbTag := builtImage(t, e, "mariadb")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	app, err := catalog.Get("mediawiki")
	if err != nil {
		t.Fatal(err)
	}
	const siteName, domain = `Toolbox's "Test" Wiki`, "wiki.example.org"
	project, err := app.Project(ctx, map[string]string{
		catalog.VarDomain: domain, catalog.VarApp: "mediawiki",
		"DB_PASSWORD": "Rb7oNq2VxK4mT9sLc1Wz8pYe3Hd6Gf0A", "ADMIN_PASSWORD": "Zx3Lp9Qe7Tn1Vb5Kr8Ms2Wd",
		"SITE_NAME": siteName,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The locally built images stand for the catalog's.
	images := map[string]string{}
	for _, img := range app.Images() {
		switch {
		case strings.HasPrefix(img, "mediawiki:"):
			images[img] = wikiTag
		case strings.HasPrefix(img, "mariadb:"):
			images[img] = dbTag
		}
	}
	labels := dockertest.Labels(t, e)
	network := dockertest.Unique(t, "images-mw")
	if err := e.EnsureNetwork(ctx, network, labels); err != nil {
		t.Fatal(err)
	}
	names := map[string]string{} // service → container
	start := func(svc types.ServiceConfig) {
		t.Helper()
		spec := mwSpec(t, svc, images, labels, network)
		for _, v := range svc.Volumes {
			vol := dockertest.Unique(t, "images-mw-"+v.Source)
			if err := e.EnsureVolume(ctx, vol, labels); err != nil {
				t.Fatal(err)
			}
			spec.Mounts = append(spec.Mounts, docker.Mount{Volume: vol, Target: v.Target})
		}
		if svc.Name == app.Entry.Service {
			spec.PublishTCP = []docker.Publish{{HostIP: "127.0.0.1", ContainerPort: app.Entry.Port}}
		}
		if _, err := e.EnsureContainer(ctx, spec); err != nil {
			t.Fatal(err)
		}
		if err := e.WaitHealthy(ctx, spec.Name); err != nil {
			t.Fatal(err)
		}
		names[svc.Name] = spec.Name
	}
	// In the order of depends_on: the database first.
	start(project.Services["db"])
	start(project.Services["mediawiki"])
	wiki := names[app.Entry.Service]

	// run runs a command in a service's container and returns its output;
	// it fails the test unless the command exits 0.
	run := func(t *testing.T, service string, cmd []string, in []byte) (stdout, stderr string) {
		t.Helper()
		var out, errOut bytes.Buffer
		var code int
		var err error
		if in != nil {
			code, err = e.ExecInput(ctx, names[service], cmd, bytes.NewReader(in), &out, &errOut)
		} else {
			code, err = e.Exec(ctx, names[service], cmd, &out, &errOut)
		}
		if err != nil || code != 0 {
			t.Fatalf("%s: %q: exit code %d, %v\n%s\n%s", service, cmd, code, err, out.String(), errOut.String())
		}
		return out.String(), errOut.String()
	}
	if len(app.PostInstall) == 0 {
		t.Fatal("the catalog's mediawiki entry has no post-install step")
	}
	// postInstall runs every step in order, as add does, and returns what
	// they printed.
	postInstall := func(t *testing.T) string {
		t.Helper()
		var all string
		for _, step := range app.PostInstall {
			out, errOut := run(t, step.Service, step.Command, nil)
			all += out + errOut
		}
		return all
	}
	t.Logf("post-install:\n%s", postInstall(t))

	addr, err := e.PublishedAddr(ctx, wiki, app.Entry.Port)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	// get fetches a path of the wiki, as the proxy would, not following
	// redirects (they lead to the https:// address of the domain).
	client := &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	get := func(t *testing.T, path string) (int, http.Header, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Forwarded-Proto", "https")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header, body
	}

	t.Run("health path", func(t *testing.T) {
		code, header, body := get(t, app.HealthPath)
		if code != http.StatusOK {
			t.Fatalf("%s answered %d:\n%s", app.HealthPath, code, body)
		}
		var info struct {
			Query struct {
				General struct {
					SiteName  string `json:"sitename"`
					Generator string `json:"generator"`
					Server    string `json:"server"`
					Lang      string `json:"lang"`
				} `json:"general"`
			} `json:"query"`
		}
		if err := json.Unmarshal(body, &info); err != nil {
			t.Fatalf("%s answered %s, not JSON: %v\n%s", app.HealthPath, header.Get("Content-Type"), err, body)
		}
		g := info.Query.General
		if g.SiteName != siteName || g.Server != "https://"+domain || g.Lang != "en" || !strings.HasPrefix(g.Generator, "MediaWiki 1.") {
			t.Errorf("siteinfo %+v, want the site name %q, server https://%s, language en, from MediaWiki", g, siteName, domain)
		}
	})

	t.Run("LocalSettings.php", func(t *testing.T) {
		run(t, "mediawiki", []string{"sh", "-c", `test "$MW_CONFIG_FILE" = /var/www/config/LocalSettings.php && test -s "$MW_CONFIG_FILE" && test ! -e /var/www/html/LocalSettings.php && grep -q wgSecretKey "$MW_CONFIG_FILE"`}, nil)
		// The config folder is the catalog's config volume.
		if !slices.ContainsFunc(project.Services["mediawiki"].Volumes, func(v types.ServiceVolumeConfig) bool {
			return v.Source == "config" && v.Target == "/var/www/config"
		}) {
			t.Errorf("the catalog mounts no config volume at /var/www/config")
		}
	})

	t.Run("page", func(t *testing.T) {
		const title, text = "Toolbox test page", "Grüße from the '''toolbox''' test."
		run(t, "mediawiki", []string{"php", "maintenance/edit.php", "--user", "Admin", "--summary", "test", title}, []byte(text))
		// By its canonical name (spaces as "_"): another spelling is
		// redirected to it, at the https:// address.
		path := "/index.php?title=" + url.QueryEscape(strings.ReplaceAll(title, " ", "_"))
		code, _, body := get(t, path)
		if code != http.StatusOK || !bytes.Contains(body, []byte("Grüße from the <b>toolbox</b> test.")) {
			t.Errorf("%s answered %d without the page's text:\n%s", path, code, body)
		}
	})

	t.Run("images", func(t *testing.T) {
		img := image.NewRGBA(image.Rect(0, 0, 4, 4))
		for i := range img.Pix {
			img.Pix[i] = 0xff
		}
		img.Set(1, 1, color.RGBA{R: 0xff, A: 0xff})
		var pngData bytes.Buffer
		if err := png.Encode(&pngData, img); err != nil {
			t.Fatal(err)
		}
		// As www-data, Apache's user, which the web's uploads run as.
		run(t, "mediawiki", []string{"sh", "-c", `mkdir -p /tmp/import && cat >/tmp/import/Toolbox_test.png && chmod -R a+rX /tmp/import`}, pngData.Bytes())
		run(t, "mediawiki", []string{"setpriv", "--reuid=33", "--regid=33", "--clear-groups",
			"php", "maintenance/importImages.php", "--user=Admin", "--comment=test", "/tmp/import"}, nil)
		owner, _ := run(t, "mediawiki", []string{"sh", "-c", `find /var/www/html/images -name Toolbox_test.png -printf '%u %P\n'`}, nil)
		fields := strings.Fields(owner)
		if len(fields) != 2 || fields[0] != "www-data" {
			t.Fatalf("images/ holds %q, want Toolbox_test.png owned by www-data", owner)
		}
		code, header, body := get(t, "/images/"+fields[1])
		if code != http.StatusOK || !bytes.Equal(body, pngData.Bytes()) {
			t.Errorf("/images/%s answered %d (%s), not the file", fields[1], code, header.Get("Content-Type"))
		}
		// PHP is off in images/ (its .htaccess): a script there is not run.
		run(t, "mediawiki", []string{"sh", "-c", `echo '<?php echo "RAN" . "PHP";' >/var/www/html/images/probe.php`}, nil)
		if _, _, body := get(t, "/images/probe.php"); bytes.Contains(body, []byte("RANPHP")) {
			t.Errorf("Apache runs PHP in images/")
		}
	})

	t.Run("installed once", func(t *testing.T) {
		before, _ := run(t, "mediawiki", []string{"sha256sum", "/var/www/config/LocalSettings.php"}, nil)
		if out := postInstall(t); !strings.Contains(out, "already installed") {
			t.Errorf("the second post-install run says %q, want it to say that MediaWiki is already installed", out)
		}
		if after, _ := run(t, "mediawiki", []string{"sha256sum", "/var/www/config/LocalSettings.php"}, nil); after != before {
			t.Errorf("the second post-install run changed LocalSettings.php")
		}
	})

	// A stop is Apache's graceful stop (the official image's STOPSIGNAL
	// SIGWINCH, here apache2-foreground's), and the wiki comes back
	// installed: LocalSettings.php is in the volume, not the container.
	t.Run("restart", func(t *testing.T) {
		if err := e.RestartContainer(ctx, wiki); err != nil {
			t.Fatal(err)
		}
		if err := e.WaitHealthy(ctx, wiki); err != nil {
			t.Fatal(err)
		}
		logs, err := e.Logs(ctx, wiki, 0)
		if err != nil {
			t.Fatal(err)
		}
		// The engine publishes the port anew.
		if addr, err = e.PublishedAddr(ctx, wiki, app.Entry.Port); err != nil {
			t.Fatal(err)
		}
		base = "http://" + addr
		if !strings.Contains(logs, "caught SIGWINCH, shutting down gracefully") {
			t.Errorf("the stop was not Apache's graceful stop; logs:\n%s", logs)
		}
		if code, _, body := get(t, app.HealthPath); code != http.StatusOK || !bytes.Contains(body, []byte(`"sitename"`)) {
			t.Errorf("after a restart, %s answered %d:\n%s", app.HealthPath, code, body)
		}
	})

	t.Run("logs", func(t *testing.T) {
		logs, err := e.Logs(ctx, wiki, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs, "GET /index.php?title=") {
			t.Errorf("Apache's access log is not in the container's output:\n%s", logs)
		}
	})
}

// mwSpec is the container of a catalog service as deploy/stack makes it
// (environment, command, memory limit, alias on the app's network, health
// check), with the locally built image of its image, without volumes; the
// health check runs every second instead of the catalog's interval.
func mwSpec(t *testing.T, svc types.ServiceConfig, images, labels map[string]string, network string) docker.ContainerSpec {
	t.Helper()
	img, ok := images[svc.Image]
	if !ok {
		t.Fatalf("service %s runs %s, which this test does not build", svc.Name, svc.Image)
	}
	env := map[string]string{}
	for k, v := range svc.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	spec := docker.ContainerSpec{
		Name: dockertest.Unique(t, "images-mw-"+svc.Name), Image: img, Cmd: svc.Command, Entrypoint: svc.Entrypoint,
		Env: env, Labels: labels, Network: network, Aliases: []string{svc.Name},
		MemoryLimit: int64(svc.MemLimit), Restart: "no",
	}
	h := svc.HealthCheck
	if h == nil || h.Disable {
		t.Fatalf("service %s has no health check", svc.Name)
	}
	spec.Health = &docker.Health{Test: h.Test, Interval: time.Second, Timeout: 10 * time.Second, Retries: 120}
	if h.Timeout != nil {
		spec.Health.Timeout = time.Duration(*h.Timeout)
	}
	if len(spec.Health.Test) == 0 {
		t.Fatalf("service %s: empty health check", svc.Name)
	}
	return spec
}
