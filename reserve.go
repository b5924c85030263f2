package dirstore

import (
	"errors"
	"fmt"
	"io/fs"
	"sync"
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
// space, and re-makes the reserve when twice its size is free.
//
// CockroachDB sizes its ballast at 1% of the disk, capped at 1 GiB, because
// it must leave room for a whole node to start. A store needs room for what
// it has acknowledged and not yet written (the NoSync write buffer) and for
// what the manifest writes to commit, checkpoint, open and close (a log
// block, a new log and MANIFEST, a flushed memtable): the default is the
// write buffer plus reserveManifest, capped at a quarter of the file
// system.
type reserve struct {
	fsys vfs.FS
	path string
	size int64 // 0: off
	mode fs.FileMode

	mu       sync.Mutex
	held     bool // the file holds size bytes
	released bool // given back this session: value writes wait for room
}

// reserveName is the reserve's file in the hidden directory.
const reserveName = "reserve"

// reserveManifest is what the default reserve keeps for the manifest.
const reserveManifest = 2 << 20

// reserveSize returns the reserve's size for o: 0 if it is off or the file
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
// full disk: if the file system has less free space than the reserve, it
// is released now, before the manifest's Open writes.
func (r *reserve) open(fsys vfs.FS, meta string, size int64, mode fs.FileMode) {
	r.fsys, r.path, r.size, r.mode = fsys, fsys.PathJoin(meta, reserveName), size, mode
	if _, err := fsys.Stat(r.path); err != nil {
		return
	}
	r.held = true
	if du, err := fsys.GetDiskUsage(meta); size == 0 || err != nil || int64(du.AvailBytes) < size {
		r.release()
	}
}

// on reports whether the store keeps a reserve.
func (r *reserve) on() bool { return r.size > 0 }

// release gives the reserve back to the file system and reports whether
// that freed anything.
func (r *reserve) release() bool {
	if r.path == "" {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.held || mutated(mutReserveKept) {
		return false
	}
	r.held, r.released = false, true
	return r.fsys.Remove(r.path) == nil
}

// make preallocates the reserve if twice its size is free, and reports
// whether the store holds it.
func (r *reserve) make() bool {
	if !r.on() {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held {
		return true
	}
	du, err := r.fsys.GetDiskUsage(r.fsys.PathDir(r.path))
	if err != nil || int64(du.AvailBytes) < 2*r.size {
		return false
	}
	f, err := r.fsys.Create(r.path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return false
	}
	flock.ChmodCreated(r.fsys, r.path, r.mode)
	err = f.Preallocate(0, r.size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = r.fsys.Remove(r.path)
		return false
	}
	r.held, r.released = true, false
	return true
}

// admit lets a write that adds a value go on: unless the reserve was
// released this session and cannot be made again, which is ENOSPC.
func (r *reserve) admit() error {
	if !r.on() {
		return nil
	}
	r.mu.Lock()
	released := r.released
	r.mu.Unlock()
	if !released || r.make() {
		return nil
	}
	return fmt.Errorf("the disk is full and the store's emergency reserve is in use (delete keys or free space): %w", syscall.ENOSPC)
}

// isNoSpace reports whether err is the file system's ENOSPC (or EDQUOT).
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
