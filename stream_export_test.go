package dirstore

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dirstore/dirstore/internal/rangecache"
)

// StreamCached returns a copy of what s's cache holds for the read of n
// bytes at off of s's file, without checking freshness or recency. It
// works after Close while the entry lasts.
func StreamCached(s *Stream, off int64, n int) ([]byte, bool) {
	if s.cache == nil {
		return nil, false
	}
	return s.cache.Peek(s.id, off, n)
}

// StreamFilesTracked returns how many of the files at paths the stream
// registry still tracks, after giving the garbage collector the chance to
// let go of what nothing refers to (a few collections, until none is
// tracked).
func StreamFilesTracked(paths ...string) int {
	var keys []rangecache.IdentKey
	for _, p := range paths {
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil {
			keys = append(keys, rangecache.IdentKey{Dev: uint64(st.Dev), Ino: st.Ino})
		}
	}
	n := 0
	for range 5 {
		runtime.GC()
		time.Sleep(time.Millisecond) // for the cleanups to run
		n = 0
		for _, k := range keys {
			if rangecache.Registered(k) {
				n++
			}
		}
		if n == 0 {
			break
		}
	}
	return n
}

// StreamFD returns the descriptor of a Stream opened by OpenStream.
func StreamFD(s *Stream) int { return s.fd }

// StreamQuickStat reports whether s fstats its file without the scheduler
// (rawFstat).
func StreamQuickStat(s *Stream) bool { return s.quickStat }

// StreamReadRacingClose is the part of a checked Stream's read that runs
// without mu, for a read that found the Stream open just before a Close:
// its fstat and what follows from it. It returns the error the read would.
func StreamReadRacingClose(s *Stream) error {
	_, err := s.freshSnapshot()
	return err
}

// Fstat is the fstat a checked Stream makes on a file system where fstat
// cannot block (rawFstat), for the floors of the benchmarks.
func Fstat(fd int, st *unix.Stat_t) error { return rawFstat(fd, st) }
