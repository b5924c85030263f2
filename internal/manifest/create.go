package manifest

import (
	"errors"
	"io/fs"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// A new manifest is made whole or not at all: pebble creates a database
// file by file (its first MANIFEST, the marker naming it, an OPTIONS file)
// and a crash part way leaves a directory it cannot open ("could not open
// manifest file"). So create builds it in a directory beside its final
// place, closes it (every file and the directory synced) and renames it
// into place, and syncs the parent: a crash leaves either no manifest or a
// complete one. An earlier creation that crashed part way left at most a
// directory with no marker, holding nothing committed: it is removed.
func create(dir string, o Options) error {
	fsys := o.FS
	exists, err := Exists(fsys, dir)
	switch {
	case err == nil && exists:
		return nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return err
	}
	tmp := dir + ".new"
	if err := fsys.RemoveAll(tmp); err != nil {
		return err
	}
	o.creating = true
	d, err := Open(tmp, o)
	if err != nil {
		return err
	}
	if err := d.Close(); err != nil {
		return err
	}
	// Not a manifest (Exists said so): what an interrupted creation left,
	// if anything.
	if err := fsys.RemoveAll(dir); err != nil {
		return err
	}
	if err := fsys.Rename(tmp, dir); err != nil {
		return err
	}
	return syncDir(fsys, fsys.PathDir(dir))
}

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
