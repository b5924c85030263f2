//go:build linux

package backendtest

import "golang.org/x/sys/unix"

const oDirect = unix.O_DIRECT
