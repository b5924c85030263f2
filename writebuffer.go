package dirstore

import (
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dirstore/dirstore/internal/datadir"
	"github.com/dirstore/dirstore/internal/escape"
	"github.com/dirstore/dirstore/internal/manifest"
)

// With Options.NoSync, Sets of values up to a sixteenth of
// Options.WriteBuffer, and Deletes, are buffered: the operation is
// acknowledged once it is in memory, where reads find it, and buffered
// operations are applied (files written, manifest changed) together, in
// batches, in the background. A key overwritten while its value waits is
// written once. Each batch is one manifest commit whose undo records are
// marked as one group (manifest.Undo.More), so recovery keeps or rolls back
// a batch whole, and a batch holds exactly the operations acknowledged
// between two others: a crash leaves a prefix of the acknowledged
// operations, as for unbuffered NoSync writes (nosync.go).
//
// Writes that bypass the buffer (larger values, SetFrom) first apply what
// is buffered, holding off buffered writes meanwhile, so the manifest
// receives operations in the order they were acknowledged.
type writeBuffer struct {
	limit int64 // bytes; 0 when buffering is off

	// order is held for reading by buffered writes and for writing by
	// writes that bypass the buffer, around applying the buffer and their
	// own commit.
	order sync.RWMutex
	// applyMu is held while a batch is applied, and by bypassing writes
	// for their commit: while buffering is on, every manifest change is
	// made under it.
	applyMu sync.Mutex

	mu       sync.RWMutex
	held     atomic.Bool          // cur or applying is not empty: reads must look
	cur      map[string]pendingOp // acknowledged, not yet taken for a batch
	applying map[string]pendingOp // the batch being applied
	bytes    int64                // the cost of what cur and applying hold
	err      error                // why the last batch failed, until one succeeds
}

// pendingOp is a buffered Set (value) or Delete (del).
type pendingOp struct {
	value   []byte // owned by the buffer and never changed
	del     bool
	modTime int64 // when a Set was acknowledged, for the entry's ModTime
}

// cost is what op counts against the buffer's size: its value, its key
// and the map entry, so that Deletes fill it too.
func (op pendingOp) cost(key string) int64 { return int64(len(op.value)+len(key)) + 64 }

// maxBufferedShift sets the largest value that is buffered: the buffer's
// size shifted right by it (a sixteenth).
const maxBufferedShift = 4

func (w *writeBuffer) init(limit int64) {
	w.limit = limit
	w.cur = map[string]pendingOp{}
}

func (w *writeBuffer) on() bool { return w.limit > 0 }

// empty reports whether nothing is buffered.
func (w *writeBuffer) empty() bool { return !w.held.Load() }

// buffers reports whether a value of n bytes is buffered.
func (w *writeBuffer) buffers(n int64) bool { return w.on() && n <= w.limit>>maxBufferedShift }

// get returns key's buffered operation, if it has one.
func (w *writeBuffer) get(key string) (pendingOp, bool) {
	if !w.held.Load() {
		return pendingOp{}, false
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if op, ok := w.cur[key]; ok {
		return op, true
	}
	op, ok := w.applying[key]
	return op, ok
}

// admit waits, by applying the buffer itself, until there is room for a
// write, and returns the error of the last failed batch if applying it
// fails again: acknowledged values are never dropped, so while they cannot
// be written no more are taken.
func (s *Store) admit() error {
	w := &s.wb
	for {
		w.mu.RLock()
		full, err := w.bytes >= w.limit, w.err
		w.mu.RUnlock()
		if !full && err == nil {
			return nil
		}
		if err := s.applyBuffered(); err != nil {
			return fmt.Errorf("applying buffered writes: %w", err)
		}
	}
}

// setBuffered is SetBuffers of a value of n bytes through the buffer, with
// reservation *res (see commit).
func (s *Store) setBuffered(key string, bufs [][]byte, n int64, res *int64, evicted *[]victim) error {
	if err := s.admit(); err != nil {
		return keyErr("set", key, err)
	}
	value := make([]byte, 0, n)
	for _, b := range bufs {
		value = append(value, b...)
	}
	for {
		err := s.enqueue(key, pendingOp{value: value, modTime: time.Now().UnixNano()}, res)
		var m *errMoreRoom
		if !errors.As(err, &m) {
			return err
		}
		if err := s.moreRoom(key, err, res, evicted); err != nil {
			return keyErr("set", key, err)
		}
	}
}

// deleteBuffered is Delete through the buffer.
func (s *Store) deleteBuffered(key string) error {
	if err := s.admit(); err != nil {
		return keyErr("delete", key, err)
	}
	return s.enqueue(key, pendingOp{del: true}, nil)
}

// enqueue records op as key's latest operation and updates the counts,
// settling a Set's reservation *res as commit does.
func (s *Store) enqueue(key string, op pendingOp, res *int64) error {
	w := &s.wb
	w.order.RLock()
	defer w.order.RUnlock()
	mu := s.stripe(key)
	mu.Lock()
	defer mu.Unlock()
	return s.enqueueLocked(key, op, res)
}

// enqueueLocked is enqueue with order held for reading and the key's
// stripe held.
func (s *Store) enqueueLocked(key string, op pendingOp, res *int64) error {
	w := &s.wb
	// The key's value before op: its buffered operation, or else the
	// manifest's entry, which nothing can change meanwhile: the stripe keeps
	// other buffered writes of the key out, order keeps bypassing writes
	// out, and a batch being applied does not hold the key.
	prev, buffered := w.get(key)
	had, size := buffered && !prev.del, int64(len(prev.value))
	if !buffered {
		e, ok, err := s.lookupLocked(key)
		if err != nil {
			return keyErr(opName(op), key, err)
		}
		had, size = ok, e.Size
	}
	if op.del && !had {
		return keyErr("delete", key, ErrNotFound)
	}
	var d, reserved int64 // growth of the values, and the room reserved for it
	switch {
	case op.del:
		d = -size
	case had:
		d = int64(len(op.value)) - size
	default:
		d = int64(len(op.value))
	}
	if res != nil {
		if err := s.settle(d, res); err != nil {
			return err
		}
		reserved, *res = *res, 0
	}
	w.mu.Lock()
	if old, ok := w.cur[key]; ok {
		w.bytes -= old.cost(key)
	}
	w.cur[key] = op
	w.bytes += op.cost(key)
	w.held.Store(true)
	kick := w.bytes >= w.limit/2 // start applying it in the background
	w.mu.Unlock()
	switch {
	case op.del:
		s.count.Add(-1)
	case !had:
		s.count.Add(1)
	}
	s.account(d, reserved)
	if kick {
		s.nosync.pokeApply()
	}
	return nil
}

func opName(op pendingOp) string {
	if op.del {
		return "delete"
	}
	return "set"
}

// installInOrder is install for a write that bypasses the buffer: it
// applies everything buffered first, with buffered writes held off until
// its own commit is done. On error name is removed, as by install.
func (s *Store) installInOrder(op, key, name string, e manifest.Entry, res *int64) error {
	w := &s.wb
	if !w.on() {
		return s.install(op, key, name, e, res)
	}
	w.order.Lock()
	defer w.order.Unlock()
	w.applyMu.Lock()
	defer w.applyMu.Unlock()
	if err := s.applyLocked(); err != nil {
		s.drop(name)
		return keyErr(op, key, fmt.Errorf("applying buffered writes: %w", err))
	}
	return s.install(op, key, name, e, res)
}

// applyBuffered applies what is buffered: it writes the values' files and
// commits the batch to the manifest.
func (s *Store) applyBuffered() error {
	if !s.wb.on() {
		return nil
	}
	s.wb.applyMu.Lock()
	defer s.wb.applyMu.Unlock()
	return s.applyLocked()
}

func (s *Store) applyLocked() error {
	w := &s.wb
	w.mu.Lock()
	batch := w.cur
	if len(batch) == 0 {
		w.err = nil
		w.mu.Unlock()
		return nil
	}
	w.cur, w.applying = make(map[string]pendingOp, len(batch)), batch
	w.mu.Unlock()

	err := s.applyBatch(batch)

	w.mu.Lock()
	defer w.mu.Unlock()
	w.applying = nil
	if err != nil {
		// Nothing is dropped: the batch goes back under what came since,
		// for reads to find and for the next attempt.
		for key, op := range batch {
			if _, ok := w.cur[key]; ok {
				w.bytes -= op.cost(key)
			} else {
				w.cur[key] = op
			}
		}
		w.err = err
		return err
	}
	for key, op := range batch {
		w.bytes -= op.cost(key)
	}
	w.err = nil
	w.held.Store(len(w.cur) > 0)
	return nil
}

// applied is one operation of a batch as it is applied.
type applied struct {
	key  string
	op   pendingOp
	name string          // the new file, for a Set
	e    manifest.Entry  // the new entry, for a Set
	old  *manifest.Entry // the entry it replaces, if any
}

// applyBatch writes the files of a batch and commits it. On error nothing
// has changed, except after a failed commit (ErrFailed), whose outcome is
// unknown.
func (s *Store) applyBatch(batch map[string]pendingOp) error {
	if err := s.failedErr(); err != nil {
		return err
	}
	ops := make([]applied, 0, len(batch))
	for key, op := range batch {
		ops = append(ops, applied{key: key, op: op})
	}
	slices.SortFunc(ops, func(a, b applied) int { return strings.Compare(a.key, b.key) })

	if err := s.versions.touch(s); err != nil {
		return err
	}
	written := make([]string, 0, len(ops))
	dropWritten := func() {
		for _, name := range written {
			s.drop(name)
		}
	}
	for i := range ops {
		a := &ops[i]
		if a.op.del {
			continue
		}
		v, err := s.versions.take(s)
		if err != nil {
			dropWritten()
			return keyErr("set", a.key, err)
		}
		a.e = manifest.Entry{Version: v, Size: int64(len(a.op.value)), CRC: crc32.Checksum(a.op.value, datadir.Castagnoli), ModTime: a.op.modTime}
		a.name = escape.Name(a.key, v)
		err = s.files.Write(a.name, s.gc.spare(), [][]byte{a.op.value}, false)
		if isNoSpace(err) && s.res.release() {
			// Acknowledged values: the reserve holds room for them.
			err = s.files.Write(a.name, "", [][]byte{a.op.value}, false)
		}
		if err != nil {
			s.gc.leftover.Store(true)
			dropWritten()
			return keyErr("set", a.key, s.failIfUnsure(err))
		}
		written = append(written, a.name)
	}

	// Every manifest change is made under applyMu, so the entries read
	// here stay current until the commit. The keys' recency records change
	// with them (in a store that keeps them: recency.go); the written keys
	// count as used now.
	var t int64
	if s.rec.on {
		t = s.rec.begin()
		defer s.rec.end(t)
	}
	b := s.man.NewBatch()
	undos := make([]manifest.Undo, 0, len(ops))
	for i := range ops {
		a := &ops[i]
		old, had, err := s.peekEntry(a.key)
		var rt int64
		var rok bool
		if err == nil && had && (a.op.del || s.rec.on) {
			rt, rok, err = s.man.Recency(a.key)
		}
		if err != nil {
			b.Close()
			dropWritten()
			return keyErr(opName(a.op), a.key, err)
		}
		if had {
			a.old = &old
		}
		switch {
		case a.op.del && !had:
			continue // set and deleted again while buffered
		case a.op.del:
			b.Delete(a.key)
			if rok {
				b.DeleteRecency(a.key, rt)
			}
			undos = append(undos, manifest.Undo{Key: a.key, Old: a.old})
		default:
			b.Put(a.key, a.e)
			if s.rec.on {
				b.SetRecency(a.key, rt, rok, t)
			}
			undos = append(undos, manifest.Undo{Key: a.key, Old: a.old, New: &a.e})
		}
	}
	if err := s.nosync.commitGroup(b, undos, written); err != nil {
		// The batch may or may not have landed: both files of each key
		// stay, for the next Open to sort out.
		for i := range ops {
			s.cache(ops[i].key, nil)
		}
		s.gc.leftover.Store(true)
		return s.fail(err)
	}
	for i := range ops {
		a := &ops[i]
		if a.op.del {
			s.cache(a.key, nil)
		} else {
			s.cache(a.key, &a.e)
		}
		if a.old != nil {
			s.nosync.discard(s, fileName(a.key, *a.old), a.old.Size)
		}
	}
	return nil
}

// cache is cacheLocked taking key's stripe.
func (s *Store) cache(key string, e *manifest.Entry) {
	if s.hot == nil {
		return
	}
	mu := s.stripe(key)
	mu.Lock()
	s.cacheLocked(key, e)
	mu.Unlock()
}

// bufferedKeys returns the buffered operations of the keys with prefix, in
// key order.
func (w *writeBuffer) bufferedKeys(prefix string) []applied {
	if !w.held.Load() {
		return nil
	}
	w.mu.RLock()
	var out []applied
	for key, op := range w.cur {
		if strings.HasPrefix(key, prefix) {
			out = append(out, applied{key: key, op: op})
		}
	}
	for key, op := range w.applying {
		if _, ok := w.cur[key]; !ok && strings.HasPrefix(key, prefix) {
			out = append(out, applied{key: key, op: op})
		}
	}
	w.mu.RUnlock()
	slices.SortFunc(out, func(a, b applied) int { return strings.Compare(a.key, b.key) })
	return out
}
