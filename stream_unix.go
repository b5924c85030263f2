//go:build unix && !linux

package dirstore

import (
	"syscall"
	"time"
)

// oDirect is O_DIRECT where the system has it (and Streams use it).
const oDirect = 0

func sysMtime(st *syscall.Stat_t) time.Time { return time.Unix(statMtime(st)) }
