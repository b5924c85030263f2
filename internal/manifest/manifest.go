// Package manifest records which key lives in which file: a store's manifest
// is a pebble database in a hidden subdirectory of the store. It is the only
// package that opens a pebble database. Pebble's vfs package is imported
// more widely: the Store's Options.FS is a vfs.FS, and internal/datadir
// reads and writes value files through it.
//
// The key space has six prefixes:
//
//   - 'k' + key: the key's Entry;
//   - 'm' + name: the store's own metadata;
//   - 'u' + a big-endian uint64 sequence number: an undo record (see Undo);
//   - 'r' + key: when the key was last used, 8 bytes, a big-endian uint64
//     of nanoseconds since the Unix epoch (its recency record);
//   - 'a' + the same 8 bytes + key, with an empty value: the access-order
//     index, so that iterating the prefix yields the least recently used
//     keys first (see Accesses);
//   - 'p' + key, with an empty value: the key is pinned (see Batch.Pin).
//
// A key with an entry may have a recency record and the access record of
// the same time (see Batch.SetRecency); the store says when every key has
// them. An access record whose key has no entry, or whose time is not the
// key's recency, is stale and may be deleted (DeleteAccess).
package manifest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

const (
	prefixKey     = 'k'
	prefixMeta    = 'm'
	prefixUndo    = 'u'
	prefixRecency = 'r'
	prefixAccess  = 'a'
	prefixPin     = 'p'
)

// Entry describes the file that holds a key's value.
type Entry struct {
	Version uint64 // the N in the file name quote(key)#N
	Size    int64  // length of the value in bytes
	CRC     uint32 // CRC-32C (Castagnoli) of the value
	Legacy  bool   // the file is named quote(key) with no suffix (an adopted zict 2 file)
	// ModTime is when the value was written, in Unix nanoseconds; 0 when
	// unknown (entries written before it was recorded, adopted files).
	ModTime int64
}

// Flags, the first byte of an entry's encoding.
const (
	flagLegacy  = 1 << 0
	flagModTime = 1 << 1 // a zigzag varint of ModTime follows the CRC
	knownFlags  = flagLegacy | flagModTime
)

// AppendEncode appends the encoding of e to dst: a flags byte, the
// version and the size as uvarints, the CRC as 4 little-endian bytes, and
// then, if flagModTime is set, ModTime as a varint.
func (e Entry) AppendEncode(dst []byte) []byte {
	var flags byte
	if e.Legacy {
		flags |= flagLegacy
	}
	if e.ModTime != 0 {
		flags |= flagModTime
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, e.Version)
	dst = binary.AppendUvarint(dst, uint64(e.Size))
	dst = binary.LittleEndian.AppendUint32(dst, e.CRC)
	if e.ModTime != 0 {
		dst = binary.AppendVarint(dst, e.ModTime)
	}
	return dst
}

// DecodeEntry decodes what AppendEncode wrote; it returns the unread rest.
// Entries written before ModTime was recorded decode with ModTime 0.
func DecodeEntry(b []byte) (Entry, []byte, error) {
	var e Entry
	if len(b) < 1 || b[0]&^knownFlags != 0 {
		return e, nil, ErrCorrupt
	}
	flags := b[0]
	e.Legacy = flags&flagLegacy != 0
	b = b[1:]
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return e, nil, ErrCorrupt
	}
	e.Version, b = v, b[n:]
	v, n = binary.Uvarint(b)
	if n <= 0 || v > 1<<62 {
		return e, nil, ErrCorrupt
	}
	e.Size, b = int64(v), b[n:]
	if len(b) < 4 {
		return e, nil, ErrCorrupt
	}
	e.CRC, b = binary.LittleEndian.Uint32(b), b[4:]
	if flags&flagModTime != 0 {
		t, n := binary.Varint(b)
		if n <= 0 || t == 0 {
			return e, nil, ErrCorrupt
		}
		e.ModTime, b = t, b[n:]
	}
	return e, b, nil
}

// Undo records one operation whose durability the store did not wait for
// before committing it, with the key, the entry it had before (if any) and
// the entry it was given (if any; none for a delete).
//
// A store that does not sync every write commits one for each operation, so
// that recovery can roll back to a prefix of the acknowledged operations.
// More marks a record whose successor was committed in the same batch: the
// records of one batch stand for operations that recovery keeps or rolls
// back together.
//
// A store that syncs every write commits one with Alone set for each Set
// whose manifest commit runs concurrently with the fsync of its file: the
// Set is acknowledged only once both are done, so recovery rolls such an
// operation back on its own, if its file did not survive, without touching
// the operations after it.
type Undo struct {
	Seq      uint64
	Key      string
	Old, New *Entry
	More     bool
	Alone    bool
}

// Flags of an undo record, in a last byte absent when none is set.
const (
	undoMore  = 1 << 0
	undoAlone = 1 << 1
)

func (u *Undo) encode() []byte {
	b := binary.AppendUvarint(nil, uint64(len(u.Key)))
	b = append(b, u.Key...)
	for _, e := range []*Entry{u.Old, u.New} {
		if e == nil {
			b = append(b, 0)
			continue
		}
		b = e.AppendEncode(append(b, 1))
	}
	var flags byte
	if u.More {
		flags |= undoMore
	}
	if u.Alone {
		flags |= undoAlone
	}
	if flags != 0 {
		b = append(b, flags)
	}
	return b
}

func decodeUndo(seq uint64, b []byte) (Undo, error) {
	u := Undo{Seq: seq}
	n, w := binary.Uvarint(b)
	if w <= 0 || uint64(len(b)-w) < n {
		return u, ErrCorrupt
	}
	u.Key, b = string(b[w:w+int(n)]), b[w+int(n):]
	for _, p := range []**Entry{&u.Old, &u.New} {
		if len(b) == 0 {
			return u, ErrCorrupt
		}
		has := b[0]
		b = b[1:]
		if has == 0 {
			continue
		}
		e, rest, err := DecodeEntry(b)
		if err != nil {
			return u, err
		}
		*p, b = &e, rest
	}
	switch {
	case len(b) == 1 && b[0] != 0 && b[0]&^(undoMore|undoAlone) == 0:
		u.More, u.Alone = b[0]&undoMore != 0, b[0]&undoAlone != 0
	case len(b) != 0:
		return u, ErrCorrupt
	}
	return u, nil
}

// Options configure Open.
type Options struct {
	FS       vfs.FS // nil = vfs.Default
	ReadOnly bool
	// CacheSize is the size in bytes of pebble's block cache, beyond what
	// it charges for memtables (two of MemTableSize); 0 = 8 MiB.
	CacheSize int64
	// MemTableSize is the size of pebble's memtable in bytes, which bounds
	// its log too; 0 = 4 MiB.
	MemTableSize int64
	// NoLogRecycling removes obsolete logs at once. By default pebble keeps
	// up to three for reuse, each as large as a memtable: an overwritten
	// log spares each sync of the next one a size update of its metadata,
	// at the cost of that space (see removeCleaner).
	NoLogRecycling bool
	// FileMode and DirMode are the permissions of the files and
	// directories pebble creates; 0 = 0600 and 0700.
	FileMode, DirMode fs.FileMode

	// OnFull, if set, is called when a write of the manifest fails for want
	// of space; if it reports that it freed some, the write is tried once
	// more before the manifest fails.
	OnFull func() bool
}

// DB is an open manifest. Its methods are safe for concurrent use.
type DB struct {
	db  *pebble.DB
	dir string
	fs  *fenceFS
	// fatal is the first failure pebble reported through its logger's
	// Fatalf (a WAL or MANIFEST write or sync that failed). Pebble's state
	// is unknown after one, so every later change is refused with it.
	fatal atomic.Pointer[FatalError]
	// logged counts the bytes committed since the last Flush, a bound on
	// what the next Open replays from the log.
	logged atomic.Int64
}

// Open opens (or, unless read-only, creates) the manifest in dir.
func Open(dir string, o Options) (*DB, error) {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.CacheSize == 0 {
		o.CacheSize = 8 << 20
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = 4 << 20
	}
	// Pebble charges its memtables to the block cache (they shrink it
	// without using its memory): the active one, one waiting for its flush
	// and one kept for reuse. A cache of CacheSize alone, no larger than
	// two 4 MiB memtables, held no block at all, so that every lookup read
	// and decompressed its index, filter and data blocks again.
	cache := pebble.NewCache(o.CacheSize + 2*o.MemTableSize)
	defer cache.Unref()
	d := &DB{dir: dir}
	if o.FileMode == 0 {
		o.FileMode = 0o600
	}
	if o.DirMode == 0 {
		o.DirMode = 0o700
	}
	inner := &storeFS{FS: o.FS, fileMode: o.FileMode, dirMode: o.DirMode, readOnly: o.ReadOnly}
	d.fs = &fenceFS{FS: orderedFS{inner}, onFail: d.failed, onFull: o.OnFull}
	popts := &pebble.Options{
		FS:                 d.fs,
		Cache:              cache,
		ReadOnly:           o.ReadOnly,
		ErrorIfNotExists:   o.ReadOnly,
		FormatMajorVersion: FormatMajorVersion,
		Logger:             (*logger)(d),
		MemTableSize:       uint64(o.MemTableSize),
		// Table statistics only tune compactions of tombstone-heavy tables
		// in large databases; their background loading outlives a failed
		// pebble.Open and then crashes on its closed table cache.
		DisableTableStats: true,
		// A flush or compaction that failed (it could not read, the fence
		// hides failed writes) fails the manifest: pebble would retry it
		// at once, forever.
		EventListener: &pebble.EventListener{BackgroundError: d.failed, DataCorruption: d.dataCorruption},
	}
	// A bloom filter in every table (10 bits a key, about 1% false
	// positives) lets a lookup skip the tables that do not hold its key
	// without reading their index and data blocks. Most lookups are of
	// absent keys: every Set of a new key looks up the entry it replaces,
	// and the tables flushed from the memtable each span the whole key
	// space (entries, recency and undo records alike), so without filters
	// such a lookup reads a block of every table in L0 and of every level.
	// Filters are a property of each table, not of the format: tables
	// written without them (by older versions) are read as before.
	for i := range popts.Levels {
		popts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	// Every table flushed from the memtable spans the whole key space
	// (entries, recency, access and undo records alike), so a compaction
	// out of L0 rewrites all of the base level it overlaps. Below pebble's
	// 64 MB LBaseMaxBytes, as a manifest of a million keys (about 35 MB)
	// is, the base level is the last one, and each compaction rewrote the
	// whole manifest: 995 MB written for 116 MB committed at 1,000,000
	// keys, and L0 backlogged (36 tables), which every lookup then
	// searches. A small base level keeps compactions out of L0 small and
	// leaves the rest to ordinary leveled compactions. Like the filters,
	// a tuning of compactions, not of the format.
	popts.LBaseMaxBytes = 2 << 20
	if o.NoLogRecycling && !mutated(mutLogsRecycled) {
		popts.Cleaner = removeCleaner{}
	}
	db, err := pebble.Open(dir, popts)
	if err == nil {
		err = d.Err()
	}
	if err != nil {
		if db != nil {
			_ = db.Close()
		}
		d.fs.removeEmptyTables()
		return nil, openErr(dir, err)
	}
	d.db = db
	return d, nil
}

// Exists reports whether dir holds a manifest.
func Exists(fs vfs.FS, dir string) (bool, error) {
	if fs == nil {
		fs = vfs.Default
	}
	desc, err := pebble.Peek(dir, fs)
	if err != nil {
		if uerr := unsupportedErr(err); uerr != nil {
			return false, uerr
		}
		return false, err
	}
	return desc.Exists, nil
}

func entryKey(key string) []byte {
	b := make([]byte, 0, 1+len(key))
	return append(append(b, prefixKey), key...)
}

func metaKey(name string) []byte { return append([]byte{prefixMeta}, name...) }

func undoKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixUndo}, seq)
}

// Get returns key's entry; ok is false if the key has none.
func (d *DB) Get(key string) (e Entry, ok bool, err error) {
	v, closer, err := d.db.Get(entryKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return e, false, nil
	}
	if err != nil {
		return e, false, d.readErr(err)
	}
	defer closer.Close()
	e, _, err = DecodeEntry(v)
	if err != nil {
		return e, false, fmt.Errorf("manifest: entry of key %q: %w", key, err)
	}
	return e, true, nil
}

// Meta returns a copy of the metadata value name; ok is false if unset.
func (d *DB) Meta(name string) (v []byte, ok bool, err error) {
	raw, closer, err := d.db.Get(metaKey(name))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, d.readErr(err)
	}
	defer closer.Close()
	return bytes.Clone(raw), true, nil
}

// Batch gathers changes that Commit applies atomically.
type Batch struct {
	b  *pebble.Batch
	db *DB
}

// NewBatch returns an empty batch.
func (d *DB) NewBatch() *Batch { return &Batch{b: d.db.NewBatch(), db: d} }

// Put sets key's entry.
func (b *Batch) Put(key string, e Entry) {
	var buf [48]byte
	_ = b.b.Set(entryKey(key), e.AppendEncode(buf[:0]), nil)
}

// Delete removes key's entry.
func (b *Batch) Delete(key string) { _ = b.b.Delete(entryKey(key), nil) }

// SetMeta sets a metadata value.
func (b *Batch) SetMeta(name string, v []byte) { _ = b.b.Set(metaKey(name), v, nil) }

// DeleteMeta removes the metadata record name.
func (b *Batch) DeleteMeta(name string) { _ = b.b.Delete(metaKey(name), nil) }

// PutUndo records u under u.Seq.
func (b *Batch) PutUndo(u *Undo) { _ = b.b.Set(undoKey(u.Seq), u.encode(), nil) }

// DeleteUndo removes the undo record seq.
func (b *Batch) DeleteUndo(seq uint64) { _ = b.b.Delete(undoKey(seq), nil) }

// DeleteUndos removes the undo records with sequence numbers below end.
func (b *Batch) DeleteUndos(end uint64) {
	_ = b.b.DeleteRange(undoKey(0), undoKey(end), nil)
}

// Empty reports whether the batch holds no change.
func (b *Batch) Empty() bool { return b.b.Empty() }

// Commit applies the batch atomically; with sync it is durable when Commit
// returns. The batch cannot be used afterwards.
//
// An error leaves the outcome unknown: the batch may be durable or not,
// whole, and the DB refuses every later change (see Err).
func (b *Batch) Commit(sync bool) error {
	defer b.b.Close()
	if err := b.db.Err(); err != nil {
		return err
	}
	opts := pebble.NoSync
	if sync {
		opts = pebble.Sync
	}
	b.db.logged.Add(int64(b.b.Len()))
	if err := b.b.Commit(opts); err != nil {
		b.db.failed(err)
	}
	return b.db.Err()
}

// Close discards a batch that was not committed.
func (b *Batch) Close() { _ = b.b.Close() }

// Sync makes every committed batch durable.
func (d *DB) Sync() error {
	b := d.NewBatch()
	_ = b.b.LogData(nil, nil)
	return b.Commit(true)
}

// Entries yields the entries whose keys start with prefix, in key order.
// Each yielded key is a fresh string; iteration stops at the first error.
func (d *DB) Entries(prefix string) iter.Seq2[KeyEntry, error] {
	lower := entryKey(prefix)
	return d.entries(lower, upperBound(lower))
}

// EntriesAfter yields the entries whose keys sort after key, in key order,
// as Entries does.
func (d *DB) EntriesAfter(key string) iter.Seq2[KeyEntry, error] {
	return d.entries(append(entryKey(key), 0), []byte{prefixKey + 1})
}

func (d *DB) entries(lower, upper []byte) iter.Seq2[KeyEntry, error] {
	return func(yield func(KeyEntry, error) bool) {
		it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			yield(KeyEntry{}, err)
			return
		}
		defer it.Close()
		for ok := it.First(); ok; ok = it.Next() {
			v, err := it.ValueAndErr()
			if err != nil {
				yield(KeyEntry{}, d.readErr(err))
				return
			}
			e, _, err := DecodeEntry(v)
			if err != nil {
				yield(KeyEntry{}, fmt.Errorf("manifest: entry of key %q: %w", it.Key()[1:], err))
				return
			}
			if !yield(KeyEntry{Key: string(it.Key()[1:]), Entry: e}, nil) {
				return
			}
		}
		if err := it.Error(); err != nil {
			yield(KeyEntry{}, d.readErr(err))
		}
	}
}

// Keys yields the keys of the entries that start with prefix, in key order,
// without reading or decoding their entries: a listing costs the
// iteration and a string per key. Each yielded key is a fresh string;
// iteration stops at the first error.
func (d *DB) Keys(prefix string) iter.Seq2[string, error] {
	lower := entryKey(prefix)
	return d.keysIn(lower, upperBound(lower))
}

// keysIn yields the keys of the records in [lower, upper), without their
// one-byte prefix, in order.
func (d *DB) keysIn(lower, upper []byte) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			yield("", d.readErr(err))
			return
		}
		defer it.Close()
		for ok := it.First(); ok; ok = it.Next() {
			if !yield(string(it.Key()[1:]), nil) {
				return
			}
		}
		if err := it.Error(); err != nil {
			yield("", d.readErr(err))
		}
	}
}

// KeyEntry is a key and its entry.
type KeyEntry struct {
	Key string
	Entry
}

// Undos yields the undo records with sequence numbers at or above from, in order.
func (d *DB) Undos(from uint64) iter.Seq2[Undo, error] {
	return func(yield func(Undo, error) bool) {
		it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: undoKey(from), UpperBound: []byte{prefixUndo + 1}})
		if err != nil {
			yield(Undo{}, err)
			return
		}
		defer it.Close()
		for ok := it.First(); ok; ok = it.Next() {
			k := it.Key()
			if len(k) != 9 {
				yield(Undo{}, ErrCorrupt)
				return
			}
			v, err := it.ValueAndErr()
			if err == nil {
				var u Undo
				u, err = decodeUndo(binary.BigEndian.Uint64(k[1:]), v)
				if err == nil && !yield(u, nil) {
					return
				}
			}
			if err != nil {
				yield(Undo{}, d.readErr(err))
				return
			}
		}
		if err := it.Error(); err != nil {
			yield(Undo{}, d.readErr(err))
		}
	}
}

// upperBound returns the smallest key greater than every key with prefix p.
func upperBound(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// Flush writes the memtable out so that the next Open need not replay the
// log, if more than minBytes were committed since the last Flush. A small
// memtable is cheaper to replay than to flush: each flush adds a table
// that compactions later merge with the rest.
func (d *DB) Flush(minBytes int64) error {
	if d.logged.Load() <= minBytes {
		return nil
	}
	if err := d.Err(); err != nil {
		return err
	}
	if err := d.db.Flush(); err != nil {
		d.failed(err)
		return err
	}
	d.logged.Store(0)
	return nil
}

// LiveSize estimates the bytes of the database's live data on disk: its
// live tables and logs, less what compacting its tombstones would free.
// (Tables a compaction is writing, or has just made obsolete, are not
// counted.)
func (d *DB) LiveSize() int64 {
	m := d.db.Metrics()
	t := m.Table.Local.LiveSize
	t -= min(t, m.Table.Garbage.PointDeletionsBytesEstimate)
	return int64(t + m.WAL.PhysicalSize)
}

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

// Err returns the failure that stopped the DB from accepting changes, a
// *FatalError, or nil.
func (d *DB) Err() error {
	if fe := d.fatal.Load(); fe != nil {
		return fe
	}
	return nil
}

func (d *DB) failed(err error) {
	fe, ok := err.(*FatalError)
	if !ok {
		err = d.readErr(err)
		fe = &FatalError{Msg: firstLine(err.Error()), Err: err}
	}
	d.fatal.CompareAndSwap(nil, fe)
	d.fs.fence()
}

// FatalError is a failure pebble cannot go on from: a write or sync of its
// log or MANIFEST failed. Pebble reports these through its logger's Fatalf
// and, by default, exits the process; a manifest records the first one
// instead, returns it from every later change, and lets reads go on. Err is
// the underlying cause (an *fs.PathError, errorfs's injected error, ...)
// where pebble passed one.
type FatalError struct {
	Msg string
	Err error
}

func (e *FatalError) Error() string { return "manifest: " + e.Msg }
func (e *FatalError) Unwrap() error { return e.Err }

// logger is pebble's logger for a DB: quiet, and Fatalf records the failure
// instead of exiting. Pebble's own code returns the error after Fatalf
// where it can go on (a failed MANIFEST update in a flush), and the commit
// path, which goes on as if nothing happened, is caught by Batch.Commit
// checking Err afterwards.
type logger DB

func (*logger) Infof(string, ...any)  {}
func (*logger) Errorf(string, ...any) {}
func (l *logger) Fatalf(format string, args ...any) {
	fe := &FatalError{Msg: firstLine(fmt.Sprintf(format, args...))}
	for _, a := range args {
		if err, ok := a.(error); ok {
			fe.Err = err
			break
		}
	}
	(*DB)(l).failed(fe)
}

// removeCleaner removes obsolete files, as pebble's default cleaner does,
// and so stops pebble from keeping obsolete logs for reuse: pebble recycles
// them unless its cleaner needs the files' contents (its internal
// NeedsFileContents, whose one method is unexported). That method reaches
// removeCleaner from the ArchiveCleaner embedded one level down, while
// Clean and String come from DeleteCleaner, one level up, so that files are
// removed, not archived.
type removeCleaner struct {
	pebble.DeleteCleaner
	needsContents
}

type needsContents struct{ pebble.ArchiveCleaner }
