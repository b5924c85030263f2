//go:build !linux

package flock

import (
	"errors"
	"io"
)

// lockShared is not available: without open file description locks, a
// shared lock would merge with this process's own locks.
func lockShared(string) (io.Closer, error) { return nil, errors.ErrUnsupported }
