//go:build unix && !linux && !darwin && !ios && !netbsd && !freebsd

package dirstore

import "syscall"

func statMtime(st *syscall.Stat_t) (sec, nsec int64) { return st.Mtim.Unix() }
