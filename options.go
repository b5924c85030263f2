package dirstore

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Options configure Open. The zero value (or nil) gives the defaults.
type Options struct {
	// Mmap makes View hand out a read-only memory map of the value's file
	// instead of reading it into a buffer (zict's memmap=True); a value
	// still in a NoSync store's write buffer is handed out from memory.
	// Default false.
	Mmap bool

	// NoSync turns off fsync, for caches: a crash (of the process or the
	// machine) may lose recent writes, but the store then holds a prefix of
	// the acknowledged operations, never a torn value and never a key whose
	// file is missing. Sync and Close make everything durable. Default false:
	// every Set and Delete that returned nil survives a crash.
	NoSync bool

	// ReadOnly opens the store for reading only; writes return ErrReadOnly.
	// The directory must exist. Default false.
	ReadOnly bool

	// FS is the file system for the value files and the manifest alike.
	// Default vfs.Default (the operating system's).
	FS vfs.FS

	// FileMode is the permission of every file the store creates: value
	// files, and the manifest's files and lock files (less the umask, as
	// with os.OpenFile). Default 0600.
	FileMode fs.FileMode
	// DirMode is the permission of the directories Open creates, the
	// manifest's included (less the umask). Default 0700.
	DirMode fs.FileMode

	// EntryCache is how many recently used manifest entries are kept in
	// memory, so that a Get of a hot key need not ask the manifest. A key
	// is cached when it is written, or read a second time while its first
	// read is remembered (among about as many other keys read as the cache
	// holds), so that reads spread over many more keys do not churn it.
	// Keys longer than 256 bytes are not cached. Default 8192; -1 disables
	// it.
	EntryCache int

	// ManifestCache is how many bytes of the manifest's blocks (pebble's
	// block cache) are kept in memory, besides its memtables (two of up to
	// 4 MiB, which share the cache while they are smaller): a Get of a key
	// that is not in the entry cache finds its entry there, or else reads
	// and decompresses a block of the manifest. The memory is taken only
	// as blocks are read, outside the Go heap where cgo is enabled, so a
	// store holds at most about its manifest's size (some 35 bytes a key:
	// 35 MB at a million keys, 3.5 MB at 100,000). The default, 64 MiB,
	// holds the whole manifest up to about 1.8 million keys, so that Gets
	// spread over far more keys than the entry cache holds do not read the
	// manifest's files (the README gives the figures at a million keys);
	// lower it to bound the memory of a large store read at random.
	ManifestCache int64

	// CheckpointInterval bounds how long, with NoSync, written values wait
	// before they are written out of the write buffer, made durable in the
	// background, and the files they replaced are removed. Default 1s.
	CheckpointInterval time.Duration

	// WriteBuffer, with NoSync, is how many bytes of values may wait in
	// memory, acknowledged, before they are written to their files: Sets
	// of values up to a sixteenth of it, and Deletes, return once the
	// operation is in memory (where reads see it), and a background
	// goroutine applies them in batches, writing a key overwritten
	// meanwhile only once. When it is full, writers apply it themselves.
	// A crash loses what waits in it, like any NoSync write not yet made
	// durable: the store still holds a prefix of the acknowledged
	// operations. Default 4 MiB; -1 writes every value before its Set
	// returns. It is ignored without NoSync.
	WriteBuffer int64

	// Reserve is the base size in bytes of the emergency reserve: space
	// the store preallocates in its hidden directory while there is room,
	// and gives back when the disk fills, so that it can still record
	// Deletes, write out its write buffer, checkpoint, close cleanly and
	// open again on a full disk (see "Failures" in the package
	// documentation). The reserve is its base plus the size of the
	// manifest's live data (up to 64 MiB), and grows with the manifest: a
	// write that adds a value returns ENOSPC when it cannot grow, and,
	// while it is given back, until its size plus a quarter of its base is
	// free again. Default base: the write buffer (with NoSync) plus 2 MiB,
	// at most a quarter of the file system; none on a file system that
	// cannot report its free space. -1 turns it off.
	Reserve int64

	// MaxBytes, if positive, makes the store a bounded cache: a write that
	// would take Stats.Bytes (the sum of the values' sizes) over it first
	// evicts the least recently used keys, never the key being written,
	// so that Bytes <= MaxBytes whenever a write returns, however many run
	// at once. A use is a Get, View, Open, Set, SetBuffers or SetFrom (not
	// Has or Keys); the order is kept in the manifest, so it costs no
	// memory per key and survives Close, a crash and a reopen, and it is
	// exact between uses more than a second apart (reads are recorded in
	// the background, within a second). A value larger than MaxBytes is
	// refused with ErrTooLarge. An eviction is a Delete with the store's
	// durability. Open evicts down to MaxBytes if the store holds more.
	// An unbounded store (neither MaxBytes nor MaxIdle) keeps no order,
	// and its writes are the cheaper for it: the first Open with a budget
	// after one rebuilds the order from the times the values were written,
	// in one pass over the keys. Default 0: unbounded.
	MaxBytes int64

	// MaxIdle, if positive, evicts keys not used for longer, in the
	// background (checked every MaxIdle/4, at most every second) and at
	// Open. Default 0: no limit.
	MaxIdle time.Duration

	// OnEvict, if set, is called after a key was evicted (by MaxBytes,
	// MaxIdle or Trim) with its key and size, with no lock of the Store
	// held, in the goroutine that evicted it: the writer whose Set made
	// room, the caller of Trim, or a background goroutine. It may use the
	// Store, except Close. Default nil.
	OnEvict func(key string, size int64)

	// Logger receives what the store does on its own: what Open's recovery
	// did (orphans removed, operations rolled back, entries whose files are
	// missing), failures of background work, and evictions (summarized).
	// Records carry the attributes dir, and key, file and size where they
	// apply. Default nil: nothing is logged.
	Logger *slog.Logger

	// serialSyncs makes a durable Set alone in flight sync one thing at a
	// time, as on btrfs, wherever the store is (tests set it, to crash
	// that order too).
	serialSyncs bool
}

// withDefaults returns a copy of o (nil allowed) with every default filled in,
// or every problem found.
func (o *Options) withDefaults() (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	if c.FS == nil {
		c.FS = vfs.Default
	}
	if c.FileMode == 0 {
		c.FileMode = 0o600
	}
	if c.DirMode == 0 {
		c.DirMode = 0o700
	}
	if c.EntryCache == 0 {
		c.EntryCache = 8192
	}
	if c.ManifestCache == 0 {
		c.ManifestCache = 64 << 20
	}
	if c.WriteBuffer == 0 {
		c.WriteBuffer = 4 << 20
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if c.FileMode&^fs.ModePerm != 0 {
		errs = append(errs, fmt.Errorf("FileMode %v has bits other than permissions", c.FileMode))
	}
	if c.DirMode&^fs.ModePerm != 0 {
		errs = append(errs, fmt.Errorf("DirMode %v has bits other than permissions", c.DirMode))
	}
	if c.EntryCache < -1 {
		errs = append(errs, fmt.Errorf("EntryCache %d is negative", c.EntryCache))
	}
	if c.ManifestCache < 0 {
		errs = append(errs, fmt.Errorf("ManifestCache %d is negative", c.ManifestCache))
	}
	if c.WriteBuffer < -1 {
		errs = append(errs, fmt.Errorf("WriteBuffer %d is negative", c.WriteBuffer))
	}
	if c.Reserve < -1 {
		errs = append(errs, fmt.Errorf("Reserve %d is negative", c.Reserve))
	}
	if c.CheckpointInterval < 0 {
		errs = append(errs, fmt.Errorf("CheckpointInterval %v is negative", c.CheckpointInterval))
	}
	if c.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxBytes %d is negative", c.MaxBytes))
	}
	if c.MaxIdle < 0 {
		errs = append(errs, fmt.Errorf("MaxIdle %v is negative", c.MaxIdle))
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("dirstore: invalid options: %w: %w", fs.ErrInvalid, err)
	}
	return c, nil
}
