package dirstore

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"iter"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/dirstore/dirstore/internal/datadir"
	"github.com/dirstore/dirstore/internal/escape"
	"github.com/dirstore/dirstore/internal/flock"
	"github.com/dirstore/dirstore/internal/manifest"
)

// metaDir is the hidden subdirectory that holds the lock and the manifest.
const metaDir = ".dirstore"

// maxCachedKey is the longest key whose entry the entry cache keeps.
const maxCachedKey = 256

// Store maps string keys to byte values, one file per value, in a directory.
// See the package documentation for its guarantees. All methods are safe for
// concurrent use; Close must be called to release the directory.
type Store struct {
	dir   string
	opts  Options
	files datadir.Dir
	man   *manifest.DB
	lock  io.Closer

	// hot caches recent manifest entries. It is only changed with the key's
	// stripe locked, so it never holds an entry older than the manifest's.
	hot     *lru.Cache[string, manifest.Entry]
	ghosts  *entryGhosts // keys read once, not yet in hot (entrycache.go)
	stripes [256]sync.Mutex

	count atomic.Int64 // keys
	bytes atomic.Int64 // sum of value sizes
	used  atomic.Int64 // bytes plus the reservations of writes in progress (evict.go)

	// rec keeps recency (recency.go); evictor evicts (evict.go).
	rec      recency
	evictor  evictor
	counters counters
	pins     pins // pin.go

	versions versionSource
	dirSync  syncGroup
	gc       collector

	// serial: a durable Set alone in flight syncs one thing at a time
	// (commit_linux.go says where); durableSets counts those in flight.
	serial      bool
	durableSets atomic.Int32

	// closeMu is held for reading by every operation and for writing by
	// Close, so Close waits for operations in flight.
	closeMu sync.RWMutex
	closed  bool
	failed  atomic.Pointer[error]

	// nosync holds the state of NoSync mode (see nosync.go), and wb
	// its write buffer (writebuffer.go).
	nosync nosyncState
	wb     writeBuffer

	// streams holds Store.Open's and Store.Hook's state (store_stream.go).
	streams storeStreams

	// res is the emergency reserve (reserve.go).
	res reserve
}

// Open opens the store in dir, creating the directory if it is missing (nil
// opts means the defaults). A directory is open in at most one Store at a
// time, in this process or any other: a second Open fails with ErrLocked.
//
// The first Open of a directory that holds files written by Python's
// zict.File adopts them as keys, without copying. Open after a crash
// recovers: it rolls an unsynced store back to a prefix of its operations,
// removes files the manifest does not know (of the store's own naming
// only) and reports entries whose files are missing through Options.Logger.
func Open(dir string, opts *Options) (*Store, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Store{dir: dir, opts: o}
	if err := s.open(); err != nil {
		s.release()
		return nil, err
	}
	return s, nil
}

func (s *Store) open() error {
	fsys := s.opts.FS
	meta := fsys.PathJoin(s.dir, metaDir)
	if s.opts.ReadOnly {
		if _, err := fsys.Stat(meta); err != nil {
			if _, err2 := fsys.Stat(s.dir); err2 != nil {
				return s.openErr(err2)
			}
		}
	} else if err := mkdirSynced(fsys, meta, s.opts.DirMode); err != nil {
		return s.openErr(flock.Perm(err))
	}
	if _, err := fsys.Stat(meta); err == nil {
		if err := s.takeLock(fsys.PathJoin(meta, "LOCK")); err != nil {
			return err
		}
	}
	files, err := datadir.Open(fsys, s.dir, s.opts.FileMode)
	if err != nil {
		return s.openErr(err)
	}
	s.files = files
	s.serial = s.opts.serialSyncs || vfs.Root(fsys) == vfs.Default && serialSyncs(s.dir)
	if s.opts.EntryCache > 0 {
		s.hot, _ = lru.New[string, manifest.Entry](s.opts.EntryCache)
		s.ghosts = newEntryGhosts(s.opts.EntryCache)
	}

	if !s.opts.ReadOnly {
		s.res.open(fsys, meta, reserveSize(&s.opts, fsys, meta), s.opts.FileMode)
	}
	manDir := fsys.PathJoin(meta, "manifest")
	exists, err := manifest.Exists(fsys, manDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s.metaErr(err)
	}
	s.rec.init(!s.opts.ReadOnly && (s.opts.MaxBytes > 0 || s.opts.MaxIdle > 0))
	if !exists && s.opts.ReadOnly {
		// A directory that was never opened writable: read it as zict's.
		return s.openReadOnlyZict()
	}
	memTable, recycle := manifestSpace(fsys, meta)
	s.man, err = manifest.Open(manDir, manifest.Options{FS: fsys, ReadOnly: s.opts.ReadOnly,
		FileMode: s.opts.FileMode, DirMode: s.opts.DirMode, OnFull: s.res.release,
		MemTableSize: memTable, NoLogRecycling: !recycle, CacheSize: s.opts.ManifestCache})
	if err != nil {
		return s.metaErr(err)
	}
	s.res.watch(s.man.LiveSize)
	if err := s.checkFormat(); err != nil {
		return err
	}
	st, ok, err := s.readState()
	if err != nil {
		return err
	}
	switch {
	case !exists:
		err = s.adopt()
	case !ok || !st.clean:
		if s.opts.ReadOnly {
			err = s.checkReadOnlyRecovery()
		} else {
			err = s.recover()
		}
	default:
		s.count.Store(st.count)
		s.bytes.Store(st.bytes)
		s.versions.next = st.next
		var ckpt uint64
		ckpt, err = s.metaUint(metaCkpt)
		s.nosync.seq, s.nosync.lastCkpt = ckpt, ckpt
	}
	if err != nil {
		return err
	}
	s.used.Store(s.bytes.Load())
	if err := s.loadPins(); err != nil {
		return err
	}
	if s.opts.ReadOnly {
		return nil
	}
	if err := s.openRecency(); err != nil {
		return err
	}
	// From the first change until a clean Close, a crash makes the next
	// Open recover.
	s.versions.init(!exists || !ok || !st.clean)
	s.res.fit()
	s.gc.start(s)
	if s.opts.NoSync {
		s.wb.init(s.opts.WriteBuffer)
		s.nosync.start(s)
	}
	return s.openBudget()
}

// takeLock takes the store's lock file: exclusively, or, for a read-only
// Open where the file cannot be written (read-only media, another user's
// store), shared (see package flock). ErrLocked means that another holder
// has it; a lock file that cannot be had for any other reason (permission,
// a read-only file system) is that error, matching fs.ErrPermission.
func (s *Store) takeLock(path string) error {
	lock, err := flock.Lock(s.opts.FS, path, s.opts.ReadOnly && !mutated(mutNoSharedLock), s.opts.FileMode)
	if errors.Is(err, flock.ErrHeld) {
		return fmt.Errorf("%w: %s: %w", ErrLocked, s.dir, err)
	}
	if err != nil {
		return fmt.Errorf("dirstore: open %s: %w", s.dir, err)
	}
	s.lock = lock
	return nil
}

// mkdirSynced creates dir and any missing parents, and syncs each directory
// that gained an entry, so that the new directories survive a crash.
func mkdirSynced(fsys vfs.FS, dir string, perm fs.FileMode) error {
	if _, err := fsys.Stat(dir); err == nil {
		return nil
	}
	parent := fsys.PathDir(dir)
	if parent != dir {
		if err := mkdirSynced(fsys, parent, perm); err != nil {
			return err
		}
	}
	if err := fsys.MkdirAll(dir, perm); err != nil {
		return err
	}
	d, err := fsys.OpenDir(parent)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// release closes whatever Open got as far as opening.
func (s *Store) release() error {
	var errs []error
	if s.man != nil {
		errs = append(errs, s.man.Close())
	}
	if s.files != nil {
		errs = append(errs, s.files.Close())
	}
	if s.lock != nil {
		errs = append(errs, s.lock.Close())
	}
	return errors.Join(errs...)
}

// Close makes every acknowledged write durable, removes superseded files
// and releases the directory. Operations in flight finish first; later ones
// return an error matching fs.ErrClosed. A store that failed (ErrFailed)
// cannot record a clean shutdown: it releases the directory all the same,
// and Close returns the failure (the next Open recovers).
func (s *Store) Close() error {
	s.rec.stop()
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return fmt.Errorf("dirstore: close %s: %w", s.dir, ErrClosed)
	}
	s.closed = true
	var errs []error
	if !s.opts.ReadOnly && s.man != nil {
		if err := s.flushRecency(); err != nil {
			errs = append(errs, err)
		}
		if s.opts.NoSync {
			s.nosync.stop()
			if err := s.applyBuffered(); err != nil {
				errs = append(errs, fmt.Errorf("applying buffered writes: %w", err))
			} else if err := s.checkpoint(); err != nil {
				errs = append(errs, err)
			}
		}
		s.gc.stop()
		// A failed store cannot record a clean shutdown: Close says so,
		// and the next Open recovers.
		if err := s.failedErr(); err != nil && !errors.Is(errors.Join(errs...), ErrFailed) {
			errs = append(errs, err)
		}
		// A store whose superseded files could not all be removed leaves
		// the next Open a recovery scan to do. A session that changed
		// nothing has nothing to record.
		if len(errs) == 0 && !s.gc.leftover.Load() && s.versions.isDirty() {
			// The removals must be durable before the record that says no
			// recovery scan is needed.
			errs = append(errs, s.files.SyncDir(), s.writeCleanState())
		}
	}
	errs = append(errs, s.release())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dirstore: close %s: %w", s.dir, readOnlyErr(err))
	}
	return nil
}

// Sync makes every acknowledged write durable and removes the files that
// later writes superseded. With Options.NoSync this is what Close and the
// background checkpoints do; otherwise writes are durable already and Sync
// only waits for the removals.
func (s *Store) Sync() error {
	if err := s.begin("sync", "", true); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	if err := s.flushRecency(); err != nil {
		return readOnlyErr(err)
	}
	if s.opts.NoSync {
		if err := s.applyBuffered(); err != nil {
			return fmt.Errorf("dirstore: sync %s: applying buffered writes: %w", s.dir, err)
		}
		if err := s.checkpoint(); err != nil {
			return fmt.Errorf("dirstore: sync %s: %w", s.dir, err)
		}
	}
	s.gc.wait()
	return nil
}

// begin takes closeMu for reading and checks that op may run. On success
// the caller must RUnlock closeMu.
func (s *Store) begin(op, key string, write bool) error {
	s.closeMu.RLock()
	var err error
	switch {
	case s.closed:
		err = ErrClosed
	case len(key) > MaxKeyLen:
		err = ErrInvalidKey
	case write && s.opts.ReadOnly:
		err = ErrReadOnly
	case write && s.failed.Load() != nil:
		err = s.failedErr()
	}
	if err != nil {
		s.closeMu.RUnlock()
		if key == "" && (op == "sync" || op == "trim") {
			return fmt.Errorf("dirstore: %s %s: %w", op, s.dir, err)
		}
		return keyErr(op, key, err)
	}
	return nil
}

// fail records err, after which the store refuses writes, and returns err
// marked as ErrFailed.
func (s *Store) fail(err error) error {
	err = readOnlyErr(err)
	s.failed.CompareAndSwap(nil, &err)
	return fmt.Errorf("%w (%w)", err, ErrFailed)
}

// failedErr returns nil, or ErrFailed with the failure that caused it.
func (s *Store) failedErr() error {
	if f := s.failed.Load(); f != nil {
		return fmt.Errorf("%w: %w", ErrFailed, *f)
	}
	return nil
}

// failIfUnsure fails the store if err leaves what reached the disk unknown:
// a failed fsync, after which what the kernel kept of other writes is
// unknown, or a file system that turned read-only under the store (EROFS).
// Such a file system gave up after an error of its own (ext4 and btrfs do,
// aborting their journal, so that writes not yet synced may be lost as in a
// crash), and it stays read-only until it is mounted again, which the
// store's open files prevent: so the store stops pretending, and refuses
// writes until it is reopened, whichever write met it first.
func (s *Store) failIfUnsure(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Op == "sync" || errors.Is(err, syscall.EROFS) && !mutated(mutReadOnlyNotFailed) {
		return s.fail(err)
	}
	return err
}

func (s *Store) stripe(key string) *sync.Mutex { return &s.stripes[s.stripeIndex(key)] }

func (s *Store) stripeIndex(key string) int {
	// FNV-1a; the stripes only spread contention.
	h := uint32(2166136261)
	for i := 0; i < len(key) && i < 64; i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	return int(h % uint32(len(s.stripes)))
}

// fileName returns the name of the file that holds key's value.
func fileName(key string, e manifest.Entry) string {
	if e.Legacy {
		return escape.Quote(key)
	}
	return escape.Name(key, e.Version)
}

// lookup returns key's entry, from the entry cache if it is there.
func (s *Store) lookup(key string) (manifest.Entry, bool, error) {
	if s.hot != nil {
		if e, ok := s.hot.Get(key); ok {
			return e, true, nil
		}
	}
	if s.hot == nil || len(key) > maxCachedKey {
		return s.man.Get(key)
	}
	// Fill the cache under the stripe lock so that a concurrent Set cannot
	// be overtaken by the older entry read here.
	mu := s.stripe(key)
	mu.Lock()
	defer mu.Unlock()
	return s.lookupLocked(key)
}

// peekEntry returns key's entry without filling the entry cache.
func (s *Store) peekEntry(key string) (manifest.Entry, bool, error) {
	if s.hot != nil {
		if e, ok := s.hot.Peek(key); ok {
			return e, true, nil
		}
	}
	return s.man.Get(key)
}

// lookupLocked is lookup with the key's stripe held.
func (s *Store) lookupLocked(key string) (manifest.Entry, bool, error) {
	if s.hot != nil {
		if e, ok := s.hot.Peek(key); ok {
			return e, true, nil
		}
	}
	e, ok, err := s.man.Get(key)
	if err == nil && ok && s.hot != nil && len(key) <= maxCachedKey && s.ghosts.seen(key) {
		s.hot.Add(key, e)
	}
	return e, ok, err
}

// Set stores value under key, replacing any previous value. Unless
// Options.NoSync is set, the value is durable when Set returns nil.
func (s *Store) Set(key string, value []byte) error {
	return s.SetBuffers(key, value)
}

// SetBuffers stores the concatenation of bufs under key, writing them with
// one writev and without joining them in memory.
func (s *Store) SetBuffers(key string, bufs ...[]byte) error {
	var evicted []victim
	err := s.setBuffers(key, bufs, &evicted)
	// After closeMu is released: hooks and OnEvict may use the Store.
	s.notifyEvicted(evicted)
	if err != nil {
		return err
	}
	s.streams.fireSet(bufs)
	return nil
}

func (s *Store) setBuffers(key string, bufs [][]byte, evicted *[]victim) (err error) {
	if err := s.begin("set", key, true); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	if err := s.res.admit(len(key)); err != nil {
		return keyErr("set", key, err)
	}
	var size int64
	for _, b := range bufs {
		size += int64(len(b))
	}
	if s.opts.MaxBytes > 0 && size > s.opts.MaxBytes {
		return keyErr("set", key, s.tooLarge(size))
	}
	// A bounded store reserves the room the value takes before writing it.
	res, err := s.reserve(key, size-s.sizeNow(key), evicted)
	if err != nil {
		return keyErr("set", key, err)
	}
	defer func() {
		s.unreserve(res)
		if err == nil {
			s.counters.wrote(size)
		}
	}()
	if s.wb.buffers(size) {
		return s.setBuffered(key, bufs, size, &res, evicted)
	}
	v, err := s.versions.take(s)
	if err != nil {
		return keyErr("set", key, err)
	}
	e := manifest.Entry{Version: v, ModTime: time.Now().UnixNano()}
	for _, b := range bufs {
		e.Size += int64(len(b))
		e.CRC = crc32.Update(e.CRC, datadir.Castagnoli, b)
	}
	name := escape.Name(key, v)
	// In sync mode installDurable fsyncs the file while the manifest commits.
	if err := s.files.Write(name, s.gc.spare(), bufs, false); err != nil {
		s.gc.leftover.Store(true)
		return keyErr("set", key, s.failIfUnsure(err))
	}
	return s.installRoom("set", key, name, e, &res, evicted)
}

// installRoom is installInOrder for a write holding reservation *res (which
// the commit consumes): if the value it replaces turned out smaller than
// the reservation assumed, it reserves more, evicting, and commits again.
func (s *Store) installRoom(op, key, name string, e manifest.Entry, res *int64, evicted *[]victim) error {
	for {
		err := s.installInOrder(op, key, name, e, res)
		var m *errMoreRoom
		if !errors.As(err, &m) {
			return err
		}
		if err := s.moreRoom(key, err, res, evicted); err != nil {
			s.drop(name)
			return keyErr(op, key, err)
		}
	}
}

// sizeNow returns the size of key's value in a bounded store (0 if it has
// none), which a Set's reservation counts on getting back.
func (s *Store) sizeNow(key string) int64 {
	if s.opts.MaxBytes <= 0 {
		return 0
	}
	if op, ok := s.wb.get(key); ok {
		return int64(len(op.value))
	}
	e, ok, err := s.peekEntry(key)
	if err != nil || !ok {
		return 0
	}
	return e.Size
}

// SetFrom stores what r yields until io.EOF under key and returns its
// length. The value streams to its file through a fixed-size buffer, so
// memory use does not depend on its size. If r fails, or panics (the
// panic goes on to the caller), nothing changes.
func (s *Store) SetFrom(key string, r io.Reader) (int64, error) {
	var evicted []victim
	n, err := s.setFrom(key, r, &evicted)
	s.notifyEvicted(evicted)
	if err == nil {
		s.streams.fire(evWrite, nil, int(n))
	}
	return n, err
}

func (s *Store) setFrom(key string, r io.Reader, evicted *[]victim) (int64, error) {
	if err := s.begin("set", key, true); err != nil {
		return 0, err
	}
	defer s.closeMu.RUnlock()
	if err := s.res.admit(len(key)); err != nil {
		return 0, keyErr("set", key, err)
	}
	v, err := s.versions.take(s)
	if err != nil {
		return 0, keyErr("set", key, err)
	}
	name := escape.Name(key, v)
	n, crc, err := s.files.WriteFrom(name, s.gc.spare(), r, false) // fsynced by installDurable
	if err != nil {
		s.gc.leftover.Store(true)
		return 0, keyErr("set", key, s.failIfUnsure(err))
	}
	// The size is known only now: a bounded store reserves room after
	// the file is written, before the commit.
	if s.opts.MaxBytes > 0 && n > s.opts.MaxBytes {
		s.drop(name)
		return 0, keyErr("set", key, s.tooLarge(n))
	}
	res, err := s.reserve(key, n-s.sizeNow(key), evicted)
	if err != nil {
		s.drop(name)
		return 0, keyErr("set", key, err)
	}
	defer func() { s.unreserve(res) }()
	e := manifest.Entry{Version: v, Size: n, CRC: crc, ModTime: time.Now().UnixNano()}
	if err := s.installRoom("set", key, name, e, &res, evicted); err != nil {
		return 0, err
	}
	s.counters.wrote(n)
	return n, nil
}

// install points key at the new file name, which holds entry e, and
// schedules the file it replaces for removal. On error the store is
// unchanged, except after a failed manifest commit (ErrFailed), whose
// outcome is unknown: then both files stay, and the next Open keeps the
// one the manifest names and removes the other.
func (s *Store) install(op, key, name string, e manifest.Entry, res *int64) error {
	if !s.opts.NoSync {
		return s.installDurable(op, key, name, e, res)
	}
	old, had, err := s.commit(key, &e, res)
	if err != nil {
		var m *errMoreRoom
		if errors.As(err, &m) {
			return err // the caller makes room and commits again
		}
		if errors.Is(err, ErrFailed) {
			s.gc.leftover.Store(true)
		} else {
			s.drop(name)
		}
		return keyErr(op, key, err)
	}
	if had {
		s.discard(fileName(key, old), old.Size)
	}
	return nil
}

// drop removes name, a file no entry points at, or leaves it to the next
// Open's recovery scan.
func (s *Store) drop(name string) {
	if err := s.files.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.gc.leftover.Store(true)
	}
}

// commit changes key's entry to *e, or deletes it if e is nil, and returns
// the entry it had. A Set's reservation *res (nil for none) is settled: on
// success it is consumed (set to 0); if it is too small and the budget has
// no room left, commit returns *errMoreRoom and changes nothing.
func (s *Store) commit(key string, e *manifest.Entry, res *int64) (old manifest.Entry, had bool, err error) {
	old, had, _, err = s.commitEntry(key, e, res, false)
	return old, had, err
}

// commitEntry is commit; in sync mode, alone commits an undo record of the
// change (see installDurable) and returns its sequence number.
func (s *Store) commitEntry(key string, e *manifest.Entry, res *int64, alone bool) (old manifest.Entry, had bool, seq uint64, err error) {
	mu := s.stripe(key)
	mu.Lock()
	defer mu.Unlock()
	return s.commitLocked(key, e, res, alone)
}

// commitLocked is commitEntry with the key's stripe held.
func (s *Store) commitLocked(key string, e *manifest.Entry, res *int64, alone bool) (old manifest.Entry, had bool, seq uint64, err error) {
	old, had, err = s.lookupLocked(key)
	if err != nil {
		return old, had, 0, err
	}
	if e == nil && !had {
		return old, had, 0, ErrNotFound
	}
	var d, reserved int64 // growth of the values, and the room reserved for it
	switch {
	case e == nil:
		d = -old.Size
	case had:
		d = e.Size - old.Size
	default:
		d = e.Size
	}
	if res != nil {
		if err := s.settle(d, res); err != nil {
			return old, had, 0, err
		}
		reserved = *res
	}
	// The key's recency records change with its entry, in a store that
	// keeps them (recency.go); a Delete drops them in any store.
	var rt int64
	var rok bool
	if had && (e == nil || s.rec.on) {
		if rt, rok, err = s.man.Recency(key); err != nil {
			return old, had, 0, err
		}
	}
	b := s.man.NewBatch()
	if e != nil {
		b.Put(key, *e)
		if s.rec.on {
			t := s.rec.begin()
			defer s.rec.end(t)
			b.SetRecency(key, rt, rok, t)
		}
	} else {
		b.Delete(key)
		if rok {
			b.DeleteRecency(key, rt)
		}
	}
	var oldp *manifest.Entry
	if had {
		oldp = &old
	}
	if had && mutated(mutRemoveTooEarly) {
		_ = s.files.Remove(fileName(key, old))
	}
	if s.opts.NoSync {
		err = s.nosync.commit(b, key, oldp, e)
	} else {
		for _, q := range s.takeAcked() {
			b.DeleteUndo(q)
		}
		if alone {
			seq = s.nextUndo() // under the stripe: a key's records are in commit order
			b.PutUndo(&manifest.Undo{Seq: seq, Key: key, Old: oldp, New: e, Alone: true})
		}
		err = b.Commit(!mutated(mutNoManifestSync))
	}
	if err != nil {
		// The batch may or may not have landed: stop trusting the cache.
		s.cacheLocked(key, nil)
		return old, had, seq, s.fail(err)
	}
	s.cacheLocked(key, e)
	switch {
	case e == nil:
		s.count.Add(-1)
	case !had:
		s.count.Add(1)
	}
	s.account(d, reserved)
	if res != nil {
		*res = 0
	}
	return old, had, seq, nil
}

// cacheLocked puts key's new entry e in the entry cache, or drops key from
// it (e nil: deleted, or not known). The caller holds key's stripe.
func (s *Store) cacheLocked(key string, e *manifest.Entry) {
	if s.hot == nil {
		return
	}
	if e != nil && len(key) <= maxCachedKey {
		s.hot.Add(key, *e)
	} else {
		s.hot.Remove(key)
	}
}

// discard disposes of a superseded file of size bytes.
func (s *Store) discard(name string, size int64) {
	if s.opts.NoSync {
		s.nosync.discard(s, name, size)
		return
	}
	s.gc.remove(name, size)
}

// Delete removes key. Unless Options.NoSync is set, the deletion is durable
// when Delete returns nil. A missing key is ErrNotFound.
func (s *Store) Delete(key string) error {
	if err := s.begin("delete", key, true); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	if s.wb.on() {
		err := s.deleteBuffered(key)
		if err == nil {
			s.counters.deletes.Add(1)
		}
		return err
	}
	if err := s.versions.touch(s); err != nil {
		return keyErr("delete", key, err)
	}
	old, _, err := s.commit(key, nil, nil)
	if err != nil {
		return keyErr("delete", key, err)
	}
	s.discard(fileName(key, old), old.Size)
	s.counters.deletes.Add(1)
	return nil
}

// Get returns a copy of key's value, which the caller owns. A missing key is
// ErrNotFound; a value whose file does not match the manifest is ErrCorrupt.
func (s *Store) Get(key string) ([]byte, error) {
	out, err := s.get(key)
	if err == nil {
		s.streams.fire(evRead, out, len(out)) // after closeMu is released
	}
	return out, err
}

func (s *Store) get(key string) ([]byte, error) {
	if err := s.begin("get", key, false); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	out, done, err := s.value("get", key, false)
	if err != nil {
		s.noteRead(key, 0, err)
		return nil, err
	}
	err = done()
	s.noteRead(key, len(out), err)
	return out, err
}

// noteRead counts a read of key that found n bytes or failed with err, and
// notes its use.
func (s *Store) noteRead(key string, n int, err error) {
	switch {
	case err == nil:
		s.counters.read(n)
		s.rec.touch(key)
	case errors.Is(err, ErrNotFound):
		s.counters.read(-1)
	}
}

// View calls fn with key's value, which is valid only until fn returns and
// must not be modified. With Options.Mmap the value is a read-only memory
// map of the file and is not copied. fn's error is returned as it is.
//
// fn runs with no lock of the Store held: it may use the Store, Close
// included (the value stays valid until fn returns). If fn panics, the
// value's buffer or map is given back and the panic goes on to the caller.
func (s *Store) View(key string, fn func(value []byte) error) (err error) {
	if err := s.begin("view", key, false); err != nil {
		return err
	}
	// Read hooks run after fn, so they get a copy of the value rather
	// than a pooled buffer or a map.
	hooked := s.streams.hooked(evRead)
	data, done, err := func() ([]byte, func() error, error) {
		defer s.closeMu.RUnlock()
		return s.value("view", key, !hooked)
	}()
	s.noteRead(key, len(data), err) // whatever fn returns
	if err != nil {
		return err
	}
	func() {
		defer func() {
			if derr := done(); err == nil {
				err = derr
			}
		}()
		err = fn(data)
	}()
	if hooked {
		s.streams.fire(evRead, data, len(data))
	}
	return err
}

// viewBufs recycles View's read buffers.
var viewBufs = sync.Pool{New: func() any { return new([]byte) }}

// errChecksum reports a value whose bytes do not match the manifest's CRC.
var errChecksum = errors.New("checksum mismatch")

// value finds key's file and returns its checked contents, and done, which
// gives back what holds them (a pooled buffer, a map and the file's pin)
// and must be called once they are no longer used; done need not be
// called with closeMu held. borrow means the caller does not keep the
// slice past done, so a pooled buffer or a map may be used.
func (s *Store) value(op, key string, borrow bool) (data []byte, done func() error, err error) {
	noop := func() error { return nil }
	if p, ok := s.wb.get(key); ok {
		switch {
		case p.del:
			return nil, nil, keyErr(op, key, ErrNotFound)
		case borrow:
			return p.value, noop, nil
		default:
			return append([]byte(nil), p.value...), noop, nil
		}
	}
	// A map shows the file as it is while it is used: pin the file so
	// that it is not reused meanwhile.
	mmap := borrow && s.opts.Mmap
	var release func() error
	var name string
	err = s.resolve(op, key, mmap, func(n string, e manifest.Entry) (err error) {
		name = n
		data, release, err = s.load(n, e, borrow, mmap)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	done = func() error {
		err := release()
		if mmap {
			s.gc.unpin(name)
		}
		if err != nil {
			return keyErr(op, key, err)
		}
		return nil
	}
	return data, done, nil
}

// resolve finds key's current file and calls try with its name and entry,
// with the file pinned against reuse if pin is set (then, if resolve
// returns nil, the caller owns the pin and must unpin the name). try
// reports a file that does not hold its entry (missing, or of another
// length or content) with an error that mismatch recognises: if the key
// moved on meanwhile (a concurrent Set or Delete superseded the file, which
// may then be removed or reused), resolve tries again with the new entry;
// otherwise the value is corrupt.
func (s *Store) resolve(op, key string, pin bool, try func(name string, e manifest.Entry) error) error {
	e, ok, err := s.lookup(key)
	for attempt := 0; ; attempt++ {
		if err != nil {
			return keyErr(op, key, err)
		}
		if !ok {
			return keyErr(op, key, ErrNotFound)
		}
		name := fileName(key, e)
		if pin {
			s.gc.pin(name)
			// The pin holds only if the file is still current once taken.
			if e2, ok2, err2 := s.lookup(key); err2 != nil || !ok2 || e2 != e {
				s.gc.unpin(name)
				e, ok, err = e2, ok2, err2
				continue
			}
		}
		terr := try(name, e)
		if terr == nil {
			return nil
		}
		if pin {
			s.gc.unpin(name)
		}
		if mismatch(terr) && attempt < 8 {
			e2, ok2, err2 := s.lookup(key)
			if err2 != nil || !ok2 || e2 != e {
				e, ok, err = e2, ok2, err2
				continue
			}
		}
		if mismatch(terr) || !isIOError(terr) {
			return corruptErr(op, key, terr)
		}
		return keyErr(op, key, terr)
	}
}

// load reads (or maps) name, which should hold e, and checks it against e.
// release gives back the pooled buffer or the map.
func (s *Store) load(name string, e manifest.Entry, borrow, mmap bool) (data []byte, release func() error, err error) {
	release = func() error { return nil }
	mapped := false
	if mmap {
		var unmap func() error
		data, unmap, mapped, err = s.files.Map(name, e.Size)
		if mapped && err == nil {
			release = unmap
		}
	}
	if !mapped {
		var buf []byte
		if borrow {
			bufp := viewBufs.Get().(*[]byte)
			buf = *bufp
			release = func() error {
				if data != nil && cap(data) <= 1<<20 {
					*bufp = data[:0]
				}
				viewBufs.Put(bufp)
				return nil
			}
		}
		data, err = s.files.Read(name, e.Size, buf)
	}
	if err == nil && crc32.Checksum(data, datadir.Castagnoli) != e.CRC {
		err = fmt.Errorf("%s: %w", s.files.Path(name), errChecksum)
	}
	if err != nil {
		release()
		return nil, nil, err
	}
	return data, release, nil
}

// mismatch reports whether err says a file does not hold the entry it was
// read for: missing, not a regular file, of another length, or with other
// bytes.
func mismatch(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, datadir.ErrSize) ||
		errors.Is(err, datadir.ErrNotRegular) && !mutated(mutPlantedIsIO) || errors.Is(err, errChecksum)
}

// isIOError reports whether err is a failure to do I/O (as opposed to a
// file that does not hold what the manifest recorded).
func isIOError(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && !errors.Is(err, datadir.ErrSize) &&
		(!errors.Is(err, datadir.ErrNotRegular) || mutated(mutPlantedIsIO))
}

// Has reports whether key has a value.
func (s *Store) Has(key string) (bool, error) {
	if err := s.begin("has", key, false); err != nil {
		return false, err
	}
	defer s.closeMu.RUnlock()
	if p, ok := s.wb.get(key); ok {
		return !p.del, nil
	}
	_, ok, err := s.peekEntry(key)
	if err != nil {
		return false, keyErr("has", key, err)
	}
	return ok, nil
}

// Len returns the number of keys.
func (s *Store) Len() int { return int(s.count.Load()) }

// Keys returns the keys in sorted order, from a consistent snapshot taken
// when iteration starts. Iteration stops after yielding an error.
func (s *Store) Keys() iter.Seq2[string, error] { return s.KeysWithPrefix("") }

// KeysWithPrefix is Keys restricted to the keys that start with prefix.
func (s *Store) KeysWithPrefix(prefix string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		if err := s.begin("keys", prefix, false); err != nil {
			yield("", err)
			return
		}
		defer s.closeMu.RUnlock()
		// Buffered operations are merged into the manifest's keys. Taken
		// before the manifest's snapshot, they are never older than it.
		buffered := s.wb.bufferedKeys(prefix)
		next := func(before string, all bool) bool {
			for len(buffered) > 0 && (all || buffered[0].key < before) {
				a := buffered[0]
				buffered = buffered[1:]
				if !a.op.del && !yield(a.key, nil) {
					return false
				}
			}
			return true
		}
		for key, err := range s.man.Keys(prefix) {
			if err != nil {
				yield("", keyErr("keys", prefix, err))
				return
			}
			if !next(key, false) {
				return
			}
			if len(buffered) > 0 && buffered[0].key == key {
				a := buffered[0]
				buffered = buffered[1:]
				if a.op.del {
					continue
				}
			}
			if !yield(key, nil) {
				return
			}
		}
		next("", true)
	}
}

// Stats describes a store.
type Stats struct {
	Keys     int64 // number of keys
	Bytes    int64 // sum of the values' sizes
	NoSync   bool
	ReadOnly bool
	Mmap     bool
	MaxBytes int64 // Options.MaxBytes (0: unbounded)

	// Counters since Open. Gets counts Get, View and Open calls; one that
	// finds no value is also a Miss. Sets counts the Sets, SetBuffers and
	// SetFroms that succeeded, Deletes the Deletes (not evictions).
	Gets, Misses, Sets, Deletes int64
	Evictions                   int64 // keys evicted (MaxBytes, MaxIdle, Trim)
	BytesRead                   int64 // value bytes returned by Get and View
	BytesWritten                int64 // value bytes stored by Sets
}

// Stats returns the store's counts, mode and counters.
func (s *Store) Stats() Stats {
	c := &s.counters
	return Stats{Keys: s.count.Load(), Bytes: s.bytes.Load(), NoSync: s.opts.NoSync, ReadOnly: s.opts.ReadOnly, Mmap: s.opts.Mmap,
		MaxBytes: s.opts.MaxBytes,
		Gets:     c.gets.Load(), Misses: c.misses.Load(), Sets: c.sets.Load(), Deletes: c.deletes.Load(),
		Evictions: c.evictions.Load(), BytesRead: c.bytesRead.Load(), BytesWritten: c.bytesWritten.Load()}
}

// Verify reads every value and checks it against the manifest, calling fn
// with each key and nil or the error its value gives (ErrCorrupt for a
// mismatch). It stops early if fn returns false, and returns an error only
// if the manifest cannot be read (or the Store is closed meanwhile). fn
// runs with no lock of the Store held: it may use the Store, Close
// included, and a panic in it leaves nothing held.
func (s *Store) Verify(fn func(key string, err error) bool) error {
	if err := s.begin("verify", "", false); err != nil {
		return err
	}
	// Values still in the write buffer have no file yet. If it cannot be
	// written out now (the writes report why), the files there are still
	// checked.
	_ = s.applyBuffered()
	s.closeMu.RUnlock()
	type result struct {
		key string
		err error
	}
	// The keys are checked in batches, each with the Store locked against
	// Close; fn sees a batch's results after, with nothing held.
	const batch = 64
	var after string
	for first := true; ; first = false {
		if err := s.begin("verify", "", false); err != nil {
			return err
		}
		var results []result
		var iterErr error
		entries := s.man.Entries("")
		if !first {
			entries = s.man.EntriesAfter(after)
		}
		for ke, err := range entries {
			if err != nil {
				iterErr = fmt.Errorf("dirstore: verify %s: %w", s.dir, err)
				break
			}
			after = ke.Key
			err := s.verifyKey(ke.Key, ke.Entry)
			switch {
			case mismatch(err):
				// Superseded or deleted since the listing began? Then
				// check the value the key has now, as a read would.
				err = s.resolve("verify", ke.Key, false, func(_ string, e manifest.Entry) error {
					return s.verifyKey(ke.Key, e)
				})
				if errors.Is(err, ErrNotFound) {
					continue
				}
			case err != nil:
				err = keyErr("verify", ke.Key, err)
			}
			if results = append(results, result{ke.Key, err}); len(results) == batch {
				break
			}
		}
		s.closeMu.RUnlock()
		for _, r := range results {
			if !fn(r.key, r.err) {
				return nil
			}
		}
		if iterErr != nil {
			return iterErr
		}
		if len(results) < batch {
			return nil
		}
	}
}

func (s *Store) verifyKey(key string, e manifest.Entry) error {
	_, release, err := s.load(fileName(key, e), e, true, false)
	if err == nil {
		release()
	}
	return err
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// String describes the store as zict does: <Store: DIR, N elements>.
func (s *Store) String() string {
	return fmt.Sprintf("<Store: %s, %d elements>", s.dir, s.Len())
}
