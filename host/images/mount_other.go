//go:build !linux

package images

// unmountUnder does nothing where debootstrap does not run.
func unmountUnder(string) error { return nil }
