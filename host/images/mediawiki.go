package images

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/toolbox-collective/toolbox/deploy/docker"
)

// The MediaWiki image is Debian 12's mediawiki package (1.39) with Apache
// and mod_php, laid out as the official image is
// (github.com/wikimedia/mediawiki-docker, 1.46/apache/Dockerfile, FROM
// php:8.3-apache of github.com/docker-library/php): MediaWiki's code in
// /var/www/html, served there by Apache in the foreground, logging to
// stdout and stderr.
//
// Debian splits MediaWiki over /usr/share/mediawiki (the code),
// /var/lib/mediawiki (the web root: links to the code, and images/, cache/
// and extensions/) and /etc/mediawiki (LocalSettings.php). The image folds
// them back into one tree: /usr/share/mediawiki's files are moved to
// /var/www/html, with real images/, cache/ and extensions/ folders there.
// That matters: PHP resolves links in __DIR__, so an index.php linked from
// /var/www/html would make /usr/share/mediawiki the install path, and a
// volume on /var/www/html/images would never be written. The old paths
// become links to /var/www/html.
const (
	mwRoot   = "var/www/html"
	mwDebian = "usr/share/mediawiki" // the package's code
	mwVar    = "var/lib/mediawiki"   // the package's web root
	// mwWWWData is Debian's www-data, uid and gid 33 (base-passwd), as in
	// the official image (also Debian).
	mwWWWData = 33

	mwEntrypoint = "usr/local/bin/docker-php-entrypoint"
	mwForeground = "usr/local/bin/apache2-foreground"
	mwApache     = "etc/apache2"
	mwLogs       = "var/log/apache2"
	// mwSQLite is where the official image keeps SQLite databases.
	mwSQLite = "var/www/data"
)

// mediawikiPackages are the packages debootstrap installs: MediaWiki, and
// those of its Recommends that the official image also has (php-cli for the
// maintenance scripts, APCu, LuaSandbox for Scribunto, ImageMagick and rsvg
// for thumbnails, Pygments for SyntaxHighlight, which Debian points at
// /usr/bin/pygmentize), with libapache2-mod-php for Apache and curl for the
// catalog's health check. php-mysql, php-intl, php-mbstring and php-xml are
// MediaWiki's Depends, named here so that debootstrap (which takes the first
// of alternatives) gets MariaDB's driver.
var mediawikiPackages = []string{
	"mediawiki", "apache2", "libapache2-mod-php",
	"php-mysql", "php-intl", "php-mbstring", "php-xml", "php-cli",
	"php-apcu", "php-luasandbox", "php-curl", "php-gmp", "php-readline", "php-yaml",
	"imagemagick", "librsvg2-bin", "python3-pygments",
	"curl", "ca-certificates",
}

// mwShortURLConf and mwPHPConf are the official images' Apache settings:
// short URLs (1.46/apache/Dockerfile, "Enable Short URLs") and PHP files
// handled by PHP with .htaccess files obeyed under /var/www
// (docker-library/php, docker-php.conf), which MediaWiki's own .htaccess
// files (images/, cache/, includes/, maintenance/, ...) rely on.
const (
	mwShortURLConf = `# Short URLs, as the official MediaWiki image sets them.
<Directory /var/www/html>
	RewriteEngine On
	RewriteCond %{REQUEST_FILENAME} !-f
	RewriteCond %{REQUEST_FILENAME} !-d
	RewriteRule ^ %{DOCUMENT_ROOT}/index.php [L]
</Directory>
`
	mwPHPConf = `# PHP first, and .htaccess files obeyed, as in the official php:apache image.
DirectoryIndex disabled
DirectoryIndex index.php index.html

<Directory /var/www/>
	Options -Indexes
	AllowOverride All
</Directory>
`
	// mwOpcacheINI is the official image's opcache-recommended.ini.
	mwOpcacheINI = `; The official MediaWiki image's OPcache settings.
opcache.memory_consumption=128
opcache.interned_strings_buffer=8
opcache.max_accelerated_files=4000
opcache.revalidate_freq=60
`
)

func mediawikiRecipe(tag string) recipe {
	return recipe{
		Info: Info{
			Name:  "mediawiki",
			Tag:   tag,
			From:  debootstrapFrom(mediawikiPackages),
			Takes: "about 3-5 minutes the first time",
			Needs: debootstrapNeeds,
			Lacks: "the official image's MediaWiki and PHP: this is Debian 12's MediaWiki 1.39 (LTS, with Debian's security fixes) under the catalog's tag, on Debian's PHP 8.2 and Apache 2.4 " +
				"(the official 1.46 image has PHP 8.3 built from source); 1.39 has no maintenance/run.php, so scripts run as php maintenance/NAME.php, which 1.46 still accepts; " +
				"a database made by 1.46 does not go back to 1.39, and one made here needs `php maintenance/update.php` under the official image; " +
				"PHP reads Debian's php.ini (php.ini-production: display_errors off; upload_max_filesize 2M, post_max_size 8M and memory_limit 128M as PHP's defaults, which the official image keeps) and has Debian's extensions (calendar, intl, mbstring, mysqli, opcache, APCu, LuaSandbox as official, and also curl, gmp, yaml, xml), configured under /etc/php/8.2, not /usr/local/etc/php; " +
				"no git (Special:Version shows no commit; extensions come in another image, not by git clone); " +
				"/usr/share/mediawiki and /var/lib/mediawiki are links to /var/www/html, and Debian's /mediawiki alias is off; " +
				"no STOPSIGNAL SIGWINCH in the image's config (docker import cannot set one): apache2-foreground stays as PID 1 and turns the engine's SIGTERM into Apache's graceful stop, which SIGWINCH is",
		},
		needs:       needsDebootstrap,
		folder:      "mediawiki-rootfs-" + debianSuite,
		buildLayout: 1,
		inputs:      debianInputs(mediawikiPackages),
		build:       debianBuild("mediawiki", mediawikiPackages, mediawikiCheck),
		imageLayout: 1,
		imageInputs: func() []input {
			return []input{
				{"entrypoint", recipeFile("mediawiki/docker-php-entrypoint")},
				{"foreground", recipeFile("mediawiki/apache2-foreground")},
				text("short-url", mwShortURLConf), text("php", mwPHPConf), text("opcache", mwOpcacheINI),
			}
		},
		image: mediawikiImage,
	}
}

// mediawikiCheck says which of the files the image needs debootstrap did
// not install: MediaWiki's entry points and the maintenance scripts the
// catalog and the tests run, Apache with mod_php and mod_rewrite, the PHP
// extensions MediaWiki needs, and curl.
func mediawikiCheck(rootfs string) error {
	var missing []string
	for _, p := range []string{
		mwDebian + "/index.php", mwDebian + "/api.php", mwDebian + "/includes/WebStart.php",
		mwDebian + "/maintenance/install.php", mwDebian + "/maintenance/update.php",
		mwDebian + "/maintenance/edit.php", mwDebian + "/maintenance/importImages.php",
		mwDebian + "/extensions-core", mwVar + "/images/.htaccess", mwVar + "/cache/.htaccess",
		"usr/sbin/apache2", mwApache + "/envvars", mwApache + "/sites-available/000-default.conf",
		mwApache + "/mods-available/rewrite.load", mwApache + "/mods-available/mpm_prefork.load",
		"usr/bin/php", "usr/bin/curl", "usr/bin/convert", "usr/bin/pygmentize",
	} {
		if _, err := os.Lstat(filepath.Join(rootfs, p)); err != nil {
			missing = append(missing, "/"+p)
		}
	}
	if php, err := phpVersionDir(rootfs); err != nil {
		missing = append(missing, "/etc/php/*/apache2/php.ini")
	} else {
		for _, m := range []string{"mysqli", "intl", "mbstring", "apcu", "luasandbox", "opcache", "xml"} {
			if found, _ := filepath.Glob(filepath.Join(rootfs, php, "apache2/conf.d/*-"+m+".ini")); len(found) == 0 {
				missing = append(missing, "/"+php+"/apache2/conf.d/*-"+m+".ini")
			}
		}
		if _, err := os.Stat(filepath.Join(rootfs, mwApache, "mods-available", phpModule(php)+".load")); err != nil {
			missing = append(missing, "/"+mwApache+"/mods-available/"+phpModule(php)+".load")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s lacks %s", rootfs, strings.Join(missing, ", "))
	}
	return nil
}

// phpVersionDir is PHP's settings folder, etc/php/VERSION, in the root file
// system.
func phpVersionDir(rootfs string) (string, error) {
	found, _ := filepath.Glob(filepath.Join(rootfs, "etc/php/*/apache2/php.ini"))
	if len(found) == 0 {
		return "", fmt.Errorf("%s holds no PHP for Apache (no etc/php/*/apache2/php.ini)", rootfs)
	}
	slices.Sort(found)
	rel, err := filepath.Rel(rootfs, filepath.Dir(filepath.Dir(found[len(found)-1])))
	if err != nil {
		return "", err
	}
	return filepath.ToSlash(rel), nil
}

// mwVersionRE finds MediaWiki's version in includes/Defines.php.
var mwVersionRE = regexp.MustCompile(`define\(\s*'MW_VERSION',\s*'([0-9][^']*)'\s*\)`)

// mediawikiVersion is the version of MediaWiki in the root file system.
func mediawikiVersion(rootfs string) (string, error) {
	b, err := os.ReadFile(filepath.Join(rootfs, mwDebian, "includes/Defines.php"))
	if err != nil {
		return "", err
	}
	m := mwVersionRE.FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("%s/%s/includes/Defines.php defines no MW_VERSION", rootfs, mwDebian)
	}
	return string(m[1]), nil
}

// envvarsExportRE matches Debian's "export NAME=value" lines of
// /etc/apache2/envvars.
var envvarsExportRE = regexp.MustCompile(`(?m)^export ([^=\s]+)=(.*)$`)

// mwEnvvars makes each of envvars' settings a default that the container's
// environment overrides (APACHE_RUN_USER=... at docker run), as the
// official image does (docker-library/php, the sed over $APACHE_ENVVARS).
func mwEnvvars(text string) string {
	return envvarsExportRE.ReplaceAllString(text, ": $${$1:=$2}\nexport $1")
}

// mwDefaultSite adds AllowEncodedSlashes NoDecode (for VisualEditor) to
// Debian's default site, as the official image does (1.46/apache/Dockerfile).
func mwDefaultSite(text string) (string, error) {
	i := strings.LastIndex(text, "</VirtualHost>")
	if i < 0 {
		return "", fmt.Errorf("%s/sites-available/000-default.conf has no </VirtualHost>", mwApache)
	}
	return text[:i] + "\tAllowEncodedSlashes NoDecode\n" + text[i:], nil
}

// mediawikiImage is the root file system as debootstrap made it (see
// rootfsEntries) with MediaWiki moved to /var/www/html, Apache set up as in
// the official image, and the project's entrypoint and apache2-foreground.
func mediawikiImage(dir string) ([]docker.Entry, []string, error) {
	if err := mediawikiCheck(dir); err != nil {
		return nil, nil, err
	}
	version, err := mediawikiVersion(dir)
	if err != nil {
		return nil, nil, err
	}
	php, err := phpVersionDir(dir)
	if err != nil {
		return nil, nil, err
	}
	envvars, err := os.ReadFile(filepath.Join(dir, mwApache, "envvars"))
	if err != nil {
		return nil, nil, err
	}
	site, err := os.ReadFile(filepath.Join(dir, mwApache, "sites-available/000-default.conf"))
	if err != nil {
		return nil, nil, err
	}
	defaultSite, err := mwDefaultSite(string(site))
	if err != nil {
		return nil, nil, err
	}
	opcache := []string{php + "/apache2/conf.d/99-opcache-recommended.ini", php + "/cli/conf.d/99-opcache-recommended.ini"}
	es, err := rootfsEntries(dir, append([]string{
		mwDebian, mwVar,
		mwRoot + "/", // Apache's index.html: the official image removes it
		mwLogs,
		mwApache + "/envvars", mwApache + "/sites-available/000-default.conf",
		// Debian's /mediawiki alias of /var/lib/mediawiki: not in the
		// official image, which serves the wiki at the root.
		mwApache + "/conf-enabled/mediawiki.conf",
		// Apache's modules: prefork (which mod_php needs), PHP and rewrite,
		// whatever the packages' scripts managed to switch in the chroot.
		mwApache + "/mods-enabled/mpm_", mwApache + "/mods-enabled/php", mwApache + "/mods-enabled/rewrite.",
		mwEntrypoint, mwForeground,
	}, opcache...)...)
	if err != nil {
		return nil, nil, err
	}

	// The code, without Debian's links into /var/lib/mediawiki and its
	// web installer override (which names /etc/mediawiki as the place of
	// LocalSettings.php); extensions-core becomes extensions.
	code, err := docker.TreeEntries(filepath.Join(dir, mwDebian), mwRoot, func(rel string) bool {
		switch rel {
		case "images", "cache", "config", "extensions", "extensions-core", "LocalSettings.php",
			"mw-config/overrides/DebianOverrides.php":
			return true
		}
		return false
	})
	if err != nil {
		return nil, nil, err
	}
	var wiki []docker.Entry
	// The official image gives extensions/, skins/, cache/ and images/ to
	// www-data, with what they hold (1.46/apache/Dockerfile, chown -R).
	for _, sub := range []struct{ from, to string }{
		{mwDebian + "/extensions-core", "extensions"},
		{mwVar + "/cache", "cache"},
		{mwVar + "/images", "images"},
	} {
		part, err := docker.TreeEntries(filepath.Join(dir, sub.from), mwRoot+"/"+sub.to, nil)
		if err != nil {
			return nil, nil, err
		}
		wiki = append(wiki, part...)
	}
	wiki = append(wiki, code...)
	for i := range wiki {
		e := &wiki[i]
		switch rel := strings.TrimPrefix(e.Name, mwRoot+"/"); {
		case e.Name == mwRoot:
			// Root's, as php:apache leaves it for a container run as
			// another user (docker-library/php issue 743).
			e.UID, e.GID, e.Mode = mwWWWData, mwWWWData, fs.ModeDir|fs.ModeSticky|0o777
		case underAny(rel, "extensions", "skins", "cache", "images"):
			e.UID, e.GID = mwWWWData, mwWWWData
			if e.Mode.IsDir() {
				e.Mode = fs.ModeDir | 0o755 // Debian's postinst makes cache/ and images/ 0700
			}
		}
	}
	es = slices.DeleteFunc(es, func(e docker.Entry) bool { return e.Name == mwRoot })
	es = append(es, wiki...)

	link := func(name, target string) docker.Entry {
		return docker.Entry{Name: name, Mode: fs.ModeSymlink | 0o777, Link: target}
	}
	wwwDir := func(name string, perm fs.FileMode) docker.Entry {
		return docker.Entry{Name: name, Mode: fs.ModeDir | perm, UID: mwWWWData, GID: mwWWWData}
	}
	modLink := func(name string) docker.Entry {
		return link(mwApache+"/mods-enabled/"+name, "../mods-available/"+name)
	}
	logLink := func(name, target string) docker.Entry {
		e := link(mwLogs+"/"+name, target)
		e.UID, e.GID = mwWWWData, mwWWWData
		return e
	}
	es = append(es,
		link(mwDebian, "/"+mwRoot), link(mwVar, "/"+mwRoot),
		wwwDir(mwSQLite, 0o755),
		// Logs to the container's output, as php:apache has them.
		wwwDir(mwLogs, fs.ModeSticky|0o777),
		logLink("error.log", "/dev/stderr"), logLink("access.log", "/dev/stdout"), logLink("other_vhosts_access.log", "/dev/stdout"),
		docker.Entry{Name: mwApache + "/envvars", Mode: 0o644, Data: []byte(mwEnvvars(string(envvars)))},
		docker.Entry{Name: mwApache + "/sites-available/000-default.conf", Mode: 0o644, Data: []byte(defaultSite)},
		docker.Entry{Name: mwApache + "/conf-available/short-url.conf", Mode: 0o644, Data: []byte(mwShortURLConf)},
		docker.Entry{Name: mwApache + "/conf-available/docker-php.conf", Mode: 0o644, Data: []byte(mwPHPConf)},
		link(mwApache+"/conf-enabled/short-url.conf", "../conf-available/short-url.conf"),
		link(mwApache+"/conf-enabled/docker-php.conf", "../conf-available/docker-php.conf"),
		modLink("rewrite.load"), modLink("mpm_prefork.load"), modLink("mpm_prefork.conf"),
		modLink(phpModule(php)+".load"), modLink(phpModule(php)+".conf"),
		docker.Entry{Name: mwEntrypoint, Mode: 0o755, Data: recipeFile("mediawiki/docker-php-entrypoint")},
		docker.Entry{Name: mwForeground, Mode: 0o755, Data: recipeFile("mediawiki/apache2-foreground")},
	)
	for _, ini := range opcache {
		es = append(es, docker.Entry{Name: ini, Mode: 0o644, Data: []byte(mwOpcacheINI)})
	}
	major := version
	if parts := strings.SplitN(version, ".", 3); len(parts) >= 2 {
		major = parts[0] + "." + parts[1]
	}
	changes := []string{
		`ENTRYPOINT ["docker-php-entrypoint"]`, `CMD ["apache2-foreground"]`,
		// No STOPSIGNAL SIGWINCH, which docker import refuses:
		// apache2-foreground turns SIGTERM into Apache's graceful stop.
		"WORKDIR /" + mwRoot,
		"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"ENV APACHE_CONFDIR=/" + mwApache, "ENV APACHE_ENVVARS=/" + mwApache + "/envvars",
		"ENV MEDIAWIKI_MAJOR_VERSION=" + major, "ENV MEDIAWIKI_VERSION=" + version,
		"EXPOSE 80",
	}
	return es, changes, nil
}

// underAny says whether rel is one of the folders or under one.
func underAny(rel string, folders ...string) bool {
	for _, f := range folders {
		if rel == f || strings.HasPrefix(rel, f+"/") {
			return true
		}
	}
	return false
}

// phpModule is the name of mod_php's Apache module for the PHP of settings
// folder php (etc/php/8.2: php8.2).
func phpModule(php string) string { return "php" + path.Base(php) }
