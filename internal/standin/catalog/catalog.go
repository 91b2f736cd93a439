// Package catalog holds the stand-in app's catalog entry, for tests that add
// it through the same code path as the real apps (TOOLBOX_CATALOG_DIR).
package catalog

import "embed"

// Files holds standin.yaml.
//
//go:embed standin.yaml
var Files embed.FS

// Image is the tag the entry runs; tests build the stand-in under it.
const Image = "toolbox-test/standin:1.0"
