package images

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/toolbox-collective/toolbox/deploy/docker"
)

const pgEntrypoint = "usr/local/bin/docker-entrypoint.sh"

func postgresRecipe(tag string) recipe {
	packages := []string{"postgresql"}
	return recipe{
		Info: Info{
			Name:  "postgres",
			Tag:   tag,
			From:  debootstrapFrom(packages),
			Takes: "about 1-2 minutes the first time",
			Needs: debootstrapNeeds,
			Lacks: "the official image's PostgreSQL version: this is Debian 12's PostgreSQL 15 under the catalog's tag, so its data folders do not move to the official image; " +
				"its entrypoint is a small stand-in (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB and PGDATA only: no /docker-entrypoint-initdb.d, POSTGRES_INITDB_ARGS or *_FILE secrets)",
			Default: true,
		},
		needs:       needsDebootstrap,
		folder:      "pg-rootfs-" + debianSuite,
		buildLayout: 1,
		inputs:      debianInputs(packages),
		build: debianBuild("postgres", packages, func(rootfs string) error {
			_, err := pgBin(rootfs)
			return err
		}),
		imageLayout: 1,
		imageInputs: func() []input { return []input{{"entrypoint", recipeFile("postgres/docker-entrypoint.sh")}} },
		image:       postgresImage,
	}
}

// pgBin is the folder of PostgreSQL's programs in the root file system, as
// a path in the image.
func pgBin(rootfs string) (string, error) {
	found, _ := filepath.Glob(filepath.Join(rootfs, "usr/lib/postgresql/*/bin/postgres"))
	if len(found) == 0 {
		return "", fmt.Errorf("%s holds no PostgreSQL (no usr/lib/postgresql/*/bin/postgres)", rootfs)
	}
	slices.Sort(found)
	rel, err := filepath.Rel(rootfs, filepath.Dir(found[len(found)-1]))
	if err != nil {
		return "", err
	}
	return "/" + filepath.ToSlash(rel), nil
}

// postgresImage is the root file system as debootstrap made it (see
// rootfsEntries), with an entrypoint that behaves like the official image's.
func postgresImage(dir string) ([]docker.Entry, []string, error) {
	bin, err := pgBin(dir)
	if err != nil {
		return nil, nil, err
	}
	es, err := rootfsEntries(dir, pgEntrypoint)
	if err != nil {
		return nil, nil, err
	}
	es = append(es, docker.Entry{Name: pgEntrypoint, Mode: 0o755, Data: recipeFile("postgres/docker-entrypoint.sh")})
	changes := []string{
		`ENTRYPOINT ["/` + pgEntrypoint + `"]`, `CMD ["postgres"]`,
		"ENV PATH=" + bin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"ENV PGDATA=/var/lib/postgresql/data", "EXPOSE 5432",
	}
	return es, changes, nil
}
