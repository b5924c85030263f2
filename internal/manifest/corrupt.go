package manifest

import (
	"errors"
	"io/fs"
	"strings"
	"syscall"

	"github.com/cockroachdb/pebble/v2"

	"github.com/dirstore/dirstore/internal/corrupt"
)

// ErrCorrupt is returned for a record that does not decode. It matches
// corrupt.Err.
var ErrCorrupt error = &CorruptError{msg: "manifest: corrupt record"}

// CorruptError is a manifest that pebble cannot read: a file of it is
// damaged or missing. It matches corrupt.Err, and its message is one line.
type CorruptError struct {
	msg string
	Err error // pebble's error
}

func (e *CorruptError) Error() string        { return e.msg }
func (e *CorruptError) Unwrap() error        { return e.Err }
func (e *CorruptError) Is(target error) bool { return target == corrupt.Err }

// openErr classifies the failure of pebble's Open of dir: the file
// system's own failures (a permission, an I/O error, a failed write) are
// returned as they are; anything else pebble could not make sense of (a
// damaged or missing file) is a CorruptError.
func openErr(dir string, err error) error {
	if uerr := unsupportedErr(err); uerr != nil {
		return uerr
	}
	var ce *CorruptError
	var pe *fs.PathError
	var errno syscall.Errno
	var fe *FatalError
	switch {
	case errors.As(err, &ce):
		return ce
	case pebble.IsCorruptionError(err):
	case errors.As(err, &fe):
		return err
	case errors.As(err, &pe) && !errors.Is(pe.Err, fs.ErrNotExist):
		return err
	case errors.As(err, &errno) && errno != syscall.ENOENT:
		return err
	}
	return &CorruptError{msg: dir + " is damaged: " + firstLine(err.Error()), Err: err}
}

// readErr marks a read that found a damaged block (a checksum mismatch,
// which pebble marks as a corruption) as a CorruptError.
func (d *DB) readErr(err error) error {
	if err == nil || !pebble.IsCorruptionError(err) {
		return err
	}
	return &CorruptError{msg: d.dir + " is damaged: " + firstLine(err.Error()), Err: err}
}

// firstLine cuts pebble's messages, some of which carry more lines of
// detail, to their first line.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// dataCorruption is pebble's report of a damaged file, found by a read in
// the background (a compaction) or by one of ours: it fails the DB with a
// CorruptError naming the file, rather than pebble's default, a Fatalf
// whose message spans dozens of lines of stack traces.
func (d *DB) dataCorruption(info pebble.DataCorruptionInfo) {
	detail := "corrupt"
	if info.Details != nil {
		detail = firstLine(info.Details.Error())
	}
	d.failed(&CorruptError{msg: info.Path + " is damaged: " + detail, Err: info.Details})
}
