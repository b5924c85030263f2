package suite

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/peterbourgon/diskv/v3"

	"github.com/dirstore/dirstore"
)

// Store against diskv and plain files: the contenders' names.
const (
	cDiskv      = "diskv"
	cDiskvTemp  = "diskv TempDir"
	cDiskvCache = "diskv cache"
	cDiskvIndex = "diskv BTreeIndex"
	cOS         = "os files"
	cNewFile    = "new file per write"
	cOSAtomic   = "os tmp+rename"

	valueSize = 1024
)

// storeRows are the rows of the Store group, in table order.
func storeRows(manyKeys int) []*Row {
	many := thousands(manyKeys)
	const g = groupStore
	return []*Row{
		{Group: g, Op: "Set a new key, 1 KiB, no fsync", Short: "Set new key", Unit: Ops, Setup: setNew,
			Note: "A new key each time, at most 3,000 per batch. dirstore with Options.NoSync; diskv with a flat Transform, with and without TempDir (temporary file, then rename); os files: OpenFile(O_CREATE|O_EXCL), Write, Close. Nothing is fsynced."},
		{Group: g, Op: "Overwrite a key written moments ago, 1 KiB, no fsync", Short: "Overwrite", Unit: Ops, Setup: overwrite, Phase: 1,
			Goals: []Goal{{Against: cDiskv, Min: 10, Text: "Store overwrite at least 10x diskv"}},
			Note:  "100 keys written at setup, overwritten in turn: each one milliseconds after its previous write. diskv truncates the file (O_TRUNC), or with TempDir renames a new one onto it, and os files use os.WriteFile (O_TRUNC): either way ext4's auto_da_alloc forces the old data to disk first. dirstore (NoSync, write buffer off) writes a new file and removes the old one at its next checkpoint. new file per write is the floor of that design: each write creates the key's next file (os.WriteFile); the one before is removed after the batch, untimed, as dirstore's are by its checkpoint."},
		{Group: g, Op: "Set a new key durably, 1 KiB, 1 goroutine", Short: "Set durable, 1 goroutine", Unit: Ops, Setup: setDurable(1),
			Note: "dirstore with default options: fsync of the file and of the directory, then a synced manifest commit. diskv WriteStream(sync=true) fsyncs the file but never the directory, so a new key can still vanish in a crash; os files: create, write, fsync, close (same gap); os tmp+rename is the full protocol: temporary file, fsync, rename, fsync of the directory."},
		{Group: g, Op: "Set a new key durably, 1 KiB, 8 goroutines", Short: "Set durable, 8 goroutines", Unit: Ops, Setup: setDurable(8),
			Note: "As above from 8 goroutines. diskv holds its lock across the whole write, fsync included, so its writers queue; dirstore shares directory and manifest syncs between concurrent writers (group commit)."},
		{Group: g, Op: "Get, 1 KiB, hot (page cache)", Short: "Get hot", Unit: Ops, Setup: getHot,
			Goals: []Goal{{Against: cDiskv, Min: 1, Text: "Store Get at least 1.0x diskv (uncached)"}},
			Note:  "1,000 keys, read at random, with their files in the page cache. diskv cache: CacheSizeMax 16 MiB, warmed, so it answers from a Go map without touching the file system."},
		{Group: g, Op: "Get, 1 KiB, cold (data not in page cache)", Short: "Get cold", Unit: Ops, Setup: getCold,
			Goals: []Goal{{Against: cDiskv, Min: 1, Text: "Store Get at least 1.0x diskv (uncached)"}},
			Note:  "Cold means: before each batch every value file gets POSIX_FADV_DONTNEED (the files were fsynced, so no page is dirty, and mincore confirms that the pages are gone), then each of 2,000 keys is read once, in random order, so every read goes to the disk. Only the data is cold: directory entries, inodes and dirstore's manifest (a pebble database, and the store's cache of its entries) stay in memory, as after any recent use of the directory; dropping them would take drop_caches, for the whole machine. diskv's cache is off (with it on, the reads would come from memory)."},
		{Group: g, Op: "Delete a 1 KiB key", Short: "Delete", Unit: Ops, Setup: deleteKeys, Phase: 2,
			Note: "Each batch deletes keys made (and fsynced) before it, untimed. dirstore (NoSync) commits the deletion to its manifest and removes the file at its next checkpoint, which runs untimed after the batch (its cost is below); diskv (Erase: stat, unlink) and os.Remove unlink at once. Run last, as ext4 without a journal slows file creation for minutes after many deletions."},
		{Group: g, Op: "List " + many + " keys", Short: "List " + many + " keys", Unit: Keys, Setup: listKeys,
			Note: "All the keys. dirstore: Keys, sorted, from the manifest. diskv: Keys, a filepath.Walk that lstats every file (unsorted). diskv BTreeIndex: the Keys of the in-memory index diskv builds at startup. os files: os.ReadDir (sorted names, no stat)."},
		{Group: g, Op: "Reopen with " + many + " keys", Short: "Reopen, " + many + " keys", Unit: Ops, Setup: reopen,
			Goals: []Goal{{Against: cDiskvIndex, Min: 5, Text: "Store reopen of 100,000 keys at least 5x faster than diskv's startup with an index"}},
			Note:  "dirstore: Open of a cleanly closed store, then Len (Close, which syncs, is not timed). diskv BTreeIndex: New with a BTreeIndex, which walks the directory (an lstat per file) to build its index. os files: os.ReadDir of the same directory (no index)."},
	}
}

// flatDiskv returns a diskv over dir with one flat directory, as dirstore
// and plain files have.
func flatDiskv(dir string, mod func(*diskv.Options)) *diskv.Diskv {
	o := diskv.Options{BasePath: dir, Transform: func(string) []string { return nil }, FilePerm: 0o600, PathPerm: 0o700}
	if mod != nil {
		mod(&o)
	}
	return diskv.New(o)
}

func withTemp(dir string) func(*diskv.Options) {
	return func(o *diskv.Options) { o.TempDir = dir }
}

// kvSet is how one contender stores a value.
type kvSet func(k string, v []byte) error

// storeContender runs op for budget on a NoSync store, then runs the store's
// checkpoint (Sync) untimed and reports it as deferred work.
func storeContender(s *dirstore.Store, maxOps int, op func(i int) error) Contender {
	return Contender{Name: "dirstore", Batch: func(budget time.Duration) (Result, error) {
		r, err := loop(budget, maxOps, op)
		if err != nil {
			return r, err
		}
		t := time.Now()
		err = s.Sync()
		r.Deferred = time.Since(t)
		return r, err
	}}
}

// openStore opens a store in a new directory; the Setup's Close closes it.
func openStore(e *Env, name string, opts *dirstore.Options) (*dirstore.Store, error) {
	dir, err := e.Subdir(name)
	if err != nil {
		return nil, err
	}
	return dirstore.Open(filepath.Join(dir, "store"), opts)
}

// dirs makes n new directories.
func dirs(e *Env, names ...string) ([]string, error) {
	out := make([]string, len(names))
	for i, n := range names {
		d, err := e.Subdir(n)
		if err != nil {
			return nil, err
		}
		out[i] = d
	}
	return out, nil
}

func osCreate(dir string) kvSet {
	return func(k string, v []byte) error {
		f, err := os.OpenFile(filepath.Join(dir, k), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := f.Write(v); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
}

// written records the files a contender wrote in a batch, so that they can
// be flushed after it, untimed: no contender leaves writeback for the next
// one's batch to compete with (dirstore's own is its checkpoint, Store.Sync).
type written struct {
	dir   string
	names map[string]bool
}

func newWritten(dir string) *written { return &written{dir: dir, names: map[string]bool{}} }

// wrap returns set, recording each key it writes.
func (w *written) wrap(set kvSet) kvSet {
	return func(k string, v []byte) error {
		w.names[k] = true
		return set(k, v)
	}
}

// flush fsyncs the files recorded since the last flush, and the directory.
func (w *written) flush() error {
	for k := range w.names {
		if err := fsyncFile(filepath.Join(w.dir, k)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	clear(w.names)
	return fsyncFile(w.dir)
}

// flushed runs batch and then w.flush, untimed.
func flushed(w *written, batch func(time.Duration) (Result, error)) func(time.Duration) (Result, error) {
	return func(budget time.Duration) (Result, error) {
		r, err := batch(budget)
		if err != nil {
			return r, err
		}
		return r, w.flush()
	}
}

// counted gives each batch of set fresh keys, and flushes them after it.
func counted(name, dir string, maxOps int, set kvSet) Contender {
	v := value(valueSize)
	next := 0
	w := newWritten(dir)
	set = w.wrap(set)
	return Contender{Name: name, Batch: flushed(w, func(budget time.Duration) (Result, error) {
		return loop(budget, maxOps, func(int) error {
			next++
			return set(key(next), v)
		})
	})}
}

func setNew(e *Env) (*Setup, error) {
	const maxOps = 3000
	s, err := openStore(e, "setnew-dirstore", noSync())
	if err != nil {
		return nil, err
	}
	d, err := dirs(e, "setnew-diskv", "setnew-diskvtmp", "setnew-diskvtmp-tmp", "setnew-os")
	if err != nil {
		s.Close()
		return nil, err
	}
	dv, dt := flatDiskv(d[0], nil), flatDiskv(d[1], withTemp(d[2]))
	v := value(valueSize)
	next := 0
	return &Setup{
		Ours: storeContender(s, maxOps, func(int) error { next++; return s.Set(key(next), v) }),
		Others: []Contender{
			counted(cDiskv, d[0], maxOps, dv.Write),
			counted(cDiskvTemp, d[1], maxOps, dt.Write),
			counted(cOS, d[3], maxOps, osCreate(d[3])),
		},
		Close: func() { s.Close() },
	}, nil
}

func overwrite(e *Env) (*Setup, error) {
	const keys, maxOps = 100, 2000
	s, err := openStore(e, "overwrite-dirstore", noSync())
	if err != nil {
		return nil, err
	}
	d, err := dirs(e, "overwrite-diskv", "overwrite-diskvtmp", "overwrite-diskvtmp-tmp", "overwrite-os", "overwrite-newfile")
	if err != nil {
		s.Close()
		return nil, err
	}
	dv, dt := flatDiskv(d[0], nil), flatDiskv(d[1], withTemp(d[2]))
	osw := func(k string, v []byte) error { return os.WriteFile(filepath.Join(d[3], k), v, 0o600) }
	// The floor of a file per version, as dirstore keeps: each write
	// creates the key's next file. The one before is removed after the
	// batch, untimed, as dirstore's checkpoint (Store.Sync, untimed after
	// each batch) removes what its collector has not yet: the least this
	// design can cost.
	nw := newWritten(d[4])
	versions := map[string]int{}
	var superseded []string
	newFile := func(k string, v []byte) error {
		n := versions[k] + 1
		name := fmt.Sprint(k, "#", n)
		if err := os.WriteFile(filepath.Join(d[4], name), v, 0o600); err != nil {
			return err
		}
		nw.names[name] = true
		versions[k] = n
		if n > 1 {
			superseded = append(superseded, filepath.Join(d[4], fmt.Sprint(k, "#", n-1)))
		}
		return nil
	}
	removeSuperseded := func() error {
		for _, name := range superseded {
			if err := os.Remove(name); err != nil {
				return err
			}
		}
		superseded = superseded[:0]
		return nil
	}
	v := value(valueSize)
	sets := []kvSet{s.Set, dv.Write, dt.Write, osw, newFile}
	for _, set := range sets {
		for i := range keys {
			if err := set(key(i), v); err != nil {
				s.Close()
				return nil, err
			}
		}
	}
	if err := s.Sync(); err != nil {
		s.Close()
		return nil, err
	}
	nextNew := 0
	newFileBatch := flushed(nw, func(budget time.Duration) (Result, error) {
		r, err := loop(budget, maxOps, func(int) error {
			nextNew++
			return newFile(key(nextNew%keys), v)
		})
		if err == nil {
			err = removeSuperseded() // untimed: loop has returned
		}
		return r, err
	})
	rotating := func(name, dir string, set kvSet) Contender {
		next := 0
		w := newWritten(dir)
		set = w.wrap(set)
		return Contender{Name: name, Batch: flushed(w, func(budget time.Duration) (Result, error) {
			return loop(budget, maxOps, func(int) error {
				next++
				return set(key(next%keys), v)
			})
		})}
	}
	next := 0
	return &Setup{
		Ours: storeContender(s, maxOps, func(int) error { next++; return s.Set(key(next%keys), v) }),
		Others: []Contender{
			rotating(cDiskv, d[0], dv.Write),
			rotating(cDiskvTemp, d[1], dt.Write),
			rotating(cOS, d[3], osw),
			{Name: cNewFile, Batch: newFileBatch},
		},
		Close: func() { s.Close() },
	}, nil
}

func setDurable(g int) func(e *Env) (*Setup, error) {
	return func(e *Env) (*Setup, error) {
		maxOps := 800 * g
		s, err := openStore(e, "durable-dirstore", nil)
		if err != nil {
			return nil, err
		}
		d, err := dirs(e, "durable-diskv", "durable-diskvtmp", "durable-diskvtmp-tmp", "durable-os", "durable-osatomic")
		if err != nil {
			s.Close()
			return nil, err
		}
		osAtomic, closeAtomic, err := osTmpRename(d[4])
		if err != nil {
			s.Close()
			return nil, err
		}
		dv, dt := flatDiskv(d[0], nil), flatDiskv(d[1], withTemp(d[2]))
		v := value(valueSize)
		osSync := func(k string, v []byte) error {
			f, err := os.OpenFile(filepath.Join(d[3], k), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
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
			return f.Close()
		}
		syncWrite := func(dv *diskv.Diskv) kvSet {
			return func(k string, v []byte) error { return dv.WriteStream(k, bytes.NewReader(v), true) }
		}
		contender := func(name string, set kvSet) Contender {
			var next atomic.Int64
			return Contender{Name: name, Batch: func(budget time.Duration) (Result, error) {
				return parallel(g, budget, maxOps, func(int, int) error {
					return set(key(int(next.Add(1))), v)
				})
			}}
		}
		return &Setup{
			Ours: contender("dirstore", s.Set),
			Others: []Contender{
				contender(cDiskv, syncWrite(dv)),
				contender(cDiskvTemp, syncWrite(dt)),
				contender(cOS, osSync),
				contender(cOSAtomic, osAtomic),
			},
			Close: func() { s.Close(); closeAtomic() },
		}, nil
	}
}

// readers are Get's contenders over n keys already written.
type getFixture struct {
	store        *dirstore.Store
	diskvDir     string
	diskv, cache *diskv.Diskv
	osDir        string
}

func makeGetFixture(e *Env, name string, n int, durable bool) (*getFixture, error) {
	s, err := openStore(e, name+"-dirstore", noSync())
	if err != nil {
		return nil, err
	}
	d, err := dirs(e, name+"-diskv", name+"-os")
	if err != nil {
		s.Close()
		return nil, err
	}
	f := &getFixture{store: s, diskvDir: d[0], osDir: d[1],
		diskv: flatDiskv(d[0], nil),
		cache: flatDiskv(d[0], func(o *diskv.Options) { o.CacheSizeMax = 16 << 20 }),
	}
	v := value(valueSize)
	for i := range n {
		if err := s.Set(key(i), v); err != nil {
			s.Close()
			return nil, err
		}
		if err := f.diskv.Write(key(i), v); err != nil {
			s.Close()
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(f.osDir, key(i)), v, 0o600); err != nil {
			s.Close()
			return nil, err
		}
	}
	if err := s.Sync(); err != nil {
		s.Close()
		return nil, err
	}
	if durable {
		for _, dir := range d {
			if err := fsyncDir(dir); err != nil {
				s.Close()
				return nil, err
			}
		}
	}
	return f, nil
}

// checkValue fails on a wrong value, so that no contender is timed doing
// less than the others.
func checkValue(name string, v []byte, err error) error {
	if err != nil {
		return err
	}
	if len(v) != valueSize {
		return fmt.Errorf("%s: read %d bytes, want %d", name, len(v), valueSize)
	}
	return nil
}

func getters(f *getFixture) map[string]func(k string) error {
	return map[string]func(k string) error{
		"dirstore": func(k string) error { v, err := f.store.Get(k); return checkValue(k, v, err) },
		cDiskv:     func(k string) error { v, err := f.diskv.Read(k); return checkValue(k, v, err) },
		cDiskvCache: func(k string) error {
			v, err := f.cache.Read(k)
			return checkValue(k, v, err)
		},
		cOS: func(k string) error {
			v, err := os.ReadFile(filepath.Join(f.osDir, k))
			return checkValue(k, v, err)
		},
	}
}

func getHot(e *Env) (*Setup, error) {
	const n = 1000
	f, err := makeGetFixture(e, "gethot", n, false)
	if err != nil {
		return nil, err
	}
	get := getters(f)
	for i := range n { // warm diskv's cache
		if err := get[cDiskvCache](key(i)); err != nil {
			f.store.Close()
			return nil, err
		}
	}
	order := perm(1<<16, 1)
	reader := func(name string) Contender {
		g, next := get[name], 0
		return Contender{Name: name, Batch: func(budget time.Duration) (Result, error) {
			return loop(budget, 0, func(int) error {
				next++
				return g(key(order[next%len(order)] % n))
			})
		}}
	}
	return &Setup{
		Ours:   reader("dirstore"),
		Others: []Contender{reader(cDiskv), reader(cDiskvCache), reader(cOS)},
		Close:  func() { f.store.Close() },
	}, nil
}

func getCold(e *Env) (*Setup, error) {
	const n = 2000
	f, err := makeGetFixture(e, "getcold", n, true)
	if err != nil {
		return nil, err
	}
	get := getters(f)
	dirOf := map[string]string{"dirstore": f.store.Dir(), cDiskv: f.diskvDir, cOS: f.osDir}
	round := uint64(0)
	reader := func(name string) Contender {
		g := get[name]
		return Contender{Name: name, Batch: func(budget time.Duration) (Result, error) {
			if err := dropCache(dirOf[name]); err != nil {
				return Result{}, err
			}
			round++
			order := perm(n, round)
			return loop(budget, n, func(i int) error { return g(key(order[i])) })
		}}
	}
	return &Setup{
		Ours:   reader("dirstore"),
		Others: []Contender{reader(cDiskv), reader(cOS)},
		Close:  func() { f.store.Close() },
	}, nil
}

func deleteKeys(e *Env) (*Setup, error) {
	const n = 1000
	s, err := openStore(e, "delete-dirstore", noSync())
	if err != nil {
		return nil, err
	}
	d, err := dirs(e, "delete-diskv", "delete-os")
	if err != nil {
		s.Close()
		return nil, err
	}
	dv := flatDiskv(d[0], nil)
	v := value(valueSize)
	first := 0
	// fill makes n new keys with set, makes them durable, and returns the
	// first one.
	fill := func(set kvSet, sync func() error) (int, error) {
		start := first
		first += n
		for i := start; i < start+n; i++ {
			if err := set(key(i), v); err != nil {
				return 0, err
			}
		}
		return start, sync()
	}
	contender := func(name string, set kvSet, sync func() error, del func(string) error, deferred func() error) Contender {
		return Contender{Name: name, Batch: func(budget time.Duration) (Result, error) {
			start, err := fill(set, sync)
			if err != nil {
				return Result{}, err
			}
			r, err := loop(budget, n, func(i int) error { return del(key(start + i)) })
			if err != nil || deferred == nil {
				return r, err
			}
			t := time.Now()
			err = deferred()
			r.Deferred = time.Since(t)
			return r, err
		}}
	}
	return &Setup{
		Ours: contender("dirstore", s.Set, s.Sync, s.Delete, s.Sync),
		Others: []Contender{
			contender(cDiskv, dv.Write, func() error { return fsyncDir(d[0]) }, dv.Erase, nil),
			contender(cOS, osCreate(d[1]), func() error { return fsyncDir(d[1]) },
				func(k string) error { return os.Remove(filepath.Join(d[1], k)) }, nil),
		},
		Close: func() { s.Close() },
	}, nil
}

// manyKeys is a cleanly closed store and a directory of plain files (which
// diskv reads as its own), each with Env.ReopenKeys keys.
type manyKeys struct {
	storeDir, flatDir string
}

func (e *Env) manyKeys() (*manyKeys, error) {
	v, err := e.Shared("manykeys", func() (any, error) {
		d, err := dirs(e, "many-dirstore", "many-files")
		if err != nil {
			return nil, err
		}
		m := &manyKeys{storeDir: filepath.Join(d[0], "store"), flatDir: d[1]}
		s, err := dirstore.Open(m.storeDir, noSync())
		if err != nil {
			return nil, err
		}
		val := value(100)
		for i := range e.ReopenKeys {
			if err := s.Set(key(i), val); err != nil {
				s.Close()
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(m.flatDir, key(i)), val, 0o600); err != nil {
				s.Close()
				return nil, err
			}
		}
		return m, s.Close()
	})
	if err != nil {
		return nil, err
	}
	return v.(*manyKeys), nil
}

func less(a, b string) bool { return a < b }

func listKeys(e *Env) (*Setup, error) {
	m, err := e.manyKeys()
	if err != nil {
		return nil, err
	}
	s, err := dirstore.Open(m.storeDir, nil)
	if err != nil {
		return nil, err
	}
	idx := &diskv.BTreeIndex{}
	dv := flatDiskv(m.flatDir, func(o *diskv.Options) { o.Index, o.IndexLess = idx, less })
	want := e.ReopenKeys
	check := func(name string, n int) error {
		if n != want {
			return fmt.Errorf("%s listed %d keys, want %d", name, n, want)
		}
		return nil
	}
	lister := func(name string, list func() (int, error)) Contender {
		return Contender{Name: name, Batch: func(budget time.Duration) (Result, error) {
			r, err := loop(budget, 0, func(int) error {
				n, err := list()
				if err != nil {
					return err
				}
				return check(name, n)
			})
			r.Work *= float64(want)
			return r, err
		}}
	}
	return &Setup{
		Ours: lister("dirstore", func() (int, error) {
			n := 0
			for _, err := range s.Keys() {
				if err != nil {
					return n, err
				}
				n++
			}
			return n, nil
		}),
		Others: []Contender{
			lister(cDiskv, func() (int, error) {
				n := 0
				for range dv.Keys(nil) {
					n++
				}
				return n, nil
			}),
			lister(cDiskvIndex, func() (int, error) { return len(idx.Keys("", want+1)), nil }),
			lister(cOS, func() (int, error) {
				ents, err := os.ReadDir(m.flatDir)
				return len(ents), err
			}),
		},
		Close: func() { s.Close() },
	}, nil
}

func reopen(e *Env) (*Setup, error) {
	m, err := e.manyKeys()
	if err != nil {
		return nil, err
	}
	want := e.ReopenKeys
	return &Setup{
		Ours: Contender{Name: "dirstore", Batch: func(budget time.Duration) (Result, error) {
			// Only Open and Len are timed; Close (which syncs) is not.
			var r Result
			for start := time.Now(); r.Work == 0 || time.Since(start) < budget; {
				t := time.Now()
				s, err := dirstore.Open(m.storeDir, nil)
				if err != nil {
					return r, err
				}
				n := s.Len()
				r.Time += time.Since(t)
				r.Work++
				if err := s.Close(); err != nil {
					return r, err
				}
				if n != want {
					return r, fmt.Errorf("dirstore reopened with %d keys, want %d", n, want)
				}
			}
			return r, nil
		}},
		Others: []Contender{
			{Name: cDiskvIndex, Batch: func(budget time.Duration) (Result, error) {
				return loop(budget, 0, func(int) error {
					idx := &diskv.BTreeIndex{}
					flatDiskv(m.flatDir, func(o *diskv.Options) { o.Index, o.IndexLess = idx, less })
					if n := idx.Len(); n != want {
						return fmt.Errorf("diskv indexed %d keys, want %d", n, want)
					}
					return nil
				})
			}},
			{Name: cOS, Batch: func(budget time.Duration) (Result, error) {
				return loop(budget, 0, func(int) error {
					ents, err := os.ReadDir(m.flatDir)
					if err == nil && len(ents) != want {
						err = fmt.Errorf("ReadDir found %d files, want %d", len(ents), want)
					}
					return err
				})
			}},
		},
	}, nil
}

// thousands formats n with commas: 100,000.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// noSync returns the options of the NoSync stores compared here. Their
// write buffer is off: with it, Sets and Deletes would leave their files
// to the untimed Sync after each batch, which the other contenders do not
// get (the Store's own benchmarks charge buffered Sets for their files).
func noSync() *dirstore.Options { return &dirstore.Options{NoSync: true, WriteBuffer: -1} }
