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

// The WordPress image is laid out as the official one
// (github.com/docker-library/wordpress, latest/php8.3/apache/Dockerfile, on
// github.com/docker-library/php 8.3/bookworm/apache/Dockerfile): WordPress in
// /usr/src/wordpress, copied into /var/www/html by the entrypoint on first
// start, Apache with mod_php serving /var/www/html, logs on stdout and
// stderr.
const (
	wpEntrypoint      = "usr/local/bin/docker-entrypoint.sh"
	wpEnsureInstalled = "usr/local/bin/docker-ensure-installed.sh"
	wpForeground      = "usr/local/bin/apache2-foreground"
	wpSource          = "usr/src/wordpress"
	wpConfigDocker    = wpSource + "/wp-config-docker.php"
	wpHtaccess        = wpSource + "/.htaccess"
	// wpDebian is where Debian's package puts WordPress.
	wpDebian = "usr/share/wordpress"
	// wpHTML is the document root, the catalog's volume.
	wpHTML = "var/www/html"
	// wpApacheConf is the image's Apache settings, enabled as a conf (read
	// after apache2.conf's <Directory /var/www/>, which it overrides).
	wpApacheConf        = "etc/apache2/conf-available/docker-wordpress.conf"
	wpApacheConfEnabled = "etc/apache2/conf-enabled/docker-wordpress.conf"
	wpApacheMain        = "etc/apache2/apache2.conf"
	// wwwData is Debian's www-data (base-passwd's fixed uid and gid 33),
	// the official image's user too.
	wwwData = 33
)

// wpPackages are Debian 12's WordPress (6.1), its default themes and
// Apache with mod_php 8.2, the PHP extensions the official image has that
// Debian packages apart (mysqli, gd, intl, zip, bcmath; curl, mbstring and
// xml are built into the official PHP), php-cli for the catalog's
// post-install step, and curl for its health check. debootstrap installs no
// Recommends: the themes are named.
var wpPackages = []string{
	"wordpress", "wordpress-theme-twentytwentythree", "wordpress-theme-twentytwentytwo", "wordpress-theme-twentytwentyone",
	"apache2", "libapache2-mod-php", "php-cli", "php-mysql", "php-gd", "php-intl", "php-zip", "php-bcmath",
	"php-curl", "php-mbstring", "php-xml", "curl", "ca-certificates",
}

// wpApacheConfText is what the official php:apache image configures
// (docker-php.conf, remoteip.conf), over Debian's apache2.conf: index.php
// first, no folder listings, .htaccess files honoured (WordPress's rewrite
// rules live there), and the client's address taken from X-Forwarded-For
// when the request comes from a private network (the proxy).
const wpApacheConfText = `# The toolbox's WordPress image: the official php:apache image's settings.
DirectoryIndex disabled
DirectoryIndex index.php index.html

<Directory /var/www/>
	Options -Indexes
	AllowOverride All
</Directory>

RemoteIPHeader X-Forwarded-For
RemoteIPInternalProxy 10.0.0.0/8
RemoteIPInternalProxy 172.16.0.0/12
RemoteIPInternalProxy 192.168.0.0/16
RemoteIPInternalProxy 169.254.0.0/16
RemoteIPInternalProxy 127.0.0.0/8
`

// wpPHPIni is the official image's opcache-recommended.ini and
// error-logging.ini, for Apache's PHP and the command line's.
const wpPHPIni = `; The toolbox's WordPress image: the official image's PHP settings.
opcache.memory_consumption=128
opcache.interned_strings_buffer=8
opcache.max_accelerated_files=4000
opcache.revalidate_freq=2
error_reporting = E_ERROR | E_WARNING | E_PARSE | E_CORE_ERROR | E_CORE_WARNING | E_COMPILE_ERROR | E_COMPILE_WARNING | E_RECOVERABLE_ERROR
display_errors = Off
display_startup_errors = Off
log_errors = On
error_log = /dev/stderr
ignore_repeated_errors = On
ignore_repeated_source = Off
html_errors = Off
`

// wpHtaccessText is WordPress's own rewrite block for a site at the root
// (https://developer.wordpress.org/advanced-administration/server/web-server/httpd/),
// with the Authorization header passed to PHP, as the official image
// writes it. Debian's .htaccess is a link to a file of comments.
const wpHtaccessText = `# BEGIN WordPress

RewriteEngine On
RewriteRule .* - [E=HTTP_AUTHORIZATION:%{HTTP:Authorization}]
RewriteBase /
RewriteRule ^index\.php$ - [L]
RewriteCond %{REQUEST_FILENAME} !-f
RewriteCond %{REQUEST_FILENAME} !-d
RewriteRule . /index.php [L]

# END WordPress
`

// wpApacheModules are the modules the image enables besides Debian's
// defaults: mod_php needs the prefork MPM (the official image switches to
// it too), and the official image adds rewrite, expires and remoteip.
var wpApacheModules = []string{"mpm_prefork", "rewrite", "expires", "remoteip"}

func wordpressRecipe(tag string) recipe {
	return recipe{
		Info: Info{
			Name:  "wordpress",
			Tag:   tag,
			From:  debootstrapFrom(wpPackages),
			Takes: "about 3-4 minutes the first time",
			Needs: debootstrapNeeds,
			Lacks: "the official image's WordPress and PHP: this is Debian 12's WordPress 6.1 (with Debian's security fixes) on Debian's PHP 8.2 and Apache 2.4 under the catalog's 7.x tag, so a site made here has 6.1's database schema " +
				"(the official image's newer code upgrades it on the volume, not back), and WordPress's own automatic updates replace Debian's code in the volume as they do the official image's; " +
				"Debian's package leaves out the Hello Dolly plugin, and WordPress's bundled getID3, underscore, cropper and CA bundle are Debian's copies (copied into the tree, not linked); " +
				"PHP has Debian's extensions (mysqli, gd, intl, zip, bcmath, curl, mbstring, xml, opcache and Debian's common set) but no imagick, and there is no ghostscript or libheif (no PDF previews; AVIF and HEIC only as far as Debian's GD goes), " +
				"and Debian's php.ini (its limits are PHP's defaults, as the official image's) under the official image's opcache and error-logging settings; " +
				"the entrypoint and wp-config-docker.php are small stand-ins written here: they read WORDPRESS_DB_HOST, WORDPRESS_DB_USER, WORDPRESS_DB_PASSWORD, WORDPRESS_DB_NAME, WORDPRESS_DB_CHARSET, WORDPRESS_DB_COLLATE, WORDPRESS_TABLE_PREFIX, WORDPRESS_DEBUG, WORDPRESS_CONFIG_EXTRA " +
				"and the eight WORDPRESS_*_KEY and *_SALT, each also as *_FILE, at run time as upstream's do, and APACHE_RUN_USER and APACHE_RUN_GROUP; there is no php-fpm or cli variant, and running as a uid other than root is untried (Apache would also need a port above 1024); " +
				"the image's /var/www/html is empty (the official one holds wp-content/plugins, themes and cache, mode 1777, for bind mounts); " +
				"no STOPSIGNAL (an imported image cannot carry one): apache2-foreground stays as the container's first process and turns the engine's SIGTERM into Apache's graceful stop, SIGWINCH, where the official image execs Apache and sets STOPSIGNAL SIGWINCH; " +
				"no VOLUME /var/www/html (mount one, as the catalog does)",
		},
		needs:       needsDebootstrap,
		folder:      "wordpress-rootfs-" + debianSuite,
		buildLayout: 1,
		inputs:      debianInputs(wpPackages),
		build:       debianBuild("wordpress", wpPackages, wordpressCheck),
		imageLayout: 1,
		imageInputs: func() []input {
			return []input{
				{"entrypoint", recipeFile("wordpress/docker-entrypoint.sh")},
				{"foreground", recipeFile("wordpress/apache2-foreground")},
				{"wp-config", recipeFile("wordpress/wp-config-docker.php")},
				text("apache", wpApacheConfText), text("php", wpPHPIni), text("htaccess", wpHtaccessText),
				text("modules", strings.Join(wpApacheModules, ",")),
			}
		},
		image: wordpressImage,
	}
}

// wordpressCheck says which of the files the image needs debootstrap did
// not install, following links inside the root file system (/usr/bin/php
// is one through /etc/alternatives).
func wordpressCheck(rootfs string) error {
	var missing []string
	for _, p := range []string{
		"usr/sbin/apache2", "usr/bin/php", "usr/bin/curl", "usr/bin/tar",
		wpDebian + "/wp-includes/version.php", wpDebian + "/wp-load.php",
		wpDebian + "/wp-content/themes/twentytwentythree/style.css",
		"etc/apache2/envvars", "etc/apache2/mods-available/mpm_prefork.load", "etc/apache2/mods-available/rewrite.load",
	} {
		if _, err := rootfsResolve(rootfs, p); err != nil {
			missing = append(missing, "/"+p)
		}
	}
	if _, err := phpDir(rootfs); err != nil {
		missing = append(missing, "/etc/php/*/apache2 and cli")
	}
	if found, _ := filepath.Glob(filepath.Join(rootfs, "etc/apache2/mods-available/php*.load")); len(found) == 0 {
		missing = append(missing, "/etc/apache2/mods-available/php*.load")
	}
	if found, _ := filepath.Glob(filepath.Join(rootfs, "etc/php/*/mods-available/mysqli.ini")); len(found) == 0 {
		missing = append(missing, "/etc/php/*/mods-available/mysqli.ini")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s lacks %s", rootfs, strings.Join(missing, ", "))
	}
	return nil
}

// phpDir is Debian's PHP configuration folder, etc/php/VERSION, with an
// apache2 and a cli folder.
func phpDir(rootfs string) (string, error) {
	found, _ := filepath.Glob(filepath.Join(rootfs, "etc/php/*/apache2"))
	slices.Sort(found)
	for i := len(found) - 1; i >= 0; i-- {
		dir := filepath.Dir(found[i])
		if isDir(filepath.Join(dir, "cli")) {
			rel, err := filepath.Rel(rootfs, dir)
			return filepath.ToSlash(rel), err
		}
	}
	return "", fmt.Errorf("%s holds no PHP for Apache and the command line (etc/php/*/apache2 and cli)", rootfs)
}

// rootfsResolve follows rel (slash-separated, relative to the root file
// system rootfs) through its links as the image would, absolute links
// being relative to rootfs, and returns the path on this machine of what
// it names, which must exist.
func rootfsResolve(rootfs, rel string) (string, error) {
	todo := strings.Split(strings.Trim(path.Clean("/"+rel), "/"), "/")
	var done []string // the resolved components so far
	for links := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		p := filepath.Join(rootfs, filepath.FromSlash(path.Join(append(done, c)...)))
		st, err := os.Lstat(p)
		if err != nil {
			return "", fmt.Errorf("/%s: %w", rel, err)
		}
		if st.Mode()&fs.ModeSymlink == 0 {
			done = append(done, c)
			continue
		}
		if links++; links > 40 {
			return "", fmt.Errorf("/%s: too many links", rel)
		}
		target, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			done = nil
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return filepath.Join(rootfs, filepath.FromSlash(path.Join(done...))), nil
}

// wordpressTree is Debian's WordPress as a self-contained tree under
// /usr/src/wordpress, owned by www-data as the official image's: Debian's
// links (into /usr/share/javascript, /usr/share/php, /etc/ssl, ...) are
// replaced by what they name, so that the copy in a volume works alone.
// Debian's wp-config.php (which reads /etc/wordpress) and .htaccess (a link
// to /etc/wordpress/htaccess) are left out: the image has its own.
func wordpressTree(rootfs string) ([]docker.Entry, error) {
	root := filepath.Join(rootfs, wpDebian)
	var es []docker.Entry
	var walk func(dir, dst string, depth int) error
	walk = func(dir, dst string, depth int) error {
		if depth > 10 {
			return fmt.Errorf("%s: folders linked too deep", dir)
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, d := range ents {
			name := path.Join(dst, d.Name())
			if name == wpSource+"/wp-config.php" || name == wpHtaccess {
				continue
			}
			p := filepath.Join(dir, d.Name())
			if d.Type()&fs.ModeSymlink != 0 {
				rel, err := filepath.Rel(rootfs, p)
				if err != nil {
					return err
				}
				if p, err = rootfsResolve(rootfs, filepath.ToSlash(rel)); err != nil {
					return fmt.Errorf("WordPress's link %s: %w", name, err)
				}
			}
			st, err := os.Stat(p)
			if err != nil {
				return err
			}
			switch {
			case st.IsDir():
				es = append(es, docker.Entry{Name: name, Mode: fs.ModeDir | st.Mode().Perm(), UID: wwwData, GID: wwwData})
				if err := walk(p, name, depth+1); err != nil {
					return err
				}
			case st.Mode().IsRegular():
				es = append(es, docker.Entry{Name: name, Mode: st.Mode().Perm(), UID: wwwData, GID: wwwData, SourcePath: p})
			}
		}
		return nil
	}
	es = append(es, docker.Entry{Name: wpSource, Mode: fs.ModeDir | 0o755, UID: wwwData, GID: wwwData})
	if err := walk(root, wpSource, 0); err != nil {
		return nil, fmt.Errorf("WordPress of %s: %w", rootfs, err)
	}
	// The upstream archive's "Silence is golden" files, which Debian's
	// package lacks in places: no folder of wp-content lists its files.
	for _, dir := range []string{"wp-content", "wp-content/themes", "wp-content/plugins"} {
		name := path.Join(wpSource, dir, "index.php")
		if !slices.ContainsFunc(es, func(e docker.Entry) bool { return e.Name == name }) {
			es = append(es, docker.Entry{Name: name, Mode: 0o644, UID: wwwData, GID: wwwData, Data: []byte("<?php\n// Silence is golden.\n")})
		}
	}
	es = append(es,
		docker.Entry{Name: wpConfigDocker, Mode: 0o644, UID: wwwData, GID: wwwData, Data: recipeFile("wordpress/wp-config-docker.php")},
		docker.Entry{Name: wpHtaccess, Mode: 0o644, UID: wwwData, GID: wwwData, Data: []byte(wpHtaccessText)},
	)
	return es, nil
}

// logFormatHost matches %h in Apache's LogFormat lines: the official image
// logs %a instead, the client's address that mod_remoteip sets from
// X-Forwarded-For (docker-library/wordpress issue 383).
var logFormatHost = regexp.MustCompile(`(?m)^(\s*LogFormat\s+"[^"\n]*)%h([^"\n]*")`)

// wordpressImage is the root file system as debootstrap made it (see
// rootfsEntries) with WordPress in /usr/src/wordpress, an empty
// /var/www/html, Apache set up as the official image's, and the image's
// entrypoint and apache2-foreground.
func wordpressImage(dir string) ([]docker.Entry, []string, error) {
	if err := wordpressCheck(dir); err != nil {
		return nil, nil, err
	}
	php, err := phpDir(dir)
	if err != nil {
		return nil, nil, err
	}
	main, err := os.ReadFile(filepath.Join(dir, wpApacheMain))
	if err != nil {
		return nil, nil, err
	}
	for logFormatHost.Match(main) {
		main = logFormatHost.ReplaceAll(main, []byte("${1}%a${2}"))
	}
	es, err := rootfsEntries(dir, wpHTML+"/", "var/log/apache2/", wpApacheMain)
	if err != nil {
		return nil, nil, err
	}
	tree, err := wordpressTree(dir)
	if err != nil {
		return nil, nil, err
	}
	es = append(es, tree...)

	// The run, lock and log folders of envvars, writable by anyone as the
	// official image makes them; the logs are the container's output.
	sticky := fs.ModeDir | fs.ModeSticky | 0o777
	own := []docker.Entry{
		{Name: wpHTML, Mode: sticky, UID: wwwData, GID: wwwData},
		{Name: "var/log/apache2", Mode: sticky, UID: wwwData, GID: wwwData},
		{Name: "var/log/apache2/error.log", Mode: fs.ModeSymlink | 0o777, UID: wwwData, GID: wwwData, Link: "/dev/stderr"},
		{Name: "var/log/apache2/access.log", Mode: fs.ModeSymlink | 0o777, UID: wwwData, GID: wwwData, Link: "/dev/stdout"},
		{Name: "var/log/apache2/other_vhosts_access.log", Mode: fs.ModeSymlink | 0o777, UID: wwwData, GID: wwwData, Link: "/dev/stdout"},
		{Name: "run/apache2", Mode: sticky, UID: wwwData, GID: wwwData},
		{Name: "run/apache2/socks", Mode: sticky, UID: wwwData, GID: wwwData},
		{Name: "run/lock/apache2", Mode: sticky, UID: wwwData, GID: wwwData},
		{Name: wpApacheMain, Mode: 0o644, Data: main},
		{Name: wpApacheConf, Mode: 0o644, Data: []byte(wpApacheConfText)},
		{Name: wpApacheConfEnabled, Mode: fs.ModeSymlink | 0o777, Link: "../conf-available/docker-wordpress.conf"},
		{Name: php + "/apache2/conf.d/99-toolbox.ini", Mode: 0o644, Data: []byte(wpPHPIni)},
		{Name: php + "/cli/conf.d/99-toolbox.ini", Mode: 0o644, Data: []byte(wpPHPIni)},
		{Name: wpEntrypoint, Mode: 0o755, Data: recipeFile("wordpress/docker-entrypoint.sh")},
		{Name: wpEnsureInstalled, Mode: fs.ModeSymlink | 0o777, Link: "docker-entrypoint.sh"},
		{Name: wpForeground, Mode: 0o755, Data: recipeFile("wordpress/apache2-foreground")},
	}
	// The modules: mod_php's, then the official image's; the prefork MPM
	// only (mod_php is not thread-safe).
	mods, _ := filepath.Glob(filepath.Join(dir, "etc/apache2/mods-available/php*.load"))
	slices.Sort(mods)
	enable := append(slices.Clone(wpApacheModules), strings.TrimSuffix(filepath.Base(mods[len(mods)-1]), ".load"))
	var dropMods []string
	for _, mpm := range []string{"mpm_event", "mpm_worker"} {
		dropMods = append(dropMods, "etc/apache2/mods-enabled/"+mpm+".load", "etc/apache2/mods-enabled/"+mpm+".conf")
	}
	for _, m := range enable {
		for _, ext := range []string{".load", ".conf"} {
			if _, err := os.Stat(filepath.Join(dir, "etc/apache2/mods-available", m+ext)); err != nil {
				continue
			}
			own = append(own, docker.Entry{Name: "etc/apache2/mods-enabled/" + m + ext, Mode: fs.ModeSymlink | 0o777, Link: "../mods-available/" + m + ext})
		}
	}
	es = slices.DeleteFunc(es, func(e docker.Entry) bool {
		return slices.Contains(dropMods, e.Name) || slices.ContainsFunc(own, func(o docker.Entry) bool { return o.Name == e.Name })
	})
	es = append(es, own...)
	changes := []string{
		`ENTRYPOINT ["docker-entrypoint.sh"]`, `CMD ["apache2-foreground"]`,
		"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"ENV LANG=C.UTF-8", "ENV APACHE_CONFDIR=/etc/apache2", "ENV APACHE_ENVVARS=/etc/apache2/envvars",
		// No STOPSIGNAL SIGWINCH, which the engine refuses in an import:
		// apache2-foreground turns SIGTERM into it.
		"WORKDIR /var/www/html", "EXPOSE 80",
	}
	return es, changes, nil
}
