package images

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/deploy/docker"
)

// recipeFiles are the build recipes' files: the Mattermost module pin, the
// PostgreSQL entrypoint, the MariaDB entrypoint and health check, and the
// WordPress entrypoint, apache2-foreground and wp-config template, and the
// MediaWiki entrypoint and apache2-foreground. go:embed cannot take a folder holding a go.mod,
// so the Mattermost files carry a .txt suffix here and are written out under
// their real names in a temporary build folder.
//
//go:embed mattermost/go.mod.txt mattermost/go.sum.txt mattermost/main.go.txt postgres/docker-entrypoint.sh
//go:embed mariadb/docker-entrypoint.sh mariadb/healthcheck.sh
//go:embed wordpress/docker-entrypoint.sh wordpress/apache2-foreground wordpress/wp-config-docker.php
//go:embed mediawiki/docker-php-entrypoint mediawiki/apache2-foreground
var recipeFiles embed.FS

// recipe is one image the builder makes: one entry of the table below.
type recipe struct {
	Info
	// folder names the cache folder, before "-" and the key.
	folder string
	// buildLayout changes whenever build changes what it puts in the
	// folder; inputs lists what else the build depends on (besides the
	// recipe's name and the target platform). Together they are the
	// folder's content key.
	buildLayout int
	inputs      func(ctx context.Context, r *run, t target) ([]input, error)
	// build fills dir (empty, temporary) for t.
	build func(ctx context.Context, r *run, t target, dir string) error
	// imageLayout changes whenever image changes the image it makes from a
	// folder; imageInputs lists what else the image holds besides the
	// folder (files of this host, embedded files).
	imageLayout int
	imageInputs func() []input
	// image lays the folder out as the image: its files and the Dockerfile
	// changes (ENTRYPOINT, ENV, ...) of the import.
	image func(dir string) ([]docker.Entry, []string, error)
	// envPath is the path in the folder that Info.Env names.
	envPath string
	// needs is what the build needs on this machine (Check).
	needs []need
}

// recipes is the table of images, in build order. Its error says that a tag
// could not be read from the catalog; the table is complete anyway.
func recipes() ([]recipe, error) {
	c := catalog.New(nil)
	chat, err := c.Get("mattermost")
	if err != nil {
		err = fmt.Errorf("images: the catalog's mattermost entry: %w", err)
	}
	mmTag, mmErr := imageOf(chat, "mattermost/mattermost-team-edition")
	pgTag, pgErr := imageOf(chat, "postgres")
	site, siteErr := c.Get("wordpress")
	if siteErr != nil {
		siteErr = fmt.Errorf("images: the catalog's wordpress entry: %w", siteErr)
	}
	dbTag, dbErr := imageOf(site, "mariadb")
	wpTag, wpErr := imageOf(site, "wordpress")
	wiki, wikiErr := c.Get("mediawiki")
	if wikiErr != nil {
		wikiErr = fmt.Errorf("images: the catalog's mediawiki entry: %w", wikiErr)
	}
	mwTag, mwErr := imageOf(wiki, "mediawiki")
	return []recipe{
		caddyRecipe(),
		mattermostRecipe(mmTag),
		postgresRecipe(pgTag),
		standinRecipe(),
		resticRecipe(),
		mariadbRecipe(dbTag),
		wordpressRecipe(wpTag),
		mediawikiRecipe(mwTag),
	}, errors.Join(err, mmErr, pgErr, siteErr, dbErr, wpErr, wikiErr, mwErr)
}

// imageOf returns the image of repository repo that app runs, so that the
// tags built here never drift from the catalog's.
func imageOf(app catalog.App, repo string) (string, error) {
	for _, img := range app.Images() {
		if strings.HasPrefix(img, repo+":") {
			return img, nil
		}
	}
	return "", fmt.Errorf("images: the catalog's %s entry runs no %s image (it runs %s)", app.Name, repo, strings.Join(app.Images(), ", "))
}

// recipeFile reads an embedded recipe file.
func recipeFile(name string) []byte {
	b, err := fs.ReadFile(recipeFiles, name)
	if err != nil {
		panic(err) // embedded above: cannot happen
	}
	return b
}

// caBundlePath is where Debian keeps its CA roots, and where Go programs
// (Caddy, Mattermost) look for them.
const caBundlePath = "/etc/ssl/certs/ca-certificates.crt"

// caBundle is this host's CA roots, nil when it has none.
func caBundle() []byte {
	b, err := os.ReadFile(caBundlePath)
	if err != nil {
		return nil
	}
	return b
}

// caEntries puts the CA roots in an image, where Go looks for them; the
// image has an etc folder.
func caEntries(bundle []byte) []docker.Entry {
	if bundle == nil {
		return nil
	}
	return []docker.Entry{
		dirEntry("etc/ssl", 0o755), dirEntry("etc/ssl/certs", 0o755),
		{Name: "etc/ssl/certs/ca-certificates.crt", Mode: 0o644, Data: bundle},
	}
}

func dirEntry(name string, perm fs.FileMode) docker.Entry {
	return docker.Entry{Name: name, Mode: fs.ModeDir | perm}
}

// rootOwned gives the entries to root, whoever built them.
func rootOwned(es []docker.Entry) []docker.Entry {
	for i := range es {
		es[i].UID, es[i].GID = 0, 0
	}
	return es
}
