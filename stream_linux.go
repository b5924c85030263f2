package dirstore

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// oDirect is O_DIRECT where the system has it (and Streams use it).
const oDirect = unix.O_DIRECT

func sysMtime(st *syscall.Stat_t) time.Time { return time.Unix(st.Mtim.Unix()) }
