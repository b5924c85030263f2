package manifest

import (
	"io"
	"io/fs"
	"os"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dirstore/dirstore/internal/flock"
)

// storeFS is the file system under a manifest's fence: the store's, with
// the store's ways. Pebble's files and directories get the store's
// permissions (pebble asks for 0666 and 0755, less the umask), and its lock
// file is taken as the store takes its own (package flock), so that a
// read-only manifest opens where the lock file cannot be written.
type storeFS struct {
	vfs.FS
	fileMode, dirMode fs.FileMode
	readOnly          bool
}

func (f *storeFS) Unwrap() vfs.FS { return f.FS }

func (f *storeFS) Lock(name string) (io.Closer, error) {
	return flock.Lock(f.FS, name, f.readOnly, f.fileMode)
}

func (f *storeFS) MkdirAll(dir string, _ os.FileMode) error {
	return f.FS.MkdirAll(dir, f.dirMode)
}

func (f *storeFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	file, err := f.FS.Create(name, c)
	if err == nil {
		flock.ChmodCreated(f.FS, name, f.fileMode)
	}
	return file, err
}
