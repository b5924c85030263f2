//go:build !linux || !(amd64 || arm64)

package dirstore

import "golang.org/x/sys/unix"

// rawFstat is fstat(2); only Linux on amd64 and arm64 has the raw form
// (stream_rawstat.go).
func rawFstat(fd int, st *unix.Stat_t) error {
	return ignoringEINTR(func() error { return unix.Fstat(fd, st) })
}
