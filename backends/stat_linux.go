//go:build linux

package backends

import (
	"io/fs"
	"path/filepath"
	"syscall"
	"time"
)

// fileStat is File.Stat's fs.FileInfo on Linux, filled as os fills its own.
type fileStat struct {
	name    string
	size    int64
	mode    fs.FileMode
	modTime time.Time
	sys     syscall.Stat_t
}

func (s *fileStat) Name() string       { return s.name }
func (s *fileStat) Size() int64        { return s.size }
func (s *fileStat) Mode() fs.FileMode  { return s.mode }
func (s *fileStat) ModTime() time.Time { return s.modTime }
func (s *fileStat) IsDir() bool        { return s.mode.IsDir() }
func (s *fileStat) Sys() any           { return &s.sys }

func (s *fileStat) fill(name string, mtime time.Time) {
	s.name = filepath.Base(name)
	s.size = s.sys.Size
	s.modTime = mtime
	s.mode = fs.FileMode(s.sys.Mode & 0o777)
	switch s.sys.Mode & syscall.S_IFMT {
	case syscall.S_IFBLK:
		s.mode |= fs.ModeDevice
	case syscall.S_IFCHR:
		s.mode |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFDIR:
		s.mode |= fs.ModeDir
	case syscall.S_IFIFO:
		s.mode |= fs.ModeNamedPipe
	case syscall.S_IFLNK:
		s.mode |= fs.ModeSymlink
	case syscall.S_IFSOCK:
		s.mode |= fs.ModeSocket
	}
	if s.sys.Mode&syscall.S_ISGID != 0 {
		s.mode |= fs.ModeSetgid
	}
	if s.sys.Mode&syscall.S_ISUID != 0 {
		s.mode |= fs.ModeSetuid
	}
	if s.sys.Mode&syscall.S_ISVTX != 0 {
		s.mode |= fs.ModeSticky
	}
}
