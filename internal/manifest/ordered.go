package manifest

import (
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func syncDir(fsys vfs.FS, dir string) error {
	d, err := fsys.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// orderedFS makes pebble's markers (the files whose names say which
// MANIFEST is current, and the format version) move in crash-safe order on
// file systems that reorder directory changes: pebble creates a MANIFEST,
// creates the marker naming it, removes the old marker and only then syncs
// the directory, so a crash can keep the new marker and lose the MANIFEST,
// or lose both markers. orderedFS syncs the directory before a marker is
// created (the MANIFEST it names is then in place) and before one is
// removed (its successor is then in place).
//
// This is also what makes a manifest's creation crash-safe: pebble creates
// MANIFEST-000001 and then the marker naming it; a crash before the marker
// is in place leaves a directory without one, which pebble takes for no
// database and creates afresh, and a crash after leaves both.
// (TestCrashCreation crashes creation and the recovering Open at every
// write.)
type orderedFS struct{ vfs.FS }

func isMarker(fsys vfs.FS, name string) bool {
	return strings.HasPrefix(fsys.PathBase(name), "marker.")
}

func (o orderedFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if isMarker(o.FS, name) {
		if err := syncDir(o.FS, o.PathDir(name)); err != nil {
			return nil, err
		}
	}
	return o.FS.Create(name, c)
}

func (o orderedFS) Remove(name string) error {
	if isMarker(o.FS, name) {
		if err := syncDir(o.FS, o.PathDir(name)); err != nil {
			return err
		}
	}
	return o.FS.Remove(name)
}

func (o orderedFS) Unwrap() vfs.FS { return o.FS }
