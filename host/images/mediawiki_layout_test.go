package images

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/toolbox-collective/toolbox/deploy/docker"
)

// TestMediaWikiKeyFollowsRecipeFiles checks that the MediaWiki image's key
// changes with each of its recipe files (every file of host/images/mediawiki
// is one of the image's inputs) and with its settings texts, and that its
// build's key changes with the package list.
func TestMediaWikiKeyFollowsRecipeFiles(t *testing.T) {
	rc := mediawikiRecipe("mediawiki:1.46.1")
	ins := rc.imageInputs()
	const folder = "0123456789abcdef"
	base := imageKey(rc, folder, ins)
	if again := imageKey(rc, folder, mediawikiRecipe("mediawiki:1.46.1").imageInputs()); again != base {
		t.Fatalf("the same recipe gives keys %s and %s", base, again)
	}
	files, err := fs.ReadDir(recipeFiles, "mediawiki")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Errorf("host/images/mediawiki embeds %d files, want 2 (docker-php-entrypoint, apache2-foreground)", len(files))
	}
	for _, f := range files {
		data := recipeFile("mediawiki/" + f.Name())
		i := slices.IndexFunc(ins, func(in input) bool { return bytes.Equal(in.data, data) })
		if i < 0 {
			t.Errorf("mediawiki/%s is not one of the image's inputs: changing it would not change the key", f.Name())
			continue
		}
		changed := slices.Clone(ins)
		changed[i].data = append(slices.Clone(data), "# changed\n"...)
		if imageKey(rc, folder, changed) == base {
			t.Errorf("changing mediawiki/%s leaves the image key %s", f.Name(), base)
		}
	}
	for _, want := range []string{mwShortURLConf, mwPHPConf, mwOpcacheINI} {
		if !slices.ContainsFunc(ins, func(in input) bool { return string(in.data) == want }) {
			t.Errorf("a settings text is not one of the image's inputs:\n%s", want)
		}
	}

	r := &run{month: "2026-12"}
	tg := target{"linux", "amd64"}
	key := func(packages []string) string {
		t.Helper()
		ins, err := debianInputs(packages)(context.Background(), r, tg)
		if err != nil {
			t.Fatal(err)
		}
		return folderKey(rc, tg, ins)
	}
	recipeIns, err := rc.inputs(context.Background(), r, tg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := folderKey(rc, tg, recipeIns), key(mediawikiPackages); got != want {
		t.Errorf("the build's key %s is not that of the package list, %s", got, want)
	}
	if key(append(slices.Clone(mediawikiPackages), "git")) == key(mediawikiPackages) {
		t.Errorf("the build's key ignores the package list")
	}
}

// TestMediaWikiLayout lays out a root file system shaped as Debian's
// mediawiki package installs it and checks the image's tree: MediaWiki's
// files really in /var/www/html (not links, which PHP would resolve to
// /usr/share/mediawiki), images/ and the rest of www-data's folders, no
// LocalSettings.php, Apache as the official image sets it.
func TestMediaWikiLayout(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, data string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(rel, target string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := mediawikiImage(dir); err == nil || !strings.Contains(err.Error(), "/usr/share/mediawiki/index.php") {
		t.Errorf("mediawikiImage of an empty folder: %v, want an error naming /usr/share/mediawiki/index.php", err)
	}
	for _, f := range []string{
		"index.php", "api.php", "maintenance/install.php", "maintenance/update.php", "maintenance/edit.php",
		"maintenance/importImages.php", "maintenance/.htaccess", "includes/.htaccess", "skins/Vector/skin.json",
		"extensions-core/Cite/extension.json", "mw-config/index.php", "mw-config/overrides/DebianOverrides.php",
	} {
		write(mwDebian+"/"+f, "<?php // "+f)
	}
	write(mwDebian+"/includes/WebStart.php", "<?php")
	write(mwDebian+"/includes/Defines.php", "<?php\ndefine( 'MW_VERSION', '1.39.17' );\n")
	link(mwDebian+"/images", "/"+mwVar+"/images")
	link(mwDebian+"/extensions", "/"+mwVar+"/extensions")
	link(mwDebian+"/LocalSettings.php", "/"+mwVar+"/LocalSettings.php")
	link(mwVar+"/index.php", "/"+mwDebian+"/index.php")
	link(mwVar+"/extensions/Cite", "/"+mwDebian+"/extensions-core/Cite")
	write(mwVar+"/images/.htaccess", "Require all denied")
	write(mwVar+"/cache/.htaccess", "Require all denied")
	write(mwRoot+"/index.html", "It works!")
	for _, f := range []string{"usr/sbin/apache2", "usr/bin/php", "usr/bin/curl", "usr/bin/convert", "usr/bin/pygmentize",
		mwApache + "/mods-available/rewrite.load", mwApache + "/mods-available/mpm_prefork.load", mwApache + "/mods-available/php8.2.load",
		"etc/php/8.2/apache2/php.ini",
	} {
		write(f, "x")
	}
	for _, m := range []string{"mysqli", "intl", "mbstring", "apcu", "luasandbox", "opcache", "xml"} {
		write("etc/php/8.2/apache2/conf.d/20-"+m+".ini", "extension="+m)
	}
	write(mwApache+"/envvars", "unset HOME\nexport APACHE_RUN_USER=www-data\nexport APACHE_LOG_DIR=/var/log/apache2$SUFFIX\n")
	write(mwApache+"/sites-available/000-default.conf", "<VirtualHost *:80>\n\tDocumentRoot /var/www/html\n</VirtualHost>\n")
	link(mwApache+"/mods-enabled/mpm_event.load", "../mods-available/mpm_event.load")
	link(mwApache+"/conf-enabled/mediawiki.conf", "../conf-available/mediawiki.conf")
	write(mwLogs+"/error.log", "old")

	es, changes, err := mediawikiImage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := docker.WriteTar(io.Discard, es); err != nil {
		t.Fatalf("the entries do not make a tar (a name twice?): %v", err)
	}
	if e := find(t, es, mwRoot+"/index.php"); !e.Mode.IsRegular() || e.SourcePath != filepath.Join(dir, mwDebian, "index.php") {
		t.Errorf("/var/www/html/index.php = %+v, want Debian's file itself", e)
	}
	for _, name := range []string{mwRoot + "/images", mwRoot + "/cache", mwRoot + "/extensions", mwRoot + "/skins"} {
		if e := find(t, es, name); !e.Mode.IsDir() || e.Mode.Perm() != 0o755 || e.UID != mwWWWData || e.GID != mwWWWData {
			t.Errorf("%s = %v %d:%d, want a folder 0755 of www-data (33)", name, e.Mode, e.UID, e.GID)
		}
	}
	for _, name := range []string{mwRoot + "/images/.htaccess", mwRoot + "/cache/.htaccess", mwRoot + "/extensions/Cite/extension.json", mwRoot + "/skins/Vector/skin.json"} {
		if e := find(t, es, name); !e.Mode.IsRegular() || e.UID != mwWWWData {
			t.Errorf("%s = %+v, want a file of www-data", name, e)
		}
	}
	if e := find(t, es, mwRoot+"/maintenance/.htaccess"); e.UID != 0 {
		t.Errorf("maintenance/.htaccess is owned by %d, want root", e.UID)
	}
	if e := find(t, es, mwRoot); e.Mode != fs.ModeDir|fs.ModeSticky|0o777 || e.UID != mwWWWData {
		t.Errorf("/var/www/html = %v %d, want www-data's, 1777 as in php:apache", e.Mode, e.UID)
	}
	for _, name := range []string{mwDebian, mwVar} {
		if e := find(t, es, name); e.Mode&fs.ModeSymlink == 0 || e.Link != "/"+mwRoot {
			t.Errorf("%s = %+v, want a link to /var/www/html", name, e)
		}
	}
	for _, gone := range []string{mwRoot + "/LocalSettings.php", mwRoot + "/extensions-core", mwRoot + "/index.html", mwRoot + "/config",
		mwRoot + "/mw-config/overrides/DebianOverrides.php", mwApache + "/mods-enabled/mpm_event.load", mwApache + "/conf-enabled/mediawiki.conf"} {
		if slices.ContainsFunc(es, func(e docker.Entry) bool { return e.Name == gone || strings.HasPrefix(e.Name, gone+"/") }) {
			t.Errorf("the image holds %s", gone)
		}
	}
	if slices.ContainsFunc(es, func(e docker.Entry) bool {
		return strings.HasPrefix(e.Name, mwDebian+"/") || strings.HasPrefix(e.Name, mwVar+"/")
	}) {
		t.Errorf("the image holds files under /%s or /%s, which are links", mwDebian, mwVar)
	}
	for name, target := range map[string]string{
		mwApache + "/mods-enabled/rewrite.load":     "../mods-available/rewrite.load",
		mwApache + "/mods-enabled/mpm_prefork.load": "../mods-available/mpm_prefork.load",
		mwApache + "/mods-enabled/php8.2.load":      "../mods-available/php8.2.load",
		mwApache + "/conf-enabled/short-url.conf":   "../conf-available/short-url.conf",
		mwApache + "/conf-enabled/docker-php.conf":  "../conf-available/docker-php.conf",
		mwLogs + "/error.log":                       "/dev/stderr",
		mwLogs + "/access.log":                      "/dev/stdout",
	} {
		if e := find(t, es, name); e.Link != target {
			t.Errorf("%s links to %q, want %q", name, e.Link, target)
		}
	}
	if e := find(t, es, mwApache+"/envvars"); string(e.Data) != "unset HOME\n: ${APACHE_RUN_USER:=www-data}\nexport APACHE_RUN_USER\n: ${APACHE_LOG_DIR:=/var/log/apache2$SUFFIX}\nexport APACHE_LOG_DIR\n" {
		t.Errorf("envvars:\n%s", e.Data)
	}
	if e := find(t, es, mwApache+"/sites-available/000-default.conf"); !strings.Contains(string(e.Data), "\tAllowEncodedSlashes NoDecode\n</VirtualHost>") {
		t.Errorf("000-default.conf:\n%s", e.Data)
	}
	for _, ini := range []string{"etc/php/8.2/apache2/conf.d/99-opcache-recommended.ini", "etc/php/8.2/cli/conf.d/99-opcache-recommended.ini"} {
		if e := find(t, es, ini); string(e.Data) != mwOpcacheINI {
			t.Errorf("%s = %q", ini, e.Data)
		}
	}
	for name, file := range map[string]string{mwEntrypoint: "mediawiki/docker-php-entrypoint", mwForeground: "mediawiki/apache2-foreground"} {
		if e := find(t, es, name); e.Mode != 0o755 || !bytes.Equal(e.Data, recipeFile(file)) {
			t.Errorf("%s is not the recipe's %s", name, file)
		}
	}
	// docker import refuses STOPSIGNAL (apache2-foreground stands for it).
	if slices.ContainsFunc(changes, func(c string) bool { return strings.HasPrefix(c, "STOPSIGNAL") }) {
		t.Errorf("changes %v hold a STOPSIGNAL, which the engine's import refuses", changes)
	}
	for _, want := range []string{`ENTRYPOINT ["docker-php-entrypoint"]`, `CMD ["apache2-foreground"]`,
		"WORKDIR /var/www/html", "EXPOSE 80", "ENV MEDIAWIKI_VERSION=1.39.17", "ENV MEDIAWIKI_MAJOR_VERSION=1.39"} {
		if !slices.Contains(changes, want) {
			t.Errorf("changes %v lack %s", changes, want)
		}
	}
}
