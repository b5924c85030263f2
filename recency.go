package dirstore

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Recency, the order in which a bounded store evicts, lives in the
// manifest, not in memory: each key has a recency record (when it was last
// used) and an access record in a time-ordered index (see
// internal/manifest), so memory does not grow with the number of keys and
// the order survives Close, a crash and a reopen.
//
// Writes (Set, SetBuffers, SetFrom) change a key's records in the commit
// that changes its entry, and Delete removes them in its own, so every key
// has them. That is in a store opened with a budget (MaxBytes or MaxIdle):
// without one, the order is not used, and writes skip the records; the next
// Open with a budget rebuilds them from the entries' write times
// (openRecency). Reads (Get, View, Open) must not wait for a disk write:
// they note the key and the time in a small set in memory (pending), which
// a background goroutine writes to the manifest every second (a
// flush), without sync. The eviction scan consults the set too, so the
// order is exact as long as the manifest and the set together are; a crash
// loses at most the last unflushed reads' recency, never a key's records.
//
// Times are nanoseconds from the store's clock, made monotonic within a
// session (and never before the newest record of the last one).
type recency struct {
	on    bool // reads are noted (MaxBytes or MaxIdle is set)
	clock func() time.Time
	last  atomic.Int64
	// gen counts the flushes of noted reads, which write access records
	// earlier than the newest: the eviction queue is read again after one.
	gen atomic.Uint64

	mu       sync.Mutex
	pending  map[string]int64 // read since the last flush, and when
	flushing map[string]int64 // taken by the flush in progress
	// inflight counts the times that writers took and have not committed
	// yet: their access records may still appear, so the eviction scan
	// does not move its floor past them.
	inflight map[int64]int

	kick     chan struct{}
	quit     chan struct{}
	loop     sync.WaitGroup
	stopOnce sync.Once
}

const (
	// recencyInterval is how often noted reads are flushed.
	recencyInterval = time.Second
	// flushAt is how many noted keys start a flush before the interval;
	// maxPending bounds the set: reads of keys beyond it are not noted
	// until a flush has made room.
	flushAt    = 16 << 10
	maxPending = 128 << 10
	// flushChunk is how many keys one flush commit covers, with their
	// stripes locked.
	flushChunk = 128
)

// metaRecency marks a manifest whose every entry has its recency records,
// up to date (openRecency).
const metaRecency = "recency"

// clockFunc is the recency clock; tests replace it (export_test.go).
var clockFunc = time.Now

func (r *recency) init(on bool) {
	r.on = on
	r.clock = clockFunc
	r.pending = map[string]int64{}
	r.inflight = map[int64]int{}
}

// now returns the current time, never before a time it returned earlier.
func (r *recency) now() int64 {
	t := r.clock().UnixNano()
	for {
		l := r.last.Load()
		if t <= l {
			return l
		}
		if r.last.CompareAndSwap(l, t) {
			return t
		}
	}
}

// begin returns the time of a write's access records and registers it as
// in flight until end.
func (r *recency) begin() int64 {
	r.mu.Lock()
	t := r.now()
	r.inflight[t]++
	r.mu.Unlock()
	return t
}

func (r *recency) end(t int64) {
	r.mu.Lock()
	if r.inflight[t]--; r.inflight[t] <= 0 {
		delete(r.inflight, t)
	}
	r.mu.Unlock()
}

// minInflight returns the earliest time in flight, or max.
func (r *recency) minInflight(limit int64) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	for t := range r.inflight {
		limit = min(limit, t)
	}
	return limit
}

// touch notes a read of key.
func (r *recency) touch(key string) {
	if !r.on || mutated(mutReadsForgotten) {
		return
	}
	// The clock as it is: a read's time is written only if it is later
	// than the key's record, so it need not be monotonic, and reads do
	// not contend on r.last.
	t := r.clock().UnixNano()
	r.mu.Lock()
	if _, ok := r.pending[key]; ok {
		r.pending[key] = t
	} else if len(r.pending) < maxPending {
		r.pending[strings.Clone(key)] = t
	}
	n := len(r.pending)
	r.mu.Unlock()
	if n == flushAt {
		signal(r.kick)
	}
}

// used returns when key was read after its recency record was written, if
// it was and the record is not yet updated.
func (r *recency) used(key string) (int64, bool) {
	if !r.on {
		return 0, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.pending[key]
	if t2, ok2 := r.flushing[key]; ok2 && (!ok || t2 > t) {
		t, ok = t2, true
	}
	return t, ok
}

// forgetUse drops key's noted read of time t (its record now says so).
func (r *recency) forgetUse(key string, t int64) {
	r.mu.Lock()
	if u, ok := r.pending[key]; ok && u <= t {
		delete(r.pending, key)
	}
	r.mu.Unlock()
}

// start runs the background loop: flushes, and MaxIdle evictions.
func (r *recency) start(s *Store) {
	r.kick = make(chan struct{}, 1)
	r.quit = make(chan struct{})
	r.loop.Add(1)
	go func() {
		defer r.loop.Done()
		interval := recencyInterval
		if s.opts.MaxIdle > 0 {
			interval = min(interval, max(s.opts.MaxIdle/4, time.Millisecond))
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-r.quit:
				return
			case <-r.kick:
			case <-t.C:
			}
			if err := s.flushRecency(); err != nil {
				s.opts.Logger.Error("dirstore: writing recency failed", "dir", s.dir, "err", err)
			}
			if s.opts.MaxIdle > 0 {
				if _, err := s.evictIdle(); err != nil {
					s.opts.Logger.Error("dirstore: evicting idle keys failed", "dir", s.dir, "err", err)
				}
			}
			s.evictor.report(s)
		}
	}()
}

// stop ends the background loop, once. Close calls it before it takes
// closeMu, since the loop's evictions call OnEvict, which may use the
// Store.
func (r *recency) stop() {
	r.stopOnce.Do(func() {
		if r.quit != nil {
			close(r.quit)
			r.loop.Wait()
		}
	})
}

// flushRecency writes the noted reads to the manifest, without sync.
func (s *Store) flushRecency() error {
	r := &s.rec
	r.mu.Lock()
	if len(r.pending) == 0 {
		r.mu.Unlock()
		return nil
	}
	batch := r.pending
	r.pending, r.flushing = make(map[string]int64, len(batch)), batch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.flushing = nil
		r.mu.Unlock()
	}()

	type use struct {
		key    string
		t      int64
		stripe int
	}
	uses := make([]use, 0, len(batch))
	for k, t := range batch {
		uses = append(uses, use{k, t, s.stripeIndex(k)})
	}
	slices.SortFunc(uses, func(a, b use) int { return cmp.Compare(a.stripe, b.stripe) })
	for len(uses) > 0 {
		chunk := uses[:min(flushChunk, len(uses))]
		uses = uses[len(chunk):]
		// Each key's records are read and changed with its stripe held,
		// so that an eviction, which holds it, sees them as they are.
		// Stripes are taken in order, and nobody else holds two.
		var locked []int
		for _, u := range chunk {
			if len(locked) == 0 || locked[len(locked)-1] != u.stripe {
				s.stripes[u.stripe].Lock()
				locked = append(locked, u.stripe)
			}
		}
		b := s.man.NewBatch()
		var err error
		for _, u := range chunk {
			if _, ok := s.wb.get(u.key); ok {
				continue // a buffered write gives it new records when applied
			}
			var had bool
			if _, had, err = s.peekEntry(u.key); err != nil {
				break
			}
			if !had {
				continue
			}
			old, ok, rerr := s.man.Recency(u.key)
			if err = rerr; err != nil {
				break
			}
			if ok && old >= u.t {
				continue // written since
			}
			b.SetRecency(u.key, old, ok, u.t)
		}
		if err == nil && !b.Empty() {
			if err = b.Commit(false); err != nil {
				err = s.fail(err) // a failed manifest write, as any other
			}
			r.gen.Add(1)
		} else {
			b.Close()
		}
		for _, i := range locked {
			s.stripes[i].Unlock()
		}
		if err != nil {
			return fmt.Errorf("dirstore: %s: recency: %w", s.dir, err)
		}
	}
	return nil
}

// buildRecency gives every entry of a store opened with a budget the
// recency records it lacks or that are out of date, unless the manifest
// says none is (metaRecency): a store written before recency records
// existed, or written since by a session without a budget, which keeps none
// (openRecency). A key's recency is the later of its record and the time
// its value was written: its entry's ModTime, else (adopted files) its
// file's modification time. Unbudgeted sessions note no reads, so the
// write times say all they knew. A file that cannot be stat'ed counts as
// written now (reads will find what is wrong with it).
func (s *Store) buildRecency() error {
	if _, ok, err := s.man.Meta(metaRecency); err != nil || ok {
		return s.metaErr(err)
	}
	now := s.rec.now()
	b := s.man.NewBatch()
	n := 0
	for ke, err := range s.man.Entries("") {
		if err != nil {
			b.Close()
			return s.metaErr(err)
		}
		old, had, err := s.man.Recency(ke.Key)
		if err != nil {
			b.Close()
			return s.metaErr(err)
		}
		t := ke.ModTime
		if t == 0 {
			if mt, err := s.files.ModTime(fileName(ke.Key, ke.Entry)); err == nil {
				t = mt.UnixNano()
			} else {
				t = now
			}
		}
		t = min(t, now)
		if had && old >= t {
			continue
		}
		b.SetRecency(ke.Key, old, had, t)
		if n++; n%4096 == 0 {
			if err := b.Commit(false); err != nil {
				return s.metaErr(err)
			}
			b = s.man.NewBatch()
		}
	}
	b.SetMeta(metaRecency, binary.AppendUvarint(nil, 1))
	if err := b.Commit(true); err != nil {
		return s.metaErr(err)
	}
	if n > 0 {
		// Out of the log and the memtable: the next Open does not replay
		// two records a key, nor hold them in memory.
		if err := s.man.Flush(0); err != nil {
			return s.metaErr(err)
		}
		s.opts.Logger.Info("dirstore: recorded the recency of keys written without a budget", "dir", s.dir, "count", n)
	}
	return nil
}

// openRecency prepares a writable store's recency after recovery. Only a
// store with a budget (MaxBytes or MaxIdle) keeps recency records: it
// brings them up to date at Open (buildRecency). Without one, writes save
// the cost of the records (a lookup and two more records per commit), and
// Open first clears metaRecency, durably, so that the next Open with a
// budget rebuilds them.
func (s *Store) openRecency() error {
	if !s.rec.on {
		if _, ok, err := s.man.Meta(metaRecency); err != nil || !ok || mutated(mutRecencyMarkKept) {
			return s.metaErr(err)
		}
		b := s.man.NewBatch()
		b.DeleteMeta(metaRecency)
		return s.metaErr(b.Commit(true))
	}
	last, err := s.man.LastAccess()
	if err != nil {
		return s.metaErr(err)
	}
	s.rec.last.Store(last)
	return s.buildRecency()
}
