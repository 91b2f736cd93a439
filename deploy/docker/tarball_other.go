//go:build !unix

package docker

import "io/fs"

// fileOwner is root: this system has no Unix owners to keep.
func fileOwner(fs.FileInfo) (uid, gid int) { return 0, 0 }
