package dirstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dirstore/dirstore/internal/flock"
)

// A full disk is not a crash. A store keeps an emergency reserve, as
// CockroachDB keeps its EMERGENCY_BALLAST: a file in the hidden directory
// whose space is preallocated (fallocate) while there is room, and given
// back to the file system when a write of the store's own bookkeeping
// fails for want of space. Then the manifest can still commit, checkpoint
// and record Deletes, a NoSync store can write out its write buffer, and
// Close can record a clean shutdown, so that nothing acknowledged is lost;
// a store opened on a full disk releases it first, so that it opens
// writable and Deletes can free space.
//
// Once the reserve is released, writes that add values are refused with
// ENOSPC (they would eat the space the bookkeeping needs) until there is
// room to make the reserve again: each such write first checks the free
// space, and re-makes the reserve when its size plus a quarter of its base
// is free.
//
// CockroachDB sizes its ballast at 1% of the disk, capped at 1 GiB, because
// it must leave room for a whole node to start. A store needs room for what
// it has acknowledged and not yet written (the NoSync write buffer), for
// what the manifest writes to commit, checkpoint, open and close (a log
// block, a new log and MANIFEST, a flushed memtable), and for what it
// writes to record Deletes and compact: tombstones as long as the keys
// they delete, and a compaction's output, written before its inputs are
// removed. The first two are fixed (the base: the write buffer plus
// reserveManifest, capped at a quarter of the file system); the last grows
// with the manifest, which holds every key: with keys as long as a block,
// a Delete's tombstone takes as much room as the file it frees. So the
// reserve is the base plus the size of the manifest's live data, up to
// reserveShareMax (what pebble's larger compactions rewrite). It grows as
// the manifest does: every reserveStep bytes of keys written, a write that
// adds a value looks at the manifest's size and extends the reserve, if
// twice the growth is free; if it is not, the disk is full, and the write
// is refused with ENOSPC, the store intact.
type reserve struct {
	fsys vfs.FS
	path string
	base int64 // 0: off; the reserve without the manifest's share
	mode fs.FileMode
	// usage returns the manifest's live data in bytes; nil until the
	// manifest is open.
	usage atomic.Pointer[func() int64]

	written atomic.Int64 // key bytes admitted since the size was last looked at
	wanting atomic.Bool  // released, or short of its size: writes wait for room

	mu       sync.Mutex
	size     int64 // the file's size while held
	held     bool  // the file holds size bytes
	released bool  // given back this session
	short    bool  // held, but smaller than the manifest needs and no room to grow
}

// reserveName is the reserve's file in the hidden directory.
const reserveName = "reserve"

// reserveManifest is what the default reserve's base keeps for the
// manifest.
const reserveManifest = 2 << 20

// reserveShareMax caps the reserve's share that grows with the manifest.
const reserveShareMax = 64 << 20

// reserveStep is how many bytes of keys written make a write look at the
// manifest's size again.
const reserveStep = 32 << 10

// reserveSize returns the reserve's base for o: 0 if it is off or the file
// system cannot tell its size (then it cannot say when it is full either).
func reserveSize(o *Options, fsys vfs.FS, dir string) int64 {
	if o.Reserve < 0 || o.ReadOnly {
		return 0
	}
	if o.Reserve > 0 {
		return o.Reserve
	}
	du, err := fsys.GetDiskUsage(dir)
	if err != nil {
		return 0
	}
	size := int64(reserveManifest)
	if o.NoSync && o.WriteBuffer > 0 {
		size += o.WriteBuffer
	}
	return min(size, int64(du.TotalBytes/4))
}

// manifestSpace returns the manifest's memtable size and whether it keeps
// logs for reuse, on the file system of dir. The manifest's peak use of
// space is about two memtables' logs (a full one's log stays until its flush
// is done, beside the next log) and a flushed table, plus the logs pebble
// keeps for reuse, up to three more: with pebble's 4 MiB memtables, on an
// 8 MiB file system with long keys, that was more than the reserve (a
// quarter of it) could give back, and Close failed. So the memtable is at
// most a sixteenth of the file system (at least 256 KiB), and logs are kept
// for reuse only where three of them are at most 1/64 of it (from 768 MiB
// up, with 4 MiB memtables). Where the size of the file system is unknown,
// pebble's defaults (0, true).
func manifestSpace(fsys vfs.FS, dir string) (memTable int64, recycle bool) {
	du, err := fsys.GetDiskUsage(dir)
	if err != nil || du.TotalBytes == 0 {
		return 0, true
	}
	total := int64(du.TotalBytes)
	memTable = min(4<<20, max(256<<10, total/16))
	return memTable, 3*memTable <= total/64
}

// open finds the reserve in meta and makes sure the store can open on a
// full disk: if the file system has less free space than the reserve's
// base, it is released now, before the manifest's Open writes.
func (r *reserve) open(fsys vfs.FS, meta string, base int64, mode fs.FileMode) {
	r.fsys, r.path, r.base, r.mode = fsys, fsys.PathJoin(meta, reserveName), base, mode
	info, err := fsys.Stat(r.path)
	if err != nil {
		return
	}
	r.held, r.size = true, allocated(info, base)
	if du, err := fsys.GetDiskUsage(meta); base == 0 || err != nil || int64(du.AvailBytes) < base {
		r.release()
	}
}

// allocated returns the space a file holds on disk (the reserve is
// preallocated without changing its size), or def where the file system
// does not say.
func allocated(info os.FileInfo, def int64) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return def
}

// watch makes the reserve grow with the manifest, whose use of space
// usage returns.
func (r *reserve) watch(usage func() int64) { r.usage.Store(&usage) }

// on reports whether the store keeps a reserve.
func (r *reserve) on() bool { return r.base > 0 }

// release gives the reserve back to the file system, and reports whether
// a write that failed for want of space should be tried again: the reserve
// is given back now, or was this session. (Writes meet a full disk at
// once, in the manifest's log, its flush and a value's file: only the
// first to ask releases the reserve, and the others must retry too.)
func (r *reserve) release() bool {
	if r.path == "" || mutated(mutReserveKept) {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.held {
		return r.released && !mutated(mutReleaseOnce)
	}
	r.held, r.released, r.short = false, true, false
	r.wanting.Store(true)
	return r.fsys.Remove(r.path) == nil
}

// make preallocates the reserve, if its size plus a quarter of its base is
// free, or grows it to what the manifest now needs, if twice the growth is
// free, and reports whether the store holds all of it.
func (r *reserve) make() bool {
	if !r.on() {
		return true
	}
	want := r.want()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held && r.size >= want {
		return true
	}
	// Room to make it and keep a quarter of its base free for values (so
	// that the next write does not give it back at once), or to grow it
	// and keep as much free again.
	need := want + r.base/4
	if r.held {
		need = 2 * (want - r.size)
	}
	du, err := r.fsys.GetDiskUsage(r.fsys.PathDir(r.path))
	if err != nil || int64(du.AvailBytes) < need {
		r.short = r.held
		r.wanting.Store(r.released || r.short)
		return false
	}
	var f vfs.File
	if r.held {
		f, err = r.fsys.OpenReadWrite(r.path, vfs.WriteCategoryUnspecified)
	} else {
		f, err = r.fsys.Create(r.path, vfs.WriteCategoryUnspecified)
		if err == nil {
			flock.ChmodCreated(r.fsys, r.path, r.mode)
		}
	}
	if err != nil {
		return false
	}
	err = f.Preallocate(0, want)
	if err == nil && !r.held {
		// A growth needs no sync: if a crash loses it, Open makes it again.
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err == nil:
		r.held, r.released, r.short, r.size = true, false, false, want
	case r.held:
		// What the file held before is still held.
		r.short = true
	default:
		_ = r.fsys.Remove(r.path)
	}
	r.wanting.Store(r.released || r.short)
	return err == nil
}

// want returns the size the reserve should have: its base and the
// manifest's share. Callers look before taking r.mu: pebble holds its own
// lock while it writes, and a write that meets ENOSPC takes r.mu to
// release the reserve.
func (r *reserve) want() int64 {
	want := r.base
	if u := r.usage.Load(); u != nil && !mutated(mutReserveFixed) {
		want += min((*u)(), reserveShareMax)
	}
	return want
}

// fit makes the reserve, at Open: one that the manifest has shrunk to less
// than half of is made again at its new size.
func (r *reserve) fit() {
	if !r.on() {
		return
	}
	want := r.want()
	r.mu.Lock()
	if r.held && r.size > 2*want {
		if r.fsys.Remove(r.path) == nil {
			r.held = false
		}
	}
	r.mu.Unlock()
	r.make()
}

// admit lets a write that adds a value under a key of keyLen bytes go on:
// unless the reserve is released and cannot be made again, or is short of
// what the manifest needs and cannot grow, which is ENOSPC.
func (r *reserve) admit(keyLen int) error {
	if !r.on() {
		return nil
	}
	grow := r.written.Add(int64(keyLen)) >= reserveStep
	if grow {
		r.written.Store(0)
	}
	if !grow && !r.wanting.Load() {
		return nil // held at its size: nothing to look at
	}
	if r.make() || !r.wanting.Load() {
		return nil // made or grown, or not made for a reason other than room
	}
	return fmt.Errorf("the disk is full and the store's emergency reserve is in use or cannot grow (delete keys or free space): %w", syscall.ENOSPC)
}

// isNoSpace reports whether err is the file system's ENOSPC (or EDQUOT).
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
