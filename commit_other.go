//go:build !linux

package dirstore

// serialSyncs reports whether the file system holding dir wants a durable
// Set's syncs one after another; only Linux tells (commit_linux.go).
func serialSyncs(dir string) bool { return false }
