package rangecache

import (
	"runtime"
	"sync"
	"sync/atomic"
	"weak"
)

// IdentKey names a file across every open of it in this process. An
// operating-system file is named by its device and inode; a file that has no
// inode (a file of a vfs.FS) or that never changes (a Store's value file) is
// named by a Space its owner allocates with NewSpace and a Name unique in it.
type IdentKey struct {
	Dev, Ino uint64
	Space    uint64
	Name     string
}

// Ident is the process-wide record of one file: the generation that every
// write through any Stream of the file bumps, and the lock that orders those
// writes with the cache patches they make. The registry holds Idents weakly:
// an Ident lives while an open Stream or a Cache entry of its file refers to
// it, and the registry forgets it after that, so it does not grow with the
// number of files ever opened, even when a Cache is dropped without Purge.
// A file registered again gets a new Ident (a new number, so no old cache
// entry can match it).
type Ident struct {
	key IdentKey
	id  uint64 // unique in the process; part of every cache key
	gen atomic.Uint64

	// wmu orders writes to the file with the cache patches they make:
	// without it two overlapping writes could reach the disk in one order
	// and the cache in the other.
	wmu sync.Mutex
}

var registry struct {
	mu     sync.Mutex
	m      map[IdentKey]weak.Pointer[Ident]
	nextID uint64
}

var spaces atomic.Uint64

// NewSpace returns a Space no other caller has been given.
func NewSpace() uint64 { return spaces.Add(1) }

// Acquire returns the Ident of k. The caller keeps it alive by holding it.
func Acquire(k IdentKey) *Ident {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if registry.m == nil {
		registry.m = make(map[IdentKey]weak.Pointer[Ident])
	}
	if id := registry.m[k].Value(); id != nil {
		return id
	}
	registry.nextID++
	id := &Ident{key: k, id: registry.nextID}
	registry.m[k] = weak.Make(id)
	runtime.AddCleanup(id, forget, k)
	return id
}

// forget removes k from the registry once its Ident is gone, unless k was
// registered again meanwhile.
func forget(k IdentKey) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if wp, ok := registry.m[k]; ok && wp.Value() == nil {
		delete(registry.m, k)
	}
}

// Gen returns the number of writes made to the file through this Ident.
// Load it before reading from the file, and pass it to Cache.Put.
func (id *Ident) Gen() uint64 { return id.gen.Load() }

// Bump records a write that reached the file and returns the new
// generation. Call it after the write, never before: a reader that loaded
// the old generation and then read the old bytes must find it changed.
func (id *Ident) Bump() uint64 { return id.gen.Add(1) }

// Lock and Unlock bracket a write and its Cache.Write so that writes reach
// the disk and the caches in the same order.
func (id *Ident) Lock()   { id.wmu.Lock() }
func (id *Ident) Unlock() { id.wmu.Unlock() }

// Registered reports whether k has a live Ident. It is for tests.
func Registered(k IdentKey) bool {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	return registry.m[k].Value() != nil
}

// Count returns the number of Idents in the registry, dead ones whose
// cleanup has not run yet included. It is for leak tests.
func Count() int {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	return len(registry.m)
}
