package dirstore

import (
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/dirstore/dirstore/internal/manifest"
)

// Codec turns a Buffer's values into bytes for its Store and back.
// Marshal and Unmarshal may be called concurrently, and never with the
// Buffer's lock held.
type Codec[V any] interface {
	Marshal(v V) ([]byte, error)
	Unmarshal(data []byte) (V, error)
}

// BufferOptions configure NewBuffer. The zero value is valid only for
// []byte values, and then spills every non-empty value at once.
type BufferOptions[V any] struct {
	// MaxWeight is the capacity of the memory tier (zict's n): when the
	// weights of the values in memory add up to more, the least recently
	// used ones spill to the Store. A value heavier than MaxWeight on its
	// own goes straight to the Store. It must not be negative. Default 0.
	MaxWeight int64

	// Weight returns the weight of a value, which must not be negative. It
	// is called outside the Buffer's lock. Default: len(v) when V is
	// []byte, else 1.
	Weight func(key string, v V) int64

	// Codec converts values for the Store. It may be nil only when V is
	// []byte, in which case values are written and read as they are.
	Codec Codec[V]

	// OnSpill, if set, is called after a value was written to the Store, on
	// its way out of memory, outside the Buffer's lock. If it returns an
	// error the move is undone: the written copy is removed and the value
	// stays in memory. It is not called when a Set or Delete of the key has
	// already won over the spill; if one wins while OnSpill runs, the
	// spill is undone as well, so OnSpill must tolerate a spill that does
	// not stick. Default nil.
	OnSpill func(key string, v V) error

	// OnUnspill, if set, is called after a value read back from the Store
	// by Get moved into memory (not when a heavy value is served from the
	// Store without moving), outside the Buffer's lock. Default nil.
	OnUnspill func(key string, v V)

	// MaxSpill, if positive, bounds the bytes of the Buffer's values in
	// the Store (dask's max_spill): a spill that would take them past it
	// is not made. The value stays in memory, so the memory tier goes over
	// MaxWeight, the Set that wanted the spill succeeds, no more spills are
	// tried until the next Set or Evict, BufferStats.SpillsRefused counts
	// it, and the Store's Options.Logger says so at most once a second.
	// Default 0: no bound.
	MaxSpill int64
}

// Buffer is a map from string keys to values of type V in two tiers: a
// memory tier, bounded by weight and ordered by recency, and a Store that
// the least recently used values spill to (Python's zict.Buffer over a
// zict.LRU). A key is in exactly one tier. A missing key is an error
// matching fs.ErrNotExist.
//
// # Tiers
//
// Set puts a value in memory; when the memory tier then weighs more than
// MaxWeight, the least recently used values are marshalled and written to
// the Store, heavy ones (each heavier than MaxWeight) first, until it fits.
// Get of a spilled key reads the value back into memory (unless it is
// heavy) and removes it from the Store. Get refreshes recency; Has, Len and
// Keys do not. Values in memory are kept as given: a []byte passed to Set
// is what Get returns, not a copy.
//
// # Failures
//
// A spill that fails (the Codec, the Store, for example with a full disk,
// or OnSpill returns an error) leaves the value in memory, where it becomes
// the most recently used, and the error is returned by the Set, Evict,
// EvictUntilBelowTarget or Flush that tried it: nothing is lost, and the
// memory tier stays over MaxWeight until a later spill succeeds. A Get that
// reads a value back spills others to make room but does not report their
// failure, since it has its value.
//
// # Concurrency
//
// All methods may be called concurrently. The Store I/O of a spill or a
// read-back runs outside the Buffer's lock, so other keys are served
// meanwhile; while a value is on its way out Get still returns it from
// memory. A Set or Delete of a key that is being spilled or read back wins
// at once (zict's cancel-evict rules): the move is abandoned, any copy it
// left in the Store is removed, and a Get waiting for the read-back answers
// from the new state. Weight, Codec and the callbacks are called without
// the lock and may themselves call the Buffer, except Close, which waits
// for the spill that called them. If one of them, or a hook of the Store,
// panics, the Buffer stays whole (the value involved stays where it was,
// and nothing stays locked or waiting) and the method that ran it panics
// again with the same value once it holds no lock.
//
// # Ownership and durability
//
// The Buffer keeps the set of spilled keys in memory (the key plus about 50
// bytes each), loaded from the Store by NewBuffer, so Has, Len and Keys
// never touch the disk. While the Buffer is in use nobody else may write
// the Store, but a bounded Store (Options.MaxBytes) may evict the Buffer's
// spilled values: the Buffer learns of each eviction, and the key is gone
// from it (Store.OnEvict still reports it). Values in memory are lost by a crash and by Close; spilled
// values have the Store's durability (see Options.NoSync). Flush spills
// everything and syncs the Store. Close does not close the Store.
type Buffer[V any] struct {
	slow      *Store
	max       int64
	weightFn  func(string, V) int64
	codec     Codec[V]
	onSpill   func(string, V) error
	onUnspill func(string, V)
	maxSpill  int64
	unlisten  func() // stops the Store's reports of evictions

	stats struct {
		spills, unspills, refused, failures atomic.Int64
		spillTime, unspillTime              atomic.Int64 // nanoseconds
		lastRefusalLog                      atomic.Int64 // when a refusal was last logged (Unix nanoseconds)
	}

	mu struct {
		sync.Mutex
		// lru holds the values in memory that are not moving, least
		// recently used first. Its count limit is never reached: the weight
		// accounting below decides what spills.
		lru *simplelru.LRU[string, entry[V]]
		// heavy holds the keys in lru heavier than MaxWeight, which spill
		// first.
		heavy map[string]struct{}
		// flights holds the keys whose value is moving between the tiers
		// or whose Store copy is being removed; they are not in lru.
		flights map[string]*flight[V]
		// stored holds the keys whose value is in the Store, with the size
		// of the stored value.
		stored map[string]int64
		// spilled is the bytes of the values in stored, plus those of the
		// spills under way, for MaxSpill.
		spilled int64
		// orphans holds keys whose Store copy should be gone but whose
		// removal failed; Flush and Close retry.
		orphans map[string]struct{}
		weight  int64 // of the values in lru and those held by flights
		parked  int64 // of the values held by flights, which cannot spill now
		closed  bool
	}
}

// entry is a value in the memory tier.
type entry[V any] struct {
	value  V
	weight int64
}

type flightKind uint8

const (
	spilling   flightKind = iota // memory -> Store
	unspilling                   // Store -> memory, for Get
	removing                     // deleting the Store copy
)

// flight is the state of a key whose Store I/O runs outside the lock. The
// goroutine that registered it owns the I/O and lands it; Set and Delete
// change it, under the lock, to win over the I/O: they mark it superseded,
// which voids the flight's own outcome, and set or clear the key's value.
// Only the owner touches the Store for that key until the flight lands, so
// a new spill cannot race with the cleanup of an old one.
type flight[V any] struct {
	kind flightKind
	done chan struct{} // closed when the flight lands

	superseded bool // a Set or Delete came after the flight started
	has        bool // the key has a value in memory: value, weight
	value      V
	weight     int64
	copy       bool // the Store holds the key's old copy, to remove if superseded
	evicted    bool // the Store evicted the key while the flight was under way
}

var (
	// errSpillRefused is spillLocked's report of a spill that MaxSpill
	// refused.
	errSpillRefused       = errors.New("spill refused")
	errMaxSpill           = errors.New("the Buffer's values in the Store reached MaxSpill")
	errBufferClosed error = &sentinel{"dirstore: buffer is closed", fs.ErrClosed}
	errEvictEmpty   error = &sentinel{"dirstore: buffer has no value in memory to evict", fs.ErrNotExist}
)

// NewBuffer returns a Buffer that spills to slow. Keys already in slow are
// keys of the Buffer. Every problem with opts is reported at once, as an
// error matching fs.ErrInvalid.
func NewBuffer[V any](slow *Store, opts BufferOptions[V]) (*Buffer[V], error) {
	b := &Buffer[V]{
		slow:      slow,
		max:       opts.MaxWeight,
		weightFn:  opts.Weight,
		codec:     opts.Codec,
		onSpill:   opts.OnSpill,
		onUnspill: opts.OnUnspill,
		maxSpill:  opts.MaxSpill,
	}
	var zero V
	_, isBytes := any(zero).([]byte)
	var errs []error
	if slow == nil {
		errs = append(errs, errors.New("the Store is nil"))
	}
	if opts.MaxWeight < 0 {
		errs = append(errs, fmt.Errorf("MaxWeight %d is negative", opts.MaxWeight))
	}
	if opts.MaxSpill < 0 {
		errs = append(errs, fmt.Errorf("MaxSpill %d is negative", opts.MaxSpill))
	}
	if b.codec == nil {
		if isBytes {
			b.codec = bytesCodec[V]{}
		} else {
			errs = append(errs, fmt.Errorf("Codec is nil and values are %T, not []byte", zero))
		}
	}
	if b.weightFn == nil {
		if isBytes {
			b.weightFn = func(_ string, v V) int64 { return int64(len(any(v).([]byte))) }
		} else {
			b.weightFn = func(string, V) int64 { return 1 }
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("dirstore: invalid buffer options: %w: %w", fs.ErrInvalid, err)
	}
	b.mu.lru, _ = simplelru.NewLRU[string, entry[V]](math.MaxInt, nil)
	b.mu.heavy = make(map[string]struct{})
	b.mu.flights = make(map[string]*flight[V])
	b.mu.stored = make(map[string]int64)
	b.mu.orphans = make(map[string]struct{})
	for ke, err := range slow.entries() {
		if err != nil {
			return nil, fmt.Errorf("dirstore: new buffer: %w", err)
		}
		b.mu.stored[ke.Key] = ke.Size
		b.mu.spilled += ke.Size
	}
	b.unlisten = slow.onEvict(b.evicted)
	return b, nil
}

// entries yields the keys and their sizes, for NewBuffer.
func (s *Store) entries() iter.Seq2[manifest.KeyEntry, error] {
	return func(yield func(manifest.KeyEntry, error) bool) {
		if err := s.begin("keys", "", false); err != nil {
			yield(manifest.KeyEntry{}, err)
			return
		}
		defer s.closeMu.RUnlock()
		// Buffered writes have no entry yet.
		if err := s.applyBuffered(); err != nil {
			yield(manifest.KeyEntry{}, fmt.Errorf("applying buffered writes: %w", err))
			return
		}
		for ke, err := range s.man.Entries("") {
			if !yield(ke, err) || err != nil {
				return
			}
		}
	}
}

// evicted learns that the Store evicted key.
func (b *Buffer[V]) evicted(key string, _ int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if f := b.mu.flights[key]; f != nil {
		// The flight's owner checks when it lands (a spill), or finds the
		// value gone (a read-back), or removes it anyway.
		f.evicted = true
		return
	}
	if _, ok := b.mu.stored[key]; !ok {
		return
	}
	// The report may be late: only a flight writes a stored key, so if
	// the Store has it, it is the Buffer's current value, spilled again.
	if !b.slow.hasNow(key) {
		b.unstoreLocked(key)
	}
}

// unstoreLocked forgets that key's value is in the Store.
func (b *Buffer[V]) unstoreLocked(key string) {
	if n, ok := b.mu.stored[key]; ok {
		b.mu.spilled -= n
		delete(b.mu.stored, key)
	}
}

// bytesCodec is the Codec of []byte values: the bytes as they are.
type bytesCodec[V any] struct{}

func (bytesCodec[V]) Marshal(v V) ([]byte, error)      { return any(v).([]byte), nil }
func (bytesCodec[V]) Unmarshal(data []byte) (V, error) { return any(data).(V), nil }

// weigh returns key's weight for v, checked.
func (b *Buffer[V]) weigh(key string, v V) (int64, error) {
	w := b.weightFn(key, v)
	if w < 0 {
		return 0, fmt.Errorf("weight %d is negative: %w", w, fs.ErrInvalid)
	}
	return w, nil
}

// Set puts v under key in memory, replacing any value in either tier, then
// spills least recently used values while the memory tier weighs more than
// MaxWeight. A value heavier than MaxWeight goes straight to the Store. If
// a spill fails, v is set all the same and the error is returned.
func (b *Buffer[V]) Set(key string, v V) error {
	if len(key) > MaxKeyLen {
		return keyErr("set", key, ErrInvalidKey)
	}
	w, err := b.weigh(key, v)
	if err != nil {
		return keyErr("set", key, err)
	}
	b.mu.Lock()
	if b.mu.closed {
		b.mu.Unlock()
		return keyErr("set", key, errBufferClosed)
	}
	if f := b.mu.flights[key]; f != nil {
		// The key is moving: win over the move; the flight's owner puts
		// v in the LRU when its I/O is over.
		b.supersedeLocked(key, f)
		f.has, f.value, f.weight = true, v, w
		b.mu.weight += w
		b.mu.parked += w
		return repanic(b.spillUntilLocked(b.max))
	}
	if old, ok := b.mu.lru.Peek(key); ok {
		// Replace in place: Add keeps the list element.
		b.mu.weight -= old.weight
		delete(b.mu.heavy, key)
	} else if _, ok := b.mu.stored[key]; ok {
		// Remove the old copy outside the lock; meanwhile the flight holds
		// v, so Get already returns it.
		b.unstoreLocked(key)
		f := &flight[V]{kind: removing, done: make(chan struct{}), superseded: true,
			has: true, value: v, weight: w, copy: true}
		b.mu.flights[key] = f
		b.mu.weight += w
		b.mu.parked += w
		b.landLocked(key, f)
		return repanic(b.spillUntilLocked(b.max))
	}
	b.mu.lru.Add(key, entry[V]{v, w})
	if w > b.max {
		b.mu.heavy[key] = struct{}{}
	}
	b.mu.weight += w
	return repanic(b.spillUntilLocked(b.max))
}

// supersedeLocked records that a Set or Delete of key wins over flight f:
// the key leaves the Store (logically; the flight's owner removes the copy)
// and its value in memory, if any, is dropped.
func (b *Buffer[V]) supersedeLocked(key string, f *flight[V]) {
	if !f.superseded && f.kind != spilling {
		b.unstoreLocked(key)
	}
	f.superseded = true
	if f.has {
		b.mu.weight -= f.weight
		b.mu.parked -= f.weight
		var zero V
		f.has, f.value, f.weight = false, zero, 0
	}
}

// dropLocked removes key's idle value from memory, if it has one.
func (b *Buffer[V]) dropLocked(key string) bool {
	e, ok := b.mu.lru.Peek(key)
	if !ok {
		return false
	}
	b.mu.lru.Remove(key)
	delete(b.mu.heavy, key)
	b.mu.weight -= e.weight
	return true
}

// Get returns key's value. A value read back from the Store moves into
// memory as the most recently used, unless it is heavy; other values may
// spill to make room.
func (b *Buffer[V]) Get(key string) (V, error) {
	var zero V
	b.mu.Lock()
	if e, ok := b.mu.lru.Get(key); ok {
		b.mu.Unlock()
		return e.value, nil
	}
	for {
		if b.mu.closed {
			b.mu.Unlock()
			return zero, keyErr("get", key, errBufferClosed)
		}
		if e, ok := b.mu.lru.Get(key); ok {
			b.mu.Unlock()
			return e.value, nil
		}
		if f := b.mu.flights[key]; f != nil {
			if f.has {
				v := f.value
				b.mu.Unlock()
				return v, nil
			}
			if f.superseded {
				b.mu.Unlock()
				return zero, keyErr("get", key, ErrNotFound)
			}
			// Read back or removed by another goroutine: wait for it.
			done := f.done
			b.mu.Unlock()
			<-done
			b.mu.Lock()
			continue
		}
		if _, ok := b.mu.stored[key]; !ok {
			b.mu.Unlock()
			return zero, keyErr("get", key, ErrNotFound)
		}
		f := &flight[V]{kind: unspilling, done: make(chan struct{}), copy: true}
		b.mu.flights[key] = f
		b.mu.Unlock()
		v, retry, err := b.unspill(key, f)
		if !retry {
			return v, repanic(err)
		}
		b.mu.Lock()
	}
}

// unspill reads key back from the Store for Get, as flight f, without the
// lock. retry means a Set or Delete won meanwhile and Get must look again.
func (b *Buffer[V]) unspill(key string, f *flight[V]) (v V, retry bool, err error) {
	var zero V
	var w int64
	start := time.Now()
	defer func() {
		b.stats.unspillTime.Add(int64(time.Since(start)))
		if err == nil && !retry {
			b.stats.unspills.Add(1)
		}
	}()
	// User code (the Codec, Weight, the Store's read hooks) runs here; a
	// panic of it lands the flight as a failure and goes on from Get.
	err = guard(func() error {
		data, err := b.slow.Get(key)
		if err != nil {
			return err
		}
		if v, err = b.codec.Unmarshal(data); err != nil {
			return keyErr("unmarshal", key, err)
		}
		if w, err = b.weigh(key, v); err != nil {
			return keyErr("get", key, err)
		}
		return nil
	})
	b.mu.Lock()
	if f.superseded {
		b.landLocked(key, f)
		b.mu.Unlock()
		return zero, true, nil
	}
	if err != nil || w > b.max {
		if errors.Is(err, ErrNotFound) {
			// Somebody else removed it from the Store.
			b.unstoreLocked(key)
			f.copy = false
		}
		// On error, or for a heavy value, the key stays in the Store.
		b.landLocked(key, f)
		b.mu.Unlock()
		if err != nil {
			return zero, false, err
		}
		return v, false, nil
	}
	b.mu.Unlock()
	derr := b.slow.Delete(key)
	b.mu.Lock()
	if derr == nil {
		f.copy = false
	}
	if f.superseded {
		b.landLocked(key, f)
		b.mu.Unlock()
		return zero, true, nil
	}
	if derr != nil {
		// The value stays in the Store; the caller has it all the same.
		b.landLocked(key, f)
		b.mu.Unlock()
		return v, false, nil
	}
	b.unstoreLocked(key)
	f.has, f.value, f.weight = true, v, w
	b.mu.weight += w
	b.mu.parked += w
	b.landLocked(key, f)
	if err := b.spillUntilLocked(b.max); isPanic(err) {
		return v, false, err
	}
	if b.onUnspill != nil {
		b.onUnspill(key, v)
	}
	return v, false, nil
}

// Delete removes key from whichever tier holds it. A missing key is an
// error matching fs.ErrNotExist.
func (b *Buffer[V]) Delete(key string) error {
	b.mu.Lock()
	for {
		if b.mu.closed {
			b.mu.Unlock()
			return keyErr("delete", key, errBufferClosed)
		}
		f := b.mu.flights[key]
		if f == nil {
			break
		}
		if !f.has && (f.superseded || f.kind == removing) {
			if f.superseded {
				b.mu.Unlock()
				return keyErr("delete", key, ErrNotFound)
			}
			// Another Delete is removing it: its outcome decides ours.
			done := f.done
			b.mu.Unlock()
			<-done
			b.mu.Lock()
			continue
		}
		b.supersedeLocked(key, f)
		b.mu.Unlock()
		return nil
	}
	if b.dropLocked(key) {
		b.mu.Unlock()
		return nil
	}
	if _, ok := b.mu.stored[key]; !ok {
		b.mu.Unlock()
		return keyErr("delete", key, ErrNotFound)
	}
	f := &flight[V]{kind: removing, done: make(chan struct{}), copy: true}
	b.mu.flights[key] = f
	b.mu.Unlock()
	err := b.slow.Delete(key)
	b.mu.Lock()
	if err == nil || errors.Is(err, ErrNotFound) {
		f.copy = false
		if !f.superseded {
			b.unstoreLocked(key)
		}
	}
	landed := b.landLocked(key, f)
	if landed {
		// A Set won meanwhile and its value is in memory now.
		repanic(b.spillUntilLocked(b.max))
	} else {
		b.mu.Unlock()
	}
	return err
}

// landLocked ends flight f of key: it removes the Store copy the flight
// left behind if a Set or Delete superseded it (releasing the lock around
// the I/O), then puts the value the flight holds, if any, in the LRU as
// the most recently used, and wakes up the waiters. It reports whether a
// value entered the LRU.
func (b *Buffer[V]) landLocked(key string, f *flight[V]) bool {
	if f.superseded && f.copy {
		b.removeCopyLocked(key)
		f.copy = false
	}
	delete(b.mu.flights, key)
	close(f.done)
	if !f.has {
		return false
	}
	b.mu.parked -= f.weight
	b.mu.lru.Add(key, entry[V]{f.value, f.weight})
	if f.weight > b.max {
		b.mu.heavy[key] = struct{}{}
	}
	return true
}

// removeCopyLocked deletes key's copy from the Store, releasing the lock
// around the I/O. The key must be in a flight, so that nothing else writes
// it meanwhile. A copy that cannot be removed is remembered as an orphan.
func (b *Buffer[V]) removeCopyLocked(key string) error {
	b.mu.Unlock()
	err := b.slow.Delete(key)
	b.mu.Lock()
	if err != nil && !errors.Is(err, ErrNotFound) {
		b.mu.orphans[key] = struct{}{}
		return err
	}
	delete(b.mu.orphans, key)
	return nil
}

// victimLocked returns the value to spill next: a heavy one, else the
// least recently used.
func (b *Buffer[V]) victimLocked() (key string, e entry[V], heavy, ok bool) {
	for key = range b.mu.heavy {
		e, _ = b.mu.lru.Peek(key)
		return key, e, true, true
	}
	key, e, ok = b.mu.lru.GetOldest()
	return key, e, false, ok
}

// spillLocked moves key's value e, which victimLocked chose, to the Store.
// It is called with the lock held, releases it around the I/O and returns
// with it held. moved is false if the value stayed in memory or a Set or
// Delete of key won meanwhile.
func (b *Buffer[V]) spillLocked(key string, e entry[V]) (moved bool, err error) {
	if b.maxSpill > 0 && b.mu.spilled >= b.maxSpill {
		b.refusedLocked(key, 0)
		return false, errSpillRefused
	}
	b.mu.lru.Remove(key)
	delete(b.mu.heavy, key)
	f := &flight[V]{kind: spilling, done: make(chan struct{}), has: true, value: e.value, weight: e.weight}
	b.mu.flights[key] = f
	b.mu.parked += e.weight
	b.mu.Unlock()

	start := time.Now()
	defer func() { b.stats.spillTime.Add(int64(time.Since(start))) }()
	var reserved int64 // of spilled, given back unless the spill sticks
	refused := false
	var size int64
	// User code (the Codec, the Store's write hooks, OnSpill) runs
	// without the lock; a panic of it lands the flight as a failed spill
	// (the value stays in memory) and goes on from the method that spilled.
	err = guard(func() error {
		data, err := b.codec.Marshal(e.value)
		if err != nil {
			return keyErr("marshal", key, err)
		}
		size = int64(len(data))
		b.mu.Lock()
		if b.maxSpill > 0 && b.mu.spilled+size > b.maxSpill {
			refused = true
		} else {
			reserved = size
			b.mu.spilled += reserved
		}
		b.mu.Unlock()
		if refused {
			return nil
		}
		return b.slow.Set(key, data)
	})
	b.mu.Lock()
	if err == nil && !refused {
		f.copy = true
		if !f.superseded && b.onSpill != nil {
			b.mu.Unlock()
			err = guard(func() error { return b.onSpill(key, e.value) })
			b.mu.Lock()
			if err != nil && !isPanic(err) {
				err = keyErr("spill", key, err)
			}
		}
	}
	if f.superseded {
		b.mu.spilled -= reserved
		b.landLocked(key, f)
		if isPanic(err) {
			return false, err
		}
		return false, nil
	}
	if err == nil && !refused && f.evicted {
		// The Store reported an eviction of the key while it was being
		// spilled: if it is gone, it was this copy, evicted after its Set
		// returned (a late report of an older copy leaves it there).
		if ok, herr := b.slow.Has(key); herr == nil && !ok {
			b.mu.spilled -= reserved
			b.mu.weight -= f.weight
			b.mu.parked -= f.weight
			f.has, f.copy = false, false
			b.landLocked(key, f)
			return true, nil
		}
	}
	if err != nil || refused {
		b.mu.spilled -= reserved
		if refused {
			b.refusedLocked(key, size)
		} else {
			b.stats.failures.Add(1)
		}
		if f.copy {
			if rerr := b.removeCopyLocked(key); rerr != nil && !isPanic(err) {
				err = errors.Join(err, rerr)
			}
			f.copy = false
		}
		// The value stays in memory, no longer marked heavy (zict), so that
		// it does not block the next spills. If a Set or Delete won while
		// the copy was being removed, landLocked puts its outcome in place.
		b.landLocked(key, f)
		if !f.superseded {
			delete(b.mu.heavy, key)
		}
		if refused {
			return false, errSpillRefused
		}
		return false, err
	}
	b.mu.stored[key] = reserved // already counted in spilled
	b.stats.spills.Add(1)
	delete(b.mu.orphans, key)
	b.mu.weight -= f.weight
	b.mu.parked -= f.weight
	f.has, f.copy = false, false
	b.landLocked(key, f)
	return true, nil
}

// spillUntilLocked spills values until the memory tier, not counting the
// values already moving, weighs at most target. It is called with the lock
// held and releases it. It stops at the first failure, except that a heavy
// value failing does not keep lighter ones from spilling (zict); it never
// tries a key twice.
func (b *Buffer[V]) spillUntilLocked(target int64) error {
	var first error
	var failed map[string]bool
	for !b.mu.closed && b.mu.weight-b.mu.parked > target {
		key, e, heavy, ok := b.victimLocked()
		if !ok || failed[key] {
			break
		}
		if _, err := b.spillLocked(key, e); err != nil {
			if err == errSpillRefused {
				break // MaxSpill is reached: no more spills now
			}
			if first == nil || isPanic(err) {
				first = err
			}
			if !heavy || isPanic(err) {
				break
			}
			if failed == nil {
				failed = make(map[string]bool)
			}
			failed[key] = true
		}
	}
	b.mu.Unlock()
	return first
}

// Has reports whether key has a value in either tier. The error is
// non-nil only after Close.
func (b *Buffer[V]) Has(key string) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mu.closed {
		return false, keyErr("has", key, errBufferClosed)
	}
	if b.mu.lru.Contains(key) {
		return true, nil
	}
	if f := b.mu.flights[key]; f != nil {
		return f.has || !f.superseded, nil
	}
	_, ok := b.mu.stored[key]
	return ok, nil
}

// Len returns the number of keys in both tiers (0 after Close).
func (b *Buffer[V]) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mu.closed {
		return 0
	}
	n := b.mu.lru.Len() + len(b.mu.stored)
	for _, f := range b.mu.flights {
		if f.has {
			n++
		}
	}
	return n
}

// Keys yields the keys of both tiers from a snapshot taken when iteration
// starts: first those in memory, least recently used first (a value on
// its way out of memory counts as in memory), then the spilled ones in
// sorted order. Each key appears once. Changes made during iteration are
// not seen, and iteration does not change recency.
func (b *Buffer[V]) Keys() iter.Seq[string] {
	return func(yield func(string) bool) {
		b.mu.Lock()
		if b.mu.closed {
			b.mu.Unlock()
			return
		}
		mem := b.mu.lru.Keys()
		for k, f := range b.mu.flights {
			if f.has {
				mem = append(mem, k)
			}
		}
		stored := slices.Sorted(maps.Keys(b.mu.stored))
		b.mu.Unlock()
		for _, k := range mem {
			if !yield(k) {
				return
			}
		}
		for _, k := range stored {
			if !yield(k) {
				return
			}
		}
	}
}

// Weight returns the weight of the values in memory, including those on
// their way to the Store.
func (b *Buffer[V]) Weight() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mu.weight
}

// Evict spills one value, a heavy one if any, else the least recently
// used, and returns its key and weight. With nothing in memory to spill it
// returns an error matching fs.ErrNotExist. If a Set or Delete of the key
// won while it was being written, nothing was evicted and Evict returns ""
// and a nil error. If the spill fails, the value stays in memory as the
// most recently used and the error is returned.
func (b *Buffer[V]) Evict() (key string, weight int64, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mu.closed {
		return "", 0, fmt.Errorf("dirstore: evict: %w", errBufferClosed)
	}
	key, e, _, ok := b.victimLocked()
	if !ok {
		return "", 0, fmt.Errorf("dirstore: evict: %w", errEvictEmpty)
	}
	moved, err := b.spillLocked(key, e)
	if err == errSpillRefused {
		return "", 0, fmt.Errorf("dirstore: evict %q: %w", key, errMaxSpill)
	}
	if !moved {
		return "", 0, repanic(err) // the deferred Unlock runs first
	}
	return key, e.weight, nil
}

// EvictUntilBelowTarget spills values, heavy ones first and then the least
// recently used, until the memory tier weighs at most target (values that
// other goroutines are spilling count as gone). It returns the first
// spill's error and stops there, except that a heavy value that fails does
// not stop lighter ones.
func (b *Buffer[V]) EvictUntilBelowTarget(target int64) error {
	b.mu.Lock()
	if b.mu.closed {
		b.mu.Unlock()
		return fmt.Errorf("dirstore: evict: %w", errBufferClosed)
	}
	return repanic(b.spillUntilLocked(target))
}

// Flush spills every value in memory to the Store and then syncs the
// Store (Store.Sync), so that with no concurrent writers everything the
// Buffer holds is durable when Flush returns nil. It also retries the
// removal of stale Store copies that failed earlier.
func (b *Buffer[V]) Flush() error {
	b.mu.Lock()
	if b.mu.closed {
		b.mu.Unlock()
		return fmt.Errorf("dirstore: flush: %w", errBufferClosed)
	}
	if err := b.spillUntilLocked(-1); err != nil {
		return repanic(err)
	}
	b.mu.Lock()
	err := b.removeOrphansLocked()
	b.mu.Unlock()
	if err != nil {
		return err
	}
	return b.slow.Sync()
}

// removeOrphansLocked retries removing the Store copies that failed to go.
// It is called with the lock held, which it releases around the I/O.
func (b *Buffer[V]) removeOrphansLocked() error {
	var errs []error
	for _, key := range slices.Collect(maps.Keys(b.mu.orphans)) {
		if _, ok := b.mu.orphans[key]; !ok || b.mu.flights[key] != nil {
			continue
		}
		if _, ok := b.mu.stored[key]; ok {
			delete(b.mu.orphans, key)
			continue
		}
		f := &flight[V]{kind: removing, done: make(chan struct{}), superseded: true}
		b.mu.flights[key] = f
		if err := b.removeCopyLocked(key); err != nil {
			errs = append(errs, err)
		}
		// A Set that won meanwhile leaves its value in memory.
		b.landLocked(key, f)
	}
	return errors.Join(errs...)
}

// Close discards the memory tier, as zict's Buffer does: values that were
// not spilled are lost (call Flush first to keep them). It waits for the
// spills and read-backs in progress, retries the removal of stale Store
// copies, and leaves the Store open: the caller owns it. Later calls
// return errors matching fs.ErrClosed.
func (b *Buffer[V]) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mu.closed {
		return fmt.Errorf("dirstore: close buffer: %w", errBufferClosed)
	}
	b.mu.closed = true
	b.mu.Unlock()
	b.unlisten() // outside the lock: a report may be waiting for it
	b.mu.Lock()
	for len(b.mu.flights) > 0 {
		var done []chan struct{}
		for _, f := range b.mu.flights {
			done = append(done, f.done)
		}
		b.mu.Unlock()
		for _, d := range done {
			<-d
		}
		b.mu.Lock()
	}
	err := b.removeOrphansLocked()
	b.mu.lru.Purge()
	clear(b.mu.heavy)
	b.mu.weight, b.mu.parked = 0, 0
	if err != nil {
		return fmt.Errorf("dirstore: close buffer: %w", err)
	}
	return nil
}

// String describes the buffer as zict does: <Buffer: W/MAX in memory, N elements>.
func (b *Buffer[V]) String() string {
	return fmt.Sprintf("<Buffer: %d/%d in memory, %d elements>", b.Weight(), b.max, b.Len())
}

// panicked is a panic of user code (the Codec, Weight, OnSpill, the
// Store's hooks) that ran while a key was in flight, caught so that the
// flight lands and the Buffer stays whole: the public method that ran it
// panics again with the same value once the Buffer is unlocked (repanic).
type panicked struct{ value any }

func (p *panicked) Error() string {
	return fmt.Sprintf("dirstore: buffer callback panicked: %v", p.value)
}

// guard calls fn, turning a panic into a *panicked error.
func guard(fn func() error) (err error) {
	if mutated(mutNoPanicGuard) {
		return fn()
	}
	finished := false
	defer func() {
		if !finished {
			err = &panicked{recover()}
		}
	}()
	err = fn()
	finished = true
	return err
}

func isPanic(err error) bool {
	_, ok := err.(*panicked)
	return ok
}

// repanic panics again with the value of a caught panic, and otherwise
// returns err.
func repanic(err error) error {
	if p, ok := err.(*panicked); ok {
		panic(p.value)
	}
	return err
}

// refusedLocked counts a spill of key (of size bytes, 0 if not marshalled)
// that MaxSpill refused, and logs it at most once a second.
func (b *Buffer[V]) refusedLocked(key string, size int64) {
	b.stats.refused.Add(1)
	now := time.Now().UnixNano()
	last := b.stats.lastRefusalLog.Load()
	if now-last >= int64(time.Second) && b.stats.lastRefusalLog.CompareAndSwap(last, now) {
		b.slow.opts.Logger.Warn("dirstore: buffer: spill refused, MaxSpill reached; the value stays in memory",
			"dir", b.slow.dir, keyAttr(key), "size", size, "spilled", b.mu.spilled, "max_spill", b.maxSpill,
			"refused", b.stats.refused.Load())
	}
}

// BufferStats describes a Buffer: its tiers now, and its counters since
// NewBuffer.
type BufferStats struct {
	MemoryWeight            int64 // weight of the values in memory (Weight)
	MemoryKeys, SpilledKeys int
	SpilledBytes            int64 // bytes of the Buffer's values in the Store
	Spills, Unspills        int64 // values moved to the Store, and back by Get
	SpillsRefused           int64 // spills not made because of MaxSpill
	SpillFailures           int64 // spills that failed (Codec, Store, OnSpill)
	SpillTime, UnspillTime  time.Duration
}

// Stats returns the Buffer's state and counters. Values on their way
// between the tiers count as in memory.
func (b *Buffer[V]) Stats() BufferStats {
	b.mu.Lock()
	st := BufferStats{
		MemoryWeight: b.mu.weight,
		MemoryKeys:   b.mu.lru.Len(),
		SpilledKeys:  len(b.mu.stored),
		SpilledBytes: b.mu.spilled,
	}
	for _, f := range b.mu.flights {
		if f.has {
			st.MemoryKeys++
		}
	}
	b.mu.Unlock()
	st.Spills, st.Unspills = b.stats.spills.Load(), b.stats.unspills.Load()
	st.SpillsRefused, st.SpillFailures = b.stats.refused.Load(), b.stats.failures.Load()
	st.SpillTime, st.UnspillTime = time.Duration(b.stats.spillTime.Load()), time.Duration(b.stats.unspillTime.Load())
	return st
}
