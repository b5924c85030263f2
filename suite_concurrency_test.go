package dirstore_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/backends"
)

var concDuration = flag.Duration("conc.duration", 0, "how long each TestConcurrency run lasts (0: 1s, 400ms under -race)")

// Kinds of events in a per-key history.
const (
	evSet     = iota // wrote value id
	evDel            // a Delete that succeeded: wrote "absent" (and read "present")
	evRead           // read value id, or absent (id 0)
	evPresent        // saw the key present, value unknown (Has, Keys)
)

// histEvent is one operation on one key, with its invocation and response
// times on a logical clock shared by all goroutines.
type histEvent struct {
	kind      int
	id        uint64 // evSet, evRead: the value's id; 0 for a read of "absent"
	inv, resp int64
	op        string // for messages
}

// history collects the events of one object (a Store or a Buffer) per key.
type history struct {
	mu     sync.Mutex
	events map[string][]histEvent
}

func (h *history) add(key string, e histEvent) {
	h.mu.Lock()
	h.events[key] = append(h.events[key], e)
	h.mu.Unlock()
}

// checkRegister checks one key's history against a register (a map entry)
// whose writes are Sets of unique values and Deletes, and reports what is
// not linearizable. It is sound (a linearizable history always passes) and
// checks these necessary conditions:
//
//   - Value reads, Sets and Deletes (as writes of a unique "absent" token,
//     their read of "present" set aside): the interval-based ("zone") check
//     of Gibbons and Korach for registers with unique writes, which is exact
//     for that part of the history. For each written value, its cluster is
//     the write and the reads that returned it; the cluster's zone runs from
//     its earliest response to its latest invocation (a forward zone) or, if
//     that is empty, back from its latest invocation to its earliest
//     response (a backward zone). The history is linearizable if and only if
//     no read returns a value never written, or before its write was
//     invoked; no two forward zones overlap; and no backward zone lies
//     inside a forward one. This catches stale reads (a value read after a
//     later write finished), reads of the future, and reads that disagree
//     on the order of writes.
//   - A read of "absent" needs a Delete (or the empty start) that began
//     before the read ended with no Set wholly between the two.
//   - A read of "present" (Has, Keys, a successful Delete) needs a Set that
//     began before it ended with no successful Delete wholly between.
func checkRegister(events []histEvent) error {
	var writes, absents, presents []histEvent
	reads := map[uint64][]histEvent{}
	var sets, dels []histEvent
	dels = append(dels, histEvent{kind: evDel, inv: 0, resp: 0, op: "start"}) // the empty start
	tomb := uint64(1) << 63
	for _, e := range events {
		switch e.kind {
		case evSet:
			writes = append(writes, e)
			sets = append(sets, e)
		case evDel:
			tomb++
			e.id = tomb
			writes = append(writes, e)
			dels = append(dels, e)
			presents = append(presents, e)
		case evRead:
			if e.id == 0 {
				absents = append(absents, e)
			} else {
				reads[e.id] = append(reads[e.id], e)
			}
		case evPresent:
			presents = append(presents, e)
		}
	}
	// Zones.
	type zone struct {
		lo, hi int64
		id     uint64
	}
	var fwd, bwd []zone
	written := map[uint64]bool{}
	for _, w := range writes {
		written[w.id] = true
		f, s := w.resp, w.inv
		for _, r := range reads[w.id] {
			if r.resp < w.inv {
				return fmt.Errorf("%s [%d,%d] returned the value of %s [%d,%d], which began after it ended", r.op, r.inv, r.resp, w.op, w.inv, w.resp)
			}
			f, s = min(f, r.resp), max(s, r.inv)
		}
		if f < s {
			fwd = append(fwd, zone{f, s, w.id})
		} else {
			bwd = append(bwd, zone{s, f, w.id})
		}
	}
	for id, rs := range reads {
		if !written[id] {
			return fmt.Errorf("%s [%d,%d] returned the value of write %d, never written to this key", rs[0].op, rs[0].inv, rs[0].resp, id)
		}
	}
	sort.Slice(fwd, func(i, j int) bool { return fwd[i].lo < fwd[j].lo })
	for i := 1; i < len(fwd); i++ {
		if fwd[i].lo < fwd[i-1].hi {
			return fmt.Errorf("the values of writes %d and %d were each read after the other was overwritten (forward zones [%d,%d] and [%d,%d] overlap)",
				fwd[i-1].id, fwd[i].id, fwd[i-1].lo, fwd[i-1].hi, fwd[i].lo, fwd[i].hi)
		}
	}
	for _, b := range bwd {
		// The forward zone starting last at or before b.lo is the only one
		// that can contain b, since forward zones do not overlap.
		i := sort.Search(len(fwd), func(i int) bool { return fwd[i].lo > b.lo }) - 1
		if i >= 0 && fwd[i].hi > b.hi {
			return fmt.Errorf("write %d [%d,%d] happened wholly while the value of write %d was still being read after it was overwritten (zone [%d,%d])",
				b.id, b.lo, b.hi, fwd[i].id, fwd[i].lo, fwd[i].hi)
		}
	}
	// Absent and present reads: "w, then nothing of the other kind wholly
	// between w and r". The best witness w is the one that ended last among
	// those that began before r ended.
	bestDel, bestSet := witnessIndex(dels), witnessIndex(sets)
	setAfter, delAfter := intervalIndex(sets), intervalIndex(dels)
	for _, r := range absents {
		w, ok := bestDel(r)
		if !ok {
			return fmt.Errorf("%s [%d,%d] found the key absent, but nothing deleted it", r.op, r.inv, r.resp)
		}
		if s, found := setAfter(w.resp, r.inv); found {
			return fmt.Errorf("%s [%d,%d] found the key absent, but %s [%d,%d] set it after the last possible delete (%s [%d,%d]) and before the read began",
				r.op, r.inv, r.resp, s.op, s.inv, s.resp, w.op, w.inv, w.resp)
		}
	}
	for _, r := range presents {
		w, ok := bestSet(r)
		if !ok {
			return fmt.Errorf("%s [%d,%d] found the key present, but no Set began before it ended", r.op, r.inv, r.resp)
		}
		if d, found := delAfter(w.resp, r.inv); found {
			return fmt.Errorf("%s [%d,%d] found the key present, but %s [%d,%d] deleted it after the last possible Set (%s [%d,%d]) and before the read began",
				r.op, r.inv, r.resp, d.op, d.inv, d.resp, w.op, w.inv, w.resp)
		}
	}
	return nil
}

// witnessIndex returns a function that finds, among ws, the event that
// ended last among those that began before r ended.
func witnessIndex(ws []histEvent) func(r histEvent) (histEvent, bool) {
	byInv := slices.Clone(ws)
	slices.SortFunc(byInv, func(a, b histEvent) int { return int(a.inv - b.inv) })
	best := make([]int, len(byInv)) // index of the latest response among byInv[:i+1]
	for i := range byInv {
		best[i] = i
		if i > 0 && byInv[best[i-1]].resp > byInv[i].resp {
			best[i] = best[i-1]
		}
	}
	return func(r histEvent) (histEvent, bool) {
		i := sort.Search(len(byInv), func(i int) bool { return byInv[i].inv >= r.resp }) - 1
		if i < 0 {
			return histEvent{}, false
		}
		return byInv[best[i]], true
	}
}

// intervalIndex returns a function that finds an event of es that began
// after t0 and ended before t1, if there is one.
func intervalIndex(es []histEvent) func(t0, t1 int64) (histEvent, bool) {
	byInv := slices.Clone(es)
	slices.SortFunc(byInv, func(a, b histEvent) int { return int(a.inv - b.inv) })
	minResp := make([]int, len(byInv)) // index of the earliest response among byInv[i:]
	for i := len(byInv) - 1; i >= 0; i-- {
		minResp[i] = i
		if i+1 < len(byInv) && byInv[minResp[i+1]].resp < byInv[i].resp {
			minResp[i] = minResp[i+1]
		}
	}
	return func(t0, t1 int64) (histEvent, bool) {
		i := sort.Search(len(byInv), func(i int) bool { return byInv[i].inv > t0 })
		if i == len(byInv) || byInv[minResp[i]].resp >= t1 {
			return histEvent{}, false
		}
		return byInv[minResp[i]], true
	}
}

// TestConcurrencyChecker feeds checkRegister histories that are and are not
// linearizable, so that the checker itself is known to catch what it should.
func TestConcurrencyChecker(t *testing.T) {
	set := func(id uint64, inv, resp int64) histEvent {
		return histEvent{evSet, id, inv, resp, fmt.Sprintf("Set#%d", id)}
	}
	del := func(inv, resp int64) histEvent { return histEvent{evDel, 0, inv, resp, "Delete"} }
	get := func(id uint64, inv, resp int64) histEvent { return histEvent{evRead, id, inv, resp, "Get"} }
	has := func(inv, resp int64) histEvent { return histEvent{evPresent, 0, inv, resp, "Has"} }
	for _, c := range []struct {
		name string
		ok   bool
		h    []histEvent
	}{
		{"empty", true, nil},
		{"read of the start", true, []histEvent{get(0, 1, 2)}},
		{"sequential", true, []histEvent{set(1, 1, 2), get(1, 3, 4), set(2, 5, 6), get(2, 7, 8), del(9, 10), get(0, 11, 12)}},
		{"concurrent read sees either", true, []histEvent{set(1, 1, 2), set(2, 3, 6), get(1, 4, 5), get(2, 4, 7)}},
		{"stale read", false, []histEvent{set(1, 1, 2), set(2, 3, 4), get(1, 5, 6)}},
		{"read of the future", false, []histEvent{get(1, 1, 2), set(1, 3, 4)}},
		{"value never written", false, []histEvent{set(1, 1, 2), get(7, 3, 4)}},
		{"new then old", false, []histEvent{set(1, 1, 3), set(2, 2, 11), get(2, 4, 5), get(1, 6, 7)}},
		{"old then new, overlapping writes", true, []histEvent{set(1, 1, 10), set(2, 2, 11), get(2, 3, 4), get(1, 5, 6)}},
		{"old then new", true, []histEvent{set(1, 1, 10), set(2, 2, 11), get(1, 3, 4), get(2, 5, 6)}},
		{"absent after a finished Set", false, []histEvent{set(1, 1, 2), get(0, 3, 4)}},
		{"absent after a Delete", true, []histEvent{set(1, 1, 2), del(3, 6), get(0, 4, 5)}},
		{"absent, then a Set wholly between", false, []histEvent{del(1, 2), set(1, 3, 4), get(0, 5, 6)}},
		{"present with no Set", false, []histEvent{has(1, 2)}},
		{"present after a Delete", false, []histEvent{set(1, 1, 2), del(3, 4), has(5, 6)}},
		{"two Deletes, no Set between", false, []histEvent{set(1, 1, 2), del(3, 4), del(5, 6)}},
		{"Delete of the start", false, []histEvent{del(1, 2)}},
		{"read of a deleted value", false, []histEvent{set(1, 1, 2), del(3, 4), get(1, 5, 6)}},
	} {
		err := checkRegister(c.h)
		if (err == nil) != c.ok {
			t.Errorf("%s: checkRegister = %v, want linearizable: %t", c.name, err, c.ok)
		}
	}
}

// TestConcurrency runs 1, 8, 64 and 256 goroutines for a bounded time
// (-conc.duration), mixing on 16 overlapping keys of a Store: Set,
// SetBuffers, SetFrom, Delete, Get, View, Has, Keys, Verify and reads of whole
// Streams from Store.Open (through the default cache, a small shared one
// that evicts, and none), and on 16 keys of a Buffer over a second Store
// (with a memory tier small enough to spill): Set, Get, Delete, Has, Keys
// and Evict. Every operation's invocation and response times come from one
// atomic counter, every write writes a value that no other write does, and
// every value read must be whole. Each key's history must then pass
// checkRegister (see there for what it verifies). After the Buffer and the
// Stores are closed, the goroutine count must come back to what it was.
// Both durability modes; Mmap and a small write buffer with NoSync.
func TestConcurrency(t *testing.T) {
	d := *concDuration
	if d == 0 {
		d = time.Second
		if underRace {
			d = 400 * time.Millisecond
		}
	}
	// Warm what lives for the whole process, so that it does not count as
	// leaked: the I/O engine and the default cache.
	backends.Default()
	dirstore.DefaultCache()
	for _, n := range []int{1, 8, 64, 256} {
		for _, nosync := range []bool{false, true} {
			t.Run(fmt.Sprintf("goroutines=%d,nosync=%t", n, nosync), func(t *testing.T) {
				runConcurrency(t, n, nosync, d)
			})
		}
	}
}

const concKeys = 16

// concMaxValue bounds the test's values; the Buffer's memory tier holds
// about eight of them.
const concMaxValue = 4 << 10

func runConcurrency(t *testing.T, n int, nosync bool, d time.Duration) {
	before := runtime.NumGoroutine()
	// NoSync's write buffer is small: it takes values up to 1 KiB, so
	// writes go through it and around it, and it fills all the time.
	opts := &dirstore.Options{NoSync: nosync, Mmap: nosync, WriteBuffer: 16 << 10, CheckpointInterval: 20 * time.Millisecond}
	// In memory where possible: file creation on a disk file system costs
	// a lot of system time, and more operations mean more interleavings.
	s, err := dirstore.Open(shmTempDir(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	slow, err := dirstore.Open(shmTempDir(t), &dirstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	buf, err := dirstore.NewBuffer[[]byte](slow, dirstore.BufferOptions[[]byte]{MaxWeight: 8 * concMaxValue})
	if err != nil {
		t.Fatal(err)
	}
	small := dirstore.NewCache(64 << 10)
	var clock atomic.Int64
	var ids atomic.Uint64
	sh := &history{events: map[string][]histEvent{}}
	bh := &history{events: map[string][]histEvent{}}
	skeys, bkeys := make([]string, concKeys), make([]string, concKeys)
	for i := range concKeys {
		skeys[i], bkeys[i] = fmt.Sprintf("s%02d", i), fmt.Sprintf("b%02d", i)
	}
	skeys[0] = "a/b c#%" // an escaped name rides along

	var failures atomic.Int64
	fail := func(format string, args ...any) {
		if failures.Add(1) <= 10 {
			t.Errorf(format, args...)
		}
	}
	// idOf checks that v is a whole value and returns its id.
	idOf := func(op, key string, v []byte) uint64 {
		id, ok := valueID(v, concMaxValue)
		if !ok {
			fail("%s(%q) returned %d bytes that no write wrote (torn or foreign)", op, key, len(v))
		}
		return id
	}
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	var ops atomic.Int64
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), uint64(n)))
			count := 0
			for ; count%16 != 0 || time.Now().Before(deadline); count++ {
				concOp(rng, s, buf, small, skeys, bkeys, sh, bh, &clock, &ids, fail, idOf)
			}
			ops.Add(int64(count))
		}()
	}
	wg.Wait()
	// A last read of every key, after everything.
	for _, k := range skeys {
		inv := clock.Add(1)
		v, err := s.Get(k)
		resp := clock.Add(1)
		var id uint64
		switch {
		case err == nil:
			id = idOf("final Get", k, v)
		case !errors.Is(err, dirstore.ErrNotFound):
			fail("final Get(%q): %v", k, err)
			continue
		}
		sh.add(k, histEvent{evRead, id, inv, resp, "final Get"})
	}
	events := 0
	for name, h := range map[string]*history{"Store": sh, "Buffer": bh} {
		for k, es := range h.events {
			events += len(es)
			if err := checkRegister(es); err != nil {
				fail("%s key %q (%d operations): not linearizable: %v", name, k, len(es), err)
			}
		}
	}
	if err := s.Verify(func(key string, err error) bool {
		if err != nil {
			fail("Verify: %v", err)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if err := buf.Close(); err != nil {
		t.Error(err)
	}
	for _, c := range []*dirstore.Store{s, slow} {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}
	t.Logf("%d operations (%d per key and object), all linearizable", ops.Load(), events/(2*concKeys))
	// No goroutine leaked: allow a moment for exiting ones to finish.
	var now int
	for range 200 {
		if now = runtime.NumGoroutine(); now <= before {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	stacks := make([]byte, 1<<20)
	stacks = stacks[:runtime.Stack(stacks, true)]
	t.Errorf("%d goroutines before, %d two seconds after Close:\n%s", before, now, stacks)
}

// concOpKind is one kind of operation of TestConcurrency.
type concOpKind int

const (
	concOpSet concOpKind = iota
	concOpSetBuffers
	concOpSetFrom
	concOpDelete
	concOpGet
	concOpView
	concOpHas
	concOpListKeys
	concOpVerify
	concOpStream
	concOpBufSet
	concOpBufGet
	concOpBufDelete
	concOpBufHas
	concOpBufKeys
	concOpBufEvict
	numConcOps
)

// concWeights is how often each kind of operation runs, relative to the
// others (as pebble's metamorphic config weighs its operations): adding a
// kind adds a weight and leaves the others' alone. They sum to 100, so a
// seed draws the operations it drew when they were thresholds.
var concWeights = [numConcOps]int{
	concOpSet:        12,
	concOpSetBuffers: 4,
	concOpSetFrom:    4,
	concOpDelete:     7,
	concOpGet:        13,
	concOpView:       8,
	concOpHas:        4,
	concOpListKeys:   3,
	concOpVerify:     1,
	concOpStream:     9,
	concOpBufSet:     10,
	concOpBufGet:     10,
	concOpBufDelete:  5,
	concOpBufHas:     4,
	concOpBufKeys:    2,
	concOpBufEvict:   4,
}

// pickConcOp draws a kind of operation by concWeights.
func pickConcOp(rng *rand.Rand) concOpKind {
	sum := 0
	for _, w := range concWeights {
		sum += w
	}
	n := rng.IntN(sum)
	for op, w := range concWeights {
		if n < w {
			return concOpKind(op)
		}
		n -= w
	}
	panic("unreachable")
}

// concOp does one random operation and records it.
func concOp(rng *rand.Rand, s *dirstore.Store, buf *dirstore.Buffer[[]byte], small *dirstore.Cache,
	skeys, bkeys []string, sh, bh *history, clock *atomic.Int64, ids *atomic.Uint64,
	fail func(string, ...any), idOf func(string, string, []byte) uint64) {
	k := skeys[rng.IntN(concKeys)]
	bk := bkeys[rng.IntN(concKeys)]
	rec := func(h *history, key string, kind int, id uint64, inv int64, op string) {
		h.add(key, histEvent{kind, id, inv, clock.Add(1), op})
	}
	// read records a read that returned v, err.
	read := func(h *history, key, op string, inv int64, v []byte, err error) {
		resp := clock.Add(1)
		switch {
		case err == nil:
			h.add(key, histEvent{evRead, idOf(op, key, v), inv, resp, op})
		case errors.Is(err, fs.ErrNotExist):
			h.add(key, histEvent{evRead, 0, inv, resp, op})
		default:
			fail("%s(%q): %v", op, key, err)
		}
	}
	switch pickConcOp(rng) {
	case concOpSet:
		id := ids.Add(1)
		v := idValue(id, concMaxValue)
		inv := clock.Add(1)
		if err := s.Set(k, v); err != nil {
			fail("Set(%q): %v", k, err)
			return
		}
		rec(sh, k, evSet, id, inv, fmt.Sprintf("Set#%d", id))
	case concOpSetBuffers:
		id := ids.Add(1)
		v := idValue(id, concMaxValue)
		inv := clock.Add(1)
		if err := s.SetBuffers(k, v[:len(v)/2], v[len(v)/2:]); err != nil {
			fail("SetBuffers(%q): %v", k, err)
			return
		}
		rec(sh, k, evSet, id, inv, fmt.Sprintf("SetBuffers#%d", id))
	case concOpSetFrom:
		id := ids.Add(1)
		v := idValue(id, concMaxValue)
		inv := clock.Add(1)
		if _, err := s.SetFrom(k, bytes.NewReader(v)); err != nil {
			fail("SetFrom(%q): %v", k, err)
			return
		}
		rec(sh, k, evSet, id, inv, fmt.Sprintf("SetFrom#%d", id))
	case concOpDelete:
		inv := clock.Add(1)
		err := s.Delete(k)
		switch {
		case err == nil:
			rec(sh, k, evDel, 0, inv, "Delete")
		case errors.Is(err, dirstore.ErrNotFound):
			rec(sh, k, evRead, 0, inv, "Delete (not found)")
		default:
			fail("Delete(%q): %v", k, err)
		}
	case concOpGet:
		inv := clock.Add(1)
		v, err := s.Get(k)
		read(sh, k, "Get", inv, v, err)
	case concOpView:
		inv := clock.Add(1)
		var v []byte
		err := s.View(k, func(b []byte) error {
			// Check inside: the slice is valid only until View returns.
			if _, ok := valueID(b, concMaxValue); !ok {
				fail("View(%q) saw %d bytes that no write wrote", k, len(b))
			}
			v = slices.Clone(b)
			return nil
		})
		read(sh, k, "View", inv, v, err)
	case concOpHas:
		inv := clock.Add(1)
		ok, err := s.Has(k)
		resp := clock.Add(1)
		switch {
		case err != nil:
			fail("Has(%q): %v", k, err)
		case ok:
			sh.add(k, histEvent{evPresent, 0, inv, resp, "Has"})
		default:
			sh.add(k, histEvent{evRead, 0, inv, resp, "Has"})
		}
	case concOpListKeys:
		inv := clock.Add(1)
		var listed []string
		for key, err := range s.Keys() {
			if err != nil {
				fail("Keys: %v", err)
				return
			}
			listed = append(listed, key)
		}
		resp := clock.Add(1)
		if !slices.IsSorted(listed) || len(slices.Compact(slices.Clone(listed))) != len(listed) {
			fail("Keys = %q: not sorted or not unique", listed)
		}
		for _, key := range skeys {
			if slices.Contains(listed, key) {
				sh.add(key, histEvent{evPresent, 0, inv, resp, "Keys"})
			} else {
				sh.add(key, histEvent{evRead, 0, inv, resp, "Keys"})
			}
		}
		if len(listed) > concKeys {
			fail("Keys = %q: keys never set", listed)
		}
	case concOpVerify:
		// Verify reports only real damage, whatever writers do meanwhile.
		if err := s.Verify(func(key string, err error) bool {
			if err != nil {
				fail("Verify during writes: %v", err)
			}
			return true
		}); err != nil {
			fail("Verify: %v", err)
		}
	case concOpStream:
		// A Stream reads the version current when it was opened: the read
		// takes effect inside Open.
		var o *dirstore.StreamOptions
		switch rng.IntN(3) {
		case 1:
			o = &dirstore.StreamOptions{Cache: small, ChunkSize: 1024}
		case 2:
			o = &dirstore.StreamOptions{Cache: dirstore.NoCache}
		}
		inv := clock.Add(1)
		st, err := s.OpenStream(k, o)
		resp := clock.Add(1)
		if err != nil {
			read(sh, k, "OpenStream", inv, nil, err)
			return
		}
		var v []byte
		if rng.IntN(2) == 0 {
			v, err = io.ReadAll(st)
		} else {
			fi, serr := st.Stat()
			if serr != nil {
				fail("Stream.Stat(%q): %v", k, serr)
			} else {
				v = make([]byte, fi.Size())
				var n int
				n, err = st.ReadAt(v, 0)
				if err == io.EOF && n == len(v) {
					err = nil
				}
			}
		}
		if cerr := st.Close(); cerr != nil {
			fail("Stream.Close(%q): %v", k, cerr)
		}
		if err != nil {
			fail("reading a Stream of %q: %v", k, err)
			return
		}
		sh.add(k, histEvent{evRead, idOf("Stream", k, v), inv, resp, "Stream"})

	// The Buffer.
	case concOpBufSet:
		id := ids.Add(1)
		v := idValue(id, concMaxValue)
		inv := clock.Add(1)
		if err := buf.Set(bk, v); err != nil {
			fail("Buffer.Set(%q): %v", bk, err)
			return
		}
		rec(bh, bk, evSet, id, inv, fmt.Sprintf("Buffer.Set#%d", id))
	case concOpBufGet:
		inv := clock.Add(1)
		v, err := buf.Get(bk)
		read(bh, bk, "Buffer.Get", inv, v, err)
	case concOpBufDelete:
		inv := clock.Add(1)
		err := buf.Delete(bk)
		switch {
		case err == nil:
			rec(bh, bk, evDel, 0, inv, "Buffer.Delete")
		case errors.Is(err, fs.ErrNotExist):
			rec(bh, bk, evRead, 0, inv, "Buffer.Delete (not found)")
		default:
			fail("Buffer.Delete(%q): %v", bk, err)
		}
	case concOpBufHas:
		inv := clock.Add(1)
		ok, err := buf.Has(bk)
		resp := clock.Add(1)
		switch {
		case err != nil:
			fail("Buffer.Has(%q): %v", bk, err)
		case ok:
			bh.add(bk, histEvent{evPresent, 0, inv, resp, "Buffer.Has"})
		default:
			bh.add(bk, histEvent{evRead, 0, inv, resp, "Buffer.Has"})
		}
	case concOpBufKeys:
		inv := clock.Add(1)
		var listed []string
		for key := range buf.Keys() {
			listed = append(listed, key)
		}
		resp := clock.Add(1)
		if len(slices.Compact(slices.Sorted(slices.Values(listed)))) != len(listed) {
			fail("Buffer.Keys = %q: a key twice", listed)
		}
		for _, key := range bkeys {
			if slices.Contains(listed, key) {
				bh.add(key, histEvent{evPresent, 0, inv, resp, "Buffer.Keys"})
			} else {
				bh.add(key, histEvent{evRead, 0, inv, resp, "Buffer.Keys"})
			}
		}
	case concOpBufEvict:
		if _, _, err := buf.Evict(); err != nil && !errors.Is(err, fs.ErrNotExist) {
			fail("Buffer.Evict: %v", err)
		}
	}
}
