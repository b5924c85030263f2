//go:build !linux || nouring

package backends

import (
	"errors"
	"fmt"
	"runtime"
)

// NewUring returns an engine on Linux io_uring. In this build it always fails
// with an error wrapping errors.ErrUnsupported: io_uring exists only on Linux,
// and the nouring build tag leaves it out.
func NewUring(opts *Options) (Backend, error) {
	if _, err := opts.withDefaults(); err != nil {
		return nil, err
	}
	if uringSetupHook != nil {
		if err := uringSetupHook(); err != nil {
			return nil, err
		}
	}
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("io_uring is Linux-only (GOOS=%s): %w", runtime.GOOS, errors.ErrUnsupported)
	}
	return nil, fmt.Errorf("io_uring left out by the nouring build tag: %w", errors.ErrUnsupported)
}
