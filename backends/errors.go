package backends

import (
	"errors"
	"fmt"
	"io/fs"
)

var (
	// ErrClosed is returned by a Backend after Close. It matches fs.ErrClosed.
	ErrClosed = fmt.Errorf("backends: engine is closed: %w", fs.ErrClosed)

	// errNegativeOffset is wrapped in *fs.PathError by File, like os does.
	errNegativeOffset = errors.New("negative offset")

	// errAppendWriteAt mirrors os: WriteAt cannot honour an offset on a
	// descriptor opened with O_APPEND, since Linux appends anyway.
	errAppendWriteAt = errors.New("backends: invalid use of WriteAt on file opened with O_APPEND")
)
