package dirstore

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dirstore/dirstore/internal/manifest"
)

// A store with Options.MaxBytes is a bounded cache. Its budget counts the
// bytes of its values (Stats.Bytes) plus the bytes that writes in progress
// have reserved: a write reserves what it adds before it writes (the
// value's size less the size of the value it replaces), evicting least
// recently used keys until the reservation fits, and settles it when it
// commits. So Bytes never exceeds MaxBytes, however many goroutines write.
//
// An eviction is a Delete with the store's durability (through the write
// buffer in NoSync mode), of a key chosen by scanning the manifest's
// access-order index from its oldest record (recency.go). A record is
// checked with its key's stripe held: a stale one is deleted, a key read
// since its record was written gets a record of that read's time (and is
// met again later in the scan), and the key being set is never chosen.

// victim is a key an eviction removed.
type victim struct {
	key  string
	size int64
}

// evictor is a bounded store's eviction state.
type evictor struct {
	// mu is held by one eviction scan at a time.
	mu sync.Mutex
	// floor is a time before which the access-order index holds no live
	// record: scans start there, past the deletions at the front of the
	// index that the manifest has not compacted away yet.
	floor int64
	// queue holds the oldest access records, read ahead (see evict), up
	// to next, the last one read (zero: none since the queue was reset);
	// gen is the recency generation when it was read.
	queue []manifest.Access
	next  manifest.Access
	gen   uint64

	count   atomic.Int64 // evictions since Open
	logged  atomic.Int64 // evictions already reported to the Logger
	logSize atomic.Int64 // bytes evicted since the last report

	listenMu  sync.Mutex
	listeners []*func(key string, size int64)
}

// tooLarge returns ErrTooLarge for a value of n bytes.
func (s *Store) tooLarge(n int64) error {
	return fmt.Errorf("%w: %d bytes, MaxBytes %d", ErrTooLarge, n, s.opts.MaxBytes)
}

// errNoVictim means nothing could be evicted to make room.
var errNoVictim = errors.New("dirstore: nothing left to evict")

// reserve reserves n bytes of the budget for a write of key, evicting least
// recently used keys (never key) until they fit. It returns the
// reservation, to be passed to the commit (which settles it) or to
// unreserve, and appends what it evicted to *evicted.
func (s *Store) reserve(key string, n int64, evicted *[]victim) (int64, error) {
	max := s.opts.MaxBytes
	if max <= 0 || n <= 0 {
		return 0, nil
	}
	if n > max {
		return 0, s.tooLarge(n)
	}
	idle := 0
	for {
		u := s.used.Load()
		if u+n <= max {
			if mutated(mutNoReserve) {
				return 0, nil
			}
			if s.used.CompareAndSwap(u, u+n) {
				return n, nil
			}
			continue
		}
		freed, err := s.evict(u+n-max, key, 0, evicted)
		if err != nil {
			return 0, err
		}
		if freed > 0 {
			idle = 0
			continue
		}
		// Nothing to evict: the bytes are other writes' reservations,
		// values in the write buffer, which have no access record until
		// they are applied, or pinned keys.
		if s.wb.on() && !s.wb.empty() {
			if err := s.applyBuffered(); err != nil {
				return 0, fmt.Errorf("applying buffered writes: %w", err)
			}
		} else if s.used.Load()+n <= max {
			continue // another write gave its room back meanwhile
		} else if idle > 20 && s.used.Load() == s.bytes.Load() && s.rec.minInflight(math.MaxInt64) == math.MaxInt64 {
			// No other write holds room that it could give back, or
			// writes a record that the scan waits for, and a few more
			// scans (after other writes' records landed) found nothing.
			if p := s.pins.count(); p > 0 {
				return 0, fmt.Errorf("%w: %d bytes wanted, %d keys pinned (Bytes %d, MaxBytes %d)", ErrPinned, n, p, s.bytes.Load(), max)
			}
			return 0, fmt.Errorf("%w: %d bytes wanted (Bytes %d, MaxBytes %d)", errNoVictim, n, s.bytes.Load(), max)
		}
		idle++
		if idle > 2000 && s.used.Load() == s.bytes.Load() {
			return 0, fmt.Errorf("%w: no key to evict for %d bytes (Bytes %d, MaxBytes %d)", errNoVictim, n, s.bytes.Load(), max)
		}
		time.Sleep(time.Duration(min(idle, 100)) * 10 * time.Microsecond)
	}
}

// unreserve gives back a reservation that was not used.
func (s *Store) unreserve(res int64) {
	if res != 0 {
		s.used.Add(-res)
	}
}

// account records that the values grew by d bytes (d < 0: shrank), with
// res bytes of the budget reserved for it.
func (s *Store) account(d, res int64) {
	s.bytes.Add(d)
	s.used.Add(d - res)
}

// errMoreRoom is what a commit returns when the value it replaces turned
// out smaller than its reservation assumed: the caller reserves the
// difference (see needRoom) and commits again.
type errMoreRoom struct{ need int64 }

func (e *errMoreRoom) Error() string { return fmt.Sprintf("dirstore: %d more bytes needed", e.need) }

// settle checks, at a commit, that reservation res covers growth d, taking
// more of the budget if it is free. If it is not, it returns errMoreRoom.
func (s *Store) settle(d int64, res *int64) error {
	max := s.opts.MaxBytes
	if max <= 0 || d <= *res || mutated(mutNoReserve) {
		return nil
	}
	extra := d - *res
	for {
		u := s.used.Load()
		if u+extra > max {
			return &errMoreRoom{need: extra}
		}
		if s.used.CompareAndSwap(u, u+extra) {
			*res += extra
			return nil
		}
	}
}

// moreRoom, after a commit returned errMoreRoom, reserves what it needs on
// top of *res, evicting.
func (s *Store) moreRoom(key string, err error, res *int64, evicted *[]victim) error {
	var m *errMoreRoom
	if !errors.As(err, &m) {
		return err
	}
	// Give back what is held while waiting, so that writers waiting for
	// room never hold any.
	total := *res + m.need
	s.unreserve(*res)
	*res = 0
	r, err := s.reserve(key, total, evicted)
	*res = r
	return err
}

// outcome is what the eviction scan did with one access record.
type outcome int

const (
	kept    outcome = iota // the key stays, and so does its record
	gone                   // the record was stale, or its key is on its way out
	moved                  // the key was read since: it has a later record now
	evicted                // the key was evicted
)

// queueLen is how many of the oldest access records the eviction scan
// reads ahead, so that a Set that evicts one key need not open an iterator.
const queueLen = 64

// evict evicts least recently used keys, never exclude, until need bytes
// are freed or, with before > 0, every key last used before it. It returns
// the bytes freed and appends the victims to *out.
//
// The candidates come from a queue of the oldest access records, read
// ahead. It stays exact: records written later with earlier times are
// those of reads (a flush of noted reads makes the queue be read again,
// see recency.gen), and those of writes still in flight when it was read
// (it stops before the first of them); a key moved by evictOne goes back
// into it in order.
func (s *Store) evict(need int64, exclude string, before int64, out *[]victim) (freed int64, err error) {
	ev := &s.evictor
	ev.mu.Lock()
	defer ev.mu.Unlock()
	i := 0 // queue[:i] are kept records (exclude's)
	for freed < need {
		if gen := s.rec.gen.Load(); gen != ev.gen {
			ev.floor = ev.floorNow()
			ev.queue, ev.next, ev.gen, i = ev.queue[:0], manifest.Access{}, gen, 0
		}
		if i == len(ev.queue) {
			if err := s.fillQueue(); err != nil {
				return freed, err
			}
			if i == len(ev.queue) {
				break // nothing more to evict
			}
		}
		a := ev.queue[i]
		if before > 0 && a.Time >= before {
			break
		}
		what, size, u, err := s.evictOne(a, exclude)
		if err != nil {
			return freed, fmt.Errorf("evicting %s: %w", quoteKey(a.Key), err)
		}
		if what == kept {
			i++
			continue
		}
		ev.queue = slices.Delete(ev.queue, i, i+1)
		switch what {
		case evicted:
			freed += size
			*out = append(*out, victim{a.Key, size})
			ev.count.Add(1)
			ev.logSize.Add(size)
			s.counters.evictions.Add(1)
		case moved:
			// Back in the queue in order, if it falls where the queue was
			// read; a later fill reads it otherwise.
			m := manifest.Access{Time: u, Key: a.Key}
			if compareAccess(m, ev.next) <= 0 {
				j, _ := slices.BinarySearchFunc(ev.queue, m, compareAccess)
				ev.queue = slices.Insert(ev.queue, j, m)
			}
		}
	}
	ev.floor = ev.floorNow()
	return freed, nil
}

// floorNow returns the floor as the queue shows it: every live record is
// at or after the first queued one, or, with none queued, at or after the
// last one read.
func (ev *evictor) floorNow() int64 {
	switch {
	case len(ev.queue) > 0:
		return ev.queue[0].Time
	case ev.next != (manifest.Access{}):
		return ev.next.Time
	}
	return ev.floor
}

// fillQueue appends to the queue the access records after it.
func (s *Store) fillQueue() error {
	ev := &s.evictor
	from, after := ev.floor, ev.next
	read := after != (manifest.Access{})
	if read {
		from = after.Time
	}
	// Writes in flight may still commit records of their times.
	limit := s.rec.minInflight(math.MaxInt64)
	added := 0
	for a, err := range s.man.Accesses(from) {
		if err != nil {
			return s.scanErr(err)
		}
		if read && compareAccess(a, after) <= 0 {
			continue // read already
		}
		if a.Time >= limit || added == queueLen {
			break
		}
		ev.queue = append(ev.queue, a)
		ev.next = a
		added++
	}
	return nil
}

func compareAccess(a, b manifest.Access) int {
	if c := cmp.Compare(a.Time, b.Time); c != 0 {
		return c
	}
	return strings.Compare(a.Key, b.Key)
}

func (s *Store) scanErr(err error) error {
	return fmt.Errorf("dirstore: %s: scanning the access order: %w", s.dir, err)
}

// evictOne checks access record a and evicts its key if it is current.
// For a key read since the record was written it writes the record of the
// read instead (moved, with its time u).
func (s *Store) evictOne(a manifest.Access, exclude string) (what outcome, size, u int64, err error) {
	if a.Key == exclude || (s.pins.has(a.Key) && !mutated(mutPinsIgnored)) {
		return kept, 0, 0, nil
	}
	w := &s.wb
	if w.on() {
		if _, ok := w.get(a.Key); ok {
			// A buffered Set gives it a new record when applied; a
			// buffered Delete removes it.
			return gone, 0, 0, nil
		}
		if err := s.versions.touch(s); err != nil {
			return kept, 0, 0, err
		}
		// Buffered writes take order before the stripe.
		w.order.RLock()
		defer w.order.RUnlock()
	} else if err := s.versions.touch(s); err != nil {
		return kept, 0, 0, err
	}
	mu := s.stripe(a.Key)
	mu.Lock()
	defer mu.Unlock()
	if w.on() {
		if _, ok := w.get(a.Key); ok {
			return gone, 0, 0, nil
		}
	}
	e, had, err := s.lookupLocked(a.Key)
	if err != nil {
		return kept, 0, 0, err
	}
	t, ok, err := s.man.Recency(a.Key)
	if err != nil {
		return kept, 0, 0, s.scanErr(err)
	}
	if !had || !ok || t != a.Time {
		b := s.man.NewBatch()
		b.DeleteAccess(a.Time, a.Key)
		if !had && ok && t == a.Time {
			b.DeleteRecency(a.Key, t)
		}
		if err := b.Commit(false); err != nil {
			return kept, 0, 0, s.fail(err)
		}
		return gone, 0, 0, nil
	}
	if u, ok := s.rec.used(a.Key); ok && u > t {
		b := s.man.NewBatch()
		b.SetRecency(a.Key, t, true, u)
		if err := b.Commit(false); err != nil {
			return kept, 0, 0, s.fail(err)
		}
		s.rec.forgetUse(a.Key, u)
		return moved, 0, u, nil
	}
	if w.on() {
		if err := s.enqueueLocked(a.Key, pendingOp{del: true}, nil); err != nil {
			return kept, 0, 0, err
		}
		return evicted, e.Size, 0, nil
	}
	old, _, _, err := s.commitLocked(a.Key, nil, nil, false)
	if err != nil {
		return kept, 0, 0, err
	}
	// The file goes like a deleted one's: a stream that has it open keeps
	// reading it (the collector removes, never reuses, a pinned file).
	s.discard(fileName(a.Key, old), old.Size)
	return evicted, old.Size, 0, nil
}

// notifyEvicted calls Options.OnEvict and the internal listeners (a
// Buffer's) for each victim. It is called with no lock held.
func (s *Store) notifyEvicted(vs []victim) {
	if len(vs) == 0 {
		return
	}
	s.evictor.listenMu.Lock()
	ls := s.evictor.listeners
	s.evictor.listenMu.Unlock()
	for _, v := range vs {
		for _, l := range ls {
			(*l)(v.key, v.size)
		}
		if s.opts.OnEvict != nil {
			s.opts.OnEvict(v.key, v.size)
		}
	}
}

// onEvict registers fn to learn of every eviction, after it happened; the
// returned function unregisters it.
func (s *Store) onEvict(fn func(key string, size int64)) (remove func()) {
	ev := &s.evictor
	p := &fn
	ev.listenMu.Lock()
	ev.listeners = append(append([]*func(string, int64){}, ev.listeners...), p)
	ev.listenMu.Unlock()
	return func() {
		ev.listenMu.Lock()
		defer ev.listenMu.Unlock()
		var keep []*func(string, int64)
		for _, l := range ev.listeners {
			if l != p {
				keep = append(keep, l)
			}
		}
		ev.listeners = keep
	}
}

// report logs the evictions since the last report, at most once per
// background tick.
func (ev *evictor) report(s *Store) {
	n, l := ev.count.Load(), ev.logged.Load()
	if n == l || !ev.logged.CompareAndSwap(l, n) {
		return
	}
	s.opts.Logger.Info("dirstore: evicted keys", "dir", s.dir, "count", n-l, "size", ev.logSize.Swap(0),
		"bytes", s.bytes.Load(), "max", s.opts.MaxBytes)
}

// Trim evicts least recently used keys until Bytes <= maxBytes, and
// returns how many it evicted. It works on any store, bounded or not (for
// a bounded one, later Sets still evict down to MaxBytes only). Options.OnEvict
// is called for each, after Trim's work is done.
func (s *Store) Trim(maxBytes int64) (evicted int, err error) {
	if err := s.begin("trim", "", true); err != nil {
		return 0, err
	}
	var vs []victim
	err = func() error {
		defer s.closeMu.RUnlock()
		for {
			need := s.bytes.Load() - max(maxBytes, 0)
			if need <= 0 {
				return nil
			}
			freed, err := s.evict(need, "", 0, &vs)
			if err != nil {
				return err
			}
			if freed == 0 {
				// What is left waits in the write buffer, with no access
				// record yet.
				if !s.wb.on() || s.wb.empty() {
					return fmt.Errorf("%w: %d bytes left (Bytes %d)", errNoVictim, need, s.bytes.Load())
				}
				if err := s.applyBuffered(); err != nil {
					return fmt.Errorf("applying buffered writes: %w", err)
				}
			}
		}
	}()
	s.notifyEvicted(vs)
	s.evictor.report(s)
	if err != nil {
		return len(vs), fmt.Errorf("dirstore: trim %s: %w", s.dir, readOnlyErr(err))
	}
	return len(vs), nil
}

// evictIdle evicts the keys last used more than MaxIdle ago.
func (s *Store) evictIdle() (int, error) {
	if s.opts.MaxIdle <= 0 {
		return 0, nil
	}
	before := s.rec.clock().Add(-s.opts.MaxIdle).UnixNano()
	var vs []victim
	_, err := s.evict(math.MaxInt64, "", before, &vs)
	s.notifyEvicted(vs)
	return len(vs), err
}

// openBudget enforces MaxIdle and MaxBytes at Open, and starts the
// background loop that records reads and evicts idle keys.
func (s *Store) openBudget() error {
	if s.rec.on {
		s.rec.start(s)
	}
	var vs []victim
	var err error
	if s.opts.MaxIdle > 0 {
		_, err = s.evictIdle()
	}
	if need := s.bytes.Load() - s.opts.MaxBytes; err == nil && s.opts.MaxBytes > 0 && need > 0 {
		_, err = s.evict(need, "", 0, &vs)
	}
	s.notifyEvicted(vs)
	s.evictor.report(s)
	if err != nil {
		// The store is open all the same: the next Set evicts (or reports
		// why it cannot).
		s.opts.Logger.Error("dirstore: evicting at Open failed", "dir", s.dir, "err", err)
	}
	return nil
}

// hasNow reports whether key has a value, for a Buffer hearing of an
// eviction: without closeMu, which a Close waiting for the eviction's
// goroutine may hold. On an error it says yes (the Buffer keeps the key
// and finds out at its next Get).
func (s *Store) hasNow(key string) bool {
	if op, ok := s.wb.get(key); ok {
		return !op.del
	}
	_, ok, err := s.peekEntry(key)
	return ok || err != nil
}
