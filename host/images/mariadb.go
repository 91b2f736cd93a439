package images

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/toolbox-collective/toolbox/deploy/docker"
)

const (
	mariadbEntrypoint  = "usr/local/bin/docker-entrypoint.sh"
	mariadbHealthcheck = "usr/local/bin/healthcheck.sh"
	// mariadbConfig is the image's own server settings, read after Debian's
	// (50-server.cnf binds to 127.0.0.1): the official image listens on
	// every address and resolves no client names.
	mariadbConfig     = "etc/mysql/mariadb.conf.d/99-toolbox.cnf"
	mariadbConfigText = `# The toolbox's locally built MariaDB image: the official image's network
# settings, over Debian's 50-server.cnf.
[mysqld]
bind-address = 0.0.0.0
port = 3306
skip-name-resolve
`
	// mariadbData is the data folder: empty in the image (Debian's package
	// fills it when installed), so that the entrypoint's first start makes
	// it with the container's variables.
	mariadbData = "var/lib/mysql/"
)

func mariadbRecipe(tag string) recipe {
	packages := []string{"mariadb-server", "mariadb-client"}
	return recipe{
		Info: Info{
			Name:  "mariadb",
			Tag:   tag,
			From:  debootstrapFrom(packages),
			Takes: "about 2-3 minutes the first time",
			Needs: debootstrapNeeds,
			Lacks: "the official image's MariaDB version: this is Debian 12's MariaDB 10.11 under the catalog's tag, so its data folders do not move to the official image (nor back: 10.11 does not read 11.x data); " +
				"its entrypoint is a small stand-in (MARIADB_ROOT_PASSWORD, MARIADB_ROOT_HOST, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD, MARIADB_RANDOM_ROOT_PASSWORD, MARIADB_DATABASE, MARIADB_USER, MARIADB_PASSWORD and their MYSQL_* aliases only: " +
				"no /docker-entrypoint-initdb.d, *_FILE secrets, *_PASSWORD_HASH or MARIADB_AUTO_UPGRADE), and healthcheck.sh knows --connect, --innodb_initialized and --innodb_buffer_pool_loaded only; " +
				"no VOLUME /var/lib/mysql (mount one, as the catalog does); the mysql user is Debian's system user, not uid 999",
		},
		needs:       needsDebootstrap,
		folder:      "mariadb-rootfs-" + debianSuite,
		buildLayout: 1,
		inputs:      debianInputs(packages),
		build:       debianBuild("mariadb", packages, mariadbCheck),
		imageLayout: 1,
		imageInputs: func() []input {
			return []input{
				{"entrypoint", recipeFile("mariadb/docker-entrypoint.sh")},
				{"healthcheck", recipeFile("mariadb/healthcheck.sh")},
				text("config", mariadbConfigText),
			}
		},
		image: mariadbImage,
	}
}

// mariadbCheck says which of the programs the image needs debootstrap did
// not install: the server, what the entrypoint and healthcheck.sh run, and
// the clients of the catalog's dump and restore hooks.
func mariadbCheck(rootfs string) error {
	var missing []string
	for _, p := range []string{
		"usr/sbin/mariadbd", "usr/bin/mariadb-install-db", "usr/bin/mariadb-admin",
		"usr/bin/mariadb", "usr/bin/mariadb-dump", "usr/bin/setpriv",
	} {
		if _, err := os.Stat(filepath.Join(rootfs, p)); err != nil {
			missing = append(missing, "/"+p)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s lacks %s", rootfs, strings.Join(missing, ", "))
	}
	return nil
}

// mariadbImage is the root file system as debootstrap made it (see
// rootfsEntries) with an empty data folder, an entrypoint and a
// healthcheck.sh that behave like the official image's, and the official
// image's network settings.
func mariadbImage(dir string) ([]docker.Entry, []string, error) {
	if err := mariadbCheck(dir); err != nil {
		return nil, nil, err
	}
	es, err := rootfsEntries(dir, mariadbData, mariadbEntrypoint, mariadbHealthcheck, mariadbConfig)
	if err != nil {
		return nil, nil, err
	}
	es = append(es,
		docker.Entry{Name: mariadbEntrypoint, Mode: 0o755, Data: recipeFile("mariadb/docker-entrypoint.sh")},
		docker.Entry{Name: mariadbHealthcheck, Mode: 0o755, Data: recipeFile("mariadb/healthcheck.sh")},
		docker.Entry{Name: mariadbConfig, Mode: 0o644, Data: []byte(mariadbConfigText)},
	)
	changes := []string{
		`ENTRYPOINT ["/` + mariadbEntrypoint + `"]`, `CMD ["mariadbd"]`,
		"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"ENV LANG=C.UTF-8", "EXPOSE 3306",
	}
	return es, changes, nil
}
