//go:build unix

package docker

import (
	"io/fs"
	"syscall"
)

// fileOwner is the uid and gid of a file as the file system records them.
func fileOwner(info fs.FileInfo) (uid, gid int) {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return 0, 0
}
