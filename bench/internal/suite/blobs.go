package suite

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go

	"github.com/dirstore/dirstore"
)

// The stores a user would pick instead of one file per value, each set up
// for the durability dirstore gives in the same row, as its documentation
// says to:
//   - bbolt: every Update commits with fsync (NoSync for the no-fsync rows);
//     concurrent writers go through DB.Batch, which bbolt documents for
//     them.
//   - pebble: the values in its LSM; Set with pebble.Sync (pebble.NoSync).
//   - SQLite (modernc.org/sqlite, no cgo): WAL mode with synchronous=FULL,
//     which syncs the log at every commit (synchronous=OFF for no fsync);
//     one table of (key TEXT PRIMARY KEY, value BLOB).
//
// Beside them, the floor of the design itself ("file floor"): a file per
// value with no manifest and no checksum, in raw system calls. A new value
// is created, written, fsynced with its directory (for durability; no
// temporary name, as keys are new), a read opens, fstats, preads and
// closes. Where that floor loses to another store, so must any store of one
// file per value. The "checked floor" is the same with a CRC-32C after each
// value, which every read verifies: the floor of a store that, like
// dirstore, checks what it reads.
const (
	cBolt      = "bbolt"
	cPebbleDB  = "pebble"
	cSQLite    = "SQLite"
	cFileFloor = "file floor"
	cChecked   = "checked floor"
)

// blobStore is one contender of the Blobs group.
type blobStore interface {
	set(k string, v []byte) error
	get(k string) ([]byte, error)
	del(k string) error
	// sync makes what the store holds durable (after no-fsync batches).
	sync() error
	close() error
}

// blobOpener opens (or reopens) a contender's store in dir.
type blobOpener struct {
	name string
	open func(dir string, durable bool) (blobStore, error)
}

var blobOpeners = []blobOpener{
	{"dirstore", openDirstoreBlobs},
	{cBolt, openBolt},
	{cPebbleDB, openPebbleBlobs},
	{cSQLite, openSQLite},
	{cFileFloor, openFileFloor},
	{cChecked, openCheckedFloor},
}

type dirstoreBlobs struct{ s *dirstore.Store }

func openDirstoreBlobs(dir string, durable bool) (blobStore, error) {
	s, err := dirstore.Open(dir, &dirstore.Options{NoSync: !durable})
	return dirstoreBlobs{s}, err
}

func (d dirstoreBlobs) set(k string, v []byte) error { return d.s.Set(k, v) }
func (d dirstoreBlobs) get(k string) ([]byte, error) { return d.s.Get(k) }
func (d dirstoreBlobs) del(k string) error           { return d.s.Delete(k) }
func (d dirstoreBlobs) sync() error                  { return d.s.Sync() }
func (d dirstoreBlobs) close() error                 { return d.s.Close() }

// fileFloor is the "file floor" contender: a file per value, named by its
// key, and nothing else. Checked, it is the "checked floor": each file
// ends with the CRC-32C of its value, which every read verifies, as
// dirstore verifies every value it reads.
type fileFloor struct {
	dir     string
	dirfd   int
	durable bool
	checked bool
}

func openFileFloor(dir string, durable bool) (blobStore, error) {
	dirfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &fileFloor{dir: dir, dirfd: dirfd, durable: durable}, nil
}

func openCheckedFloor(dir string, durable bool) (blobStore, error) {
	s, err := openFileFloor(dir, durable)
	if err == nil {
		s.(*fileFloor).checked = true
	}
	return s, err
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (f *fileFloor) set(k string, v []byte) error {
	fd, err := unix.Openat(f.dirfd, k, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &os.PathError{Op: "create", Path: k, Err: err}
	}
	err = writeFull(fd, v)
	if err == nil && f.checked {
		var sum [4]byte
		binary.LittleEndian.PutUint32(sum[:], crc32.Checksum(v, castagnoli))
		err = writeFull(fd, sum[:])
	}
	if err == nil && f.durable {
		err = unix.Fsync(fd)
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err == nil && f.durable {
		err = unix.Fsync(f.dirfd)
	}
	if err != nil {
		return &os.PathError{Op: "write", Path: k, Err: err}
	}
	return nil
}

// writeFull writes all of p to fd.
func writeFull(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(fd, p)
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

func (f *fileFloor) get(k string) ([]byte, error) {
	fd, err := unix.Openat(f.dirfd, k, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: k, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: k, Err: err}
	}
	b := make([]byte, st.Size)
	for n := 0; n < len(b); {
		m, err := unix.Pread(fd, b[n:], int64(n))
		if err != nil || m == 0 {
			return nil, &os.PathError{Op: "read", Path: k, Err: cmp.Or(err, io.ErrUnexpectedEOF)}
		}
		n += m
	}
	if f.checked {
		if len(b) < 4 || crc32.Checksum(b[:len(b)-4], castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
			return nil, &os.PathError{Op: "read", Path: k, Err: errors.New("checksum mismatch")}
		}
		b = b[:len(b)-4]
	}
	return b, nil
}

func (f *fileFloor) del(k string) error {
	err := unix.Unlinkat(f.dirfd, k, 0)
	if err == nil && f.durable {
		err = unix.Fsync(f.dirfd)
	}
	if err != nil {
		return &os.PathError{Op: "remove", Path: k, Err: err}
	}
	return nil
}

// sync makes every file of the directory durable, and the directory.
func (f *fileFloor) sync() error  { return unix.Syncfs(f.dirfd) }
func (f *fileFloor) close() error { return unix.Close(f.dirfd) }

var boltBucket = []byte("kv")

type boltBlobs struct{ db *bolt.DB }

func openBolt(dir string, durable bool) (blobStore, error) {
	db, err := bolt.Open(filepath.Join(dir, "bolt.db"), 0o600, &bolt.Options{Timeout: time.Second, NoSync: !durable})
	if err != nil {
		return nil, err
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(boltBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, err
	}
	return boltBlobs{db}, nil
}

func (b boltBlobs) set(k string, v []byte) error {
	return b.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(boltBucket).Put([]byte(k), v) })
}

// batchSet is the writer bbolt documents for many goroutines.
func (b boltBlobs) batchSet(k string, v []byte) error {
	return b.db.Batch(func(tx *bolt.Tx) error { return tx.Bucket(boltBucket).Put([]byte(k), v) })
}

func (b boltBlobs) get(k string) (out []byte, err error) {
	err = b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(boltBucket).Get([]byte(k))
		if v == nil {
			return fs.ErrNotExist
		}
		out = bytes.Clone(v) // valid only inside the transaction
		return nil
	})
	return out, err
}

func (b boltBlobs) del(k string) error {
	return b.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(boltBucket).Delete([]byte(k)) })
}
func (b boltBlobs) sync() error  { return b.db.Sync() }
func (b boltBlobs) close() error { return b.db.Close() }

type pebbleBlobs struct {
	db *pebble.DB
	wo *pebble.WriteOptions
}

func openPebbleBlobs(dir string, durable bool) (blobStore, error) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		return nil, err
	}
	wo := pebble.Sync
	if !durable {
		wo = pebble.NoSync
	}
	return pebbleBlobs{db, wo}, nil
}

func (p pebbleBlobs) set(k string, v []byte) error { return p.db.Set([]byte(k), v, p.wo) }
func (p pebbleBlobs) get(k string) ([]byte, error) {
	v, c, err := p.db.Get([]byte(k))
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(v)
	return out, c.Close()
}
func (p pebbleBlobs) del(k string) error { return p.db.Delete([]byte(k), p.wo) }
func (p pebbleBlobs) sync() error        { return p.db.LogData(nil, pebble.Sync) }
func (p pebbleBlobs) close() error       { return p.db.Close() }

// settle flushes the memtable and compacts, as a store that has been in
// use for a while would be: reads then find each value in one table, not
// in a stack of level-0 tables and memtables written moments ago.
func (p pebbleBlobs) settle() error {
	if err := p.db.Flush(); err != nil {
		return err
	}
	return p.db.Compact(context.Background(), []byte("k"), []byte("l"), true)
}

// quietLogger keeps pebble's informational lines out of the table.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)         {}
func (quietLogger) Errorf(f string, args ...any) { fmt.Fprintf(os.Stderr, "pebble: "+f+"\n", args...) }
func (quietLogger) Fatalf(f string, args ...any) { panic(fmt.Sprintf("pebble: "+f, args...)) }

type sqliteBlobs struct {
	db            *sql.DB
	put, sel, rem *sql.Stmt
}

func openSQLite(dir string, durable bool) (blobStore, error) {
	mode := "FULL"
	if !durable {
		mode = "OFF"
	}
	dsn := fmt.Sprintf("file:%s?_pragma=journal_mode(WAL)&_pragma=synchronous(%s)&_pragma=busy_timeout(30000)",
		filepath.Join(dir, "kv.sqlite"), mode)
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	s := &sqliteBlobs{db: db}
	if _, err = db.Exec(`CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB NOT NULL)`); err == nil {
		s.put, err = db.Prepare(`INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v`)
	}
	if err == nil {
		s.sel, err = db.Prepare(`SELECT v FROM kv WHERE k = ?`)
	}
	if err == nil {
		s.rem, err = db.Prepare(`DELETE FROM kv WHERE k = ?`)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *sqliteBlobs) set(k string, v []byte) error { _, err := s.put.Exec(k, v); return err }
func (s *sqliteBlobs) get(k string) (v []byte, err error) {
	err = s.sel.QueryRow(k).Scan(&v)
	return v, err
}
func (s *sqliteBlobs) del(k string) error { _, err := s.rem.Exec(k); return err }
func (s *sqliteBlobs) sync() error {
	_, err := s.db.Exec(`PRAGMA wal_checkpoint(FULL)`)
	return err
}
func (s *sqliteBlobs) close() error { return s.db.Close() }

// blobSizes are the value sizes of the Blobs group.
var blobSizes = []struct {
	n    int
	name string
}{{1 << 10, "1 KiB"}, {64 << 10, "64 KiB"}, {1 << 20, "1 MiB"}}

// blobRows are the rows of the Blobs group, in table order.
func blobRows(manyKeys int) []*Row {
	const g = groupBlobs
	var rows []*Row
	for _, sz := range blobSizes {
		n, name := sz.n, sz.name
		beatBest := func(text string) []Goal {
			if n < 64<<10 {
				return nil
			}
			var gs []Goal
			for _, c := range []string{cBolt, cPebbleDB, cSQLite} {
				gs = append(gs, Goal{Against: c, Min: 1, Text: text})
			}
			return gs
		}
		durable1 := beatBest("at 64 KiB and 1 MiB, durable Set at least 1.0x the best of bbolt, pebble and SQLite")
		if n == 1<<20 {
			durable1 = append(durable1, Goal{Against: cOSAtomic, Min: 0.95, Text: "durable Set of a 1 MiB value at least 0.95x the full protocol"})
		} else if n == 1<<10 {
			durable1 = append(durable1, Goal{Against: cOSAtomic, Min: 0.95, Text: "durable Set of a new 1 KiB key, 1 goroutine, at least 0.95x the full protocol"})
		}
		durable8 := beatBest("at 64 KiB and 1 MiB, durable Set at least 1.0x the best of bbolt, pebble and SQLite")
		if n == 1<<10 {
			durable8 = append(durable8, Goal{Against: cOSAtomic, Min: 1.2, Text: "durable Set of a new 1 KiB key, 8 goroutines, at least 1.2x the full protocol from 8 goroutines"})
		}
		rows = append(rows,
			&Row{Group: g, Op: "Set a new key durably, " + name + ", 1 goroutine", Short: "Set durable " + name + ", 1 goroutine", Unit: Ops,
				Setup: blobSet(n, 1, true), Goals: durable1,
				Note: "Each store as durable as its documentation makes a write: dirstore's default; bbolt Update (fsync per commit); pebble Set with Sync; SQLite in WAL mode with synchronous=FULL. os tmp+rename is the full protocol a careful program uses without a manifest: temporary file, write, fsync, rename, fsync of the directory. file floor is the least a file per value can do: create the file under its own name, write, fsync, fsync of the directory; no manifest, no checksum (its reads: open, fstat, pread, close). checked floor is the file floor with a CRC-32C after the value, verified by every read."},
			&Row{Group: g, Op: "Set a new key durably, " + name + ", 8 goroutines", Short: "Set durable " + name + ", 8 goroutines", Unit: Ops,
				Setup: blobSet(n, 8, true), Goals: durable8,
				Note: "As above from 8 goroutines; bbolt through DB.Batch, its documented path for concurrent writers; SQLite writers wait for its write lock (busy_timeout)."},
			&Row{Group: g, Op: "Set a new key, " + name + ", no fsync", Short: "Set no fsync " + name, Unit: Ops,
				Setup: blobSet(n, 1, false),
				Note:  "dirstore with NoSync (and its write buffer), bbolt with NoSync, pebble with NoSync, SQLite with synchronous=OFF. After each batch every contender makes its writes durable, untimed (dirstore Sync, bbolt Sync, a synced pebble log record, a SQLite WAL checkpoint); the notes give the rates with that counted."},
			&Row{Group: g, Op: "Get, " + name + ", hot", Short: "Get hot " + name, Unit: Ops,
				Setup: blobGet(n, false), Goals: beatBest("at 64 KiB and 1 MiB, Get at least 1.0x the best of bbolt, pebble and SQLite"),
				Note: "Keys read at random, all of them in memory (page cache, and each store's own caches)."},
			&Row{Group: g, Op: "Get, " + name + ", cold", Short: "Get cold " + name, Unit: Ops,
				Setup: blobGet(n, true), Goals: beatBest("at 64 KiB and 1 MiB, Get at least 1.0x the best of bbolt, pebble and SQLite"),
				Note: "Before each batch every store is closed, every file under its directory dropped from the page cache (POSIX_FADV_DONTNEED after fsync) and the store reopened, untimed; then each key is read once, in random order."},
			&Row{Group: g, Op: "Delete a key, " + name, Short: "Delete " + name, Unit: Ops, Phase: 2,
				Setup: blobDelete(n),
				Note:  "Durable deletes of keys written (untimed) before each batch."},
		)
	}
	rows = append(rows, &Row{Group: g, Op: "Reopen with " + thousands(manyKeys) + " keys, 1 KiB", Short: "Reopen " + thousands(manyKeys) + " keys", Unit: Ops,
		Setup: blobReopen(manyKeys),
		Note:  "Open of a cleanly closed store of 1 KiB values, then one Get (Close is not timed). Only at 1 KiB: 100,000 values of 1 MiB would be 100 GB."})
	return rows
}

// blobBatchOps caps a batch of writes at about 100 MiB of values.
func blobBatchOps(n, g int) int {
	return max(16*g, min(800*g, (100<<20)/n))
}

// openBlobs opens every contender in a new directory of its own.
func openBlobs(e *Env, row string, durable bool) ([]blobStore, []string, error) {
	var stores []blobStore
	var paths []string
	for _, o := range blobOpeners {
		d, err := e.Subdir(row + "-" + o.name)
		if err == nil {
			var s blobStore
			if s, err = o.open(d, durable); err == nil {
				stores, paths = append(stores, s), append(paths, d)
				continue
			}
		}
		for _, s := range stores {
			s.close()
		}
		return nil, nil, fmt.Errorf("%s: %w", o.name, err)
	}
	return stores, paths, nil
}

func closeAll(stores []blobStore) {
	for _, s := range stores {
		s.close()
	}
}

func blobSet(n, g int, durable bool) func(e *Env) (*Setup, error) {
	return func(e *Env) (*Setup, error) {
		stores, _, err := openBlobs(e, "blobset", durable)
		if err != nil {
			return nil, err
		}
		v := value(n)
		maxOps := blobBatchOps(n, g)
		contender := func(name string, set kvSet, sync func() error) Contender {
			var next atomic.Int64
			return Contender{Name: name, Batch: func(budget time.Duration) (Result, error) {
				r, err := parallel(g, budget, maxOps, func(int, int) error {
					return set(key(int(next.Add(1))), v)
				})
				if err != nil || durable {
					return r, err
				}
				t := time.Now()
				err = sync()
				r.Deferred = time.Since(t)
				return r, err
			}}
		}
		var cs []Contender
		for i, s := range stores {
			set := s.set
			if b, ok := s.(boltBlobs); ok && g > 1 {
				set = b.batchSet
			}
			cs = append(cs, contender(blobOpeners[i].name, set, s.sync))
		}
		closeFn := func() { closeAll(stores) }
		if durable {
			d, err := e.Subdir("blobset-osatomic")
			if err != nil {
				closeFn()
				return nil, err
			}
			atomicSet, done, err := osTmpRename(d)
			if err != nil {
				closeFn()
				return nil, err
			}
			cs = append(cs, contender(cOSAtomic, atomicSet, nil))
			closeFn = func() { closeAll(stores); done() }
		}
		return &Setup{Ours: cs[0], Others: cs[1:], Close: closeFn}, nil
	}
}

// osTmpRename is the full protocol of a durable new file: temporary file,
// write, fsync, rename, fsync of the directory.
func osTmpRename(dir string) (kvSet, func(), error) {
	dirfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	set := func(k string, v []byte) error {
		tmp := filepath.Join(dir, k+".tmp")
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := f.Write(v); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, k)); err != nil {
			return err
		}
		return unix.Fsync(dirfd)
	}
	return set, func() { unix.Close(dirfd) }, nil
}

// fillBlobs writes keys 1..count of value v into s and makes them durable
// (and, for an LSM, compacted).
func fillBlobs(s blobStore, count int, v []byte) error {
	for i := 1; i <= count; i++ {
		if err := s.set(key(i), v); err != nil {
			return err
		}
	}
	if st, ok := s.(interface{ settle() error }); ok {
		return st.settle()
	}
	return s.sync()
}

func blobGet(n int, cold bool) func(e *Env) (*Setup, error) {
	return func(e *Env) (*Setup, error) {
		count := min(2000, max(50, (64<<20)/n)) // keys read: 2,000 at 1 KiB, 1,000 at 64 KiB, 64 at 1 MiB
		stores, paths, err := openBlobs(e, "blobget", false)
		if err != nil {
			return nil, err
		}
		v := value(n)
		for i, s := range stores {
			if err := fillBlobs(s, count, v); err != nil {
				closeAll(stores)
				return nil, fmt.Errorf("%s: %w", blobOpeners[i].name, err)
			}
		}
		var cs []Contender
		for i := range stores {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			cs = append(cs, Contender{Name: blobOpeners[i].name, Batch: func(budget time.Duration) (Result, error) {
				if !cold {
					return loop(budget, 0, func(int) error {
						k := key(1 + rng.IntN(count))
						got, err := stores[i].get(k)
						return checkBlob(k, got, err, n)
					})
				}
				// Cold: reopen with nothing of the store in memory, untimed.
				if err := stores[i].close(); err != nil {
					return Result{}, err
				}
				if err := dropCacheTree(paths[i]); err != nil {
					return Result{}, err
				}
				s, err := blobOpeners[i].open(paths[i], false)
				if err != nil {
					return Result{}, err
				}
				stores[i] = s
				order := rng.Perm(count)
				return loop(budget, count, func(j int) error {
					k := key(1 + order[j])
					got, err := s.get(k)
					return checkBlob(k, got, err, n)
				})
			}})
		}
		return &Setup{Ours: cs[0], Others: cs[1:], Close: func() { closeAll(stores) }}, nil
	}
}

// checkBlob checks that a read returned the n bytes of value(n).
func checkBlob(k string, got []byte, err error, n int) error {
	if err != nil {
		return fmt.Errorf("get %s: %w", k, err)
	}
	if len(got) != n || got[0] != value(1)[0] {
		return fmt.Errorf("get %s: %d bytes, want %d", k, len(got), n)
	}
	return nil
}

func blobDelete(n int) func(e *Env) (*Setup, error) {
	return func(e *Env) (*Setup, error) {
		stores, _, err := openBlobs(e, "blobdel", true)
		if err != nil {
			return nil, err
		}
		v := value(n)
		perBatch := blobBatchOps(n, 1)
		var cs []Contender
		for i, s := range stores {
			next := 0
			cs = append(cs, Contender{Name: blobOpeners[i].name, Batch: func(budget time.Duration) (Result, error) {
				first := next + 1
				for range perBatch { // untimed: the keys this batch deletes
					next++
					if err := s.set(key(next), v); err != nil {
						return Result{}, err
					}
				}
				if err := s.sync(); err != nil {
					return Result{}, err
				}
				return loop(budget, perBatch, func(j int) error { return s.del(key(first + j)) })
			}})
		}
		return &Setup{Ours: cs[0], Others: cs[1:], Close: func() { closeAll(stores) }}, nil
	}
}

func blobReopen(count int) func(e *Env) (*Setup, error) {
	return func(e *Env) (*Setup, error) {
		stores, paths, err := openBlobs(e, "blobreopen", false)
		if err != nil {
			return nil, err
		}
		v := value(1 << 10)
		for i, s := range stores {
			err := fillBlobs(s, count, v)
			if cerr := s.close(); err == nil {
				err = cerr
			}
			if err != nil {
				closeAll(stores[i+1:])
				return nil, fmt.Errorf("%s: %w", blobOpeners[i].name, err)
			}
		}
		var cs []Contender
		for i := range stores {
			cs = append(cs, Contender{Name: blobOpeners[i].name, Batch: func(budget time.Duration) (Result, error) {
				var r Result
				for r.Time < budget && r.Work < 50 {
					t := time.Now()
					s, err := blobOpeners[i].open(paths[i], true)
					if err != nil {
						return r, err
					}
					got, err := s.get(key(count))
					r.Time += time.Since(t)
					if err = errors.Join(checkBlob(key(count), got, err, 1<<10), s.close()); err != nil {
						return r, err
					}
					r.Work++
				}
				return r, nil
			}})
		}
		return &Setup{Ours: cs[0], Others: cs[1:]}, nil
	}
}

// dropCacheTree drops every regular file under dir from the page cache
// (after an fsync: dirty pages cannot be dropped).
func dropCacheTree(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: path, Err: err}
		}
		defer unix.Close(fd)
		if err := unix.Fsync(fd); err != nil {
			return &os.PathError{Op: "fsync", Path: path, Err: err}
		}
		if err := unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED); err != nil {
			return &os.PathError{Op: "fadvise", Path: path, Err: err}
		}
		return nil
	})
}
