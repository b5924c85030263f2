package dirstore_test

// Ports of zict's test_lru.py and test_buffer.py (zict 3.0) and more. Where
// our Buffer deliberately differs from zict, the test says so.

import (
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

// bufOptions gives the Options of a Store on an in-memory file system,
// wrapped by inj if it is not nil.
func bufOptions(inj errorfs.Injector) *dirstore.Options {
	var fsys vfs.FS = vfs.NewMem()
	if inj != nil {
		fsys = errorfs.Wrap(fsys, inj)
	}
	return &dirstore.Options{FS: fsys}
}

func bufNew[V any](tb testing.TB, s *dirstore.Store, o dirstore.BufferOptions[V]) *dirstore.Buffer[V] {
	tb.Helper()
	b, err := dirstore.NewBuffer(s, o)
	if err != nil {
		tb.Fatalf("NewBuffer: %v", err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

// bufInts is a Codec for int values.
type bufInts struct{}

func (bufInts) Marshal(v int) ([]byte, error)      { return strconv.AppendInt(nil, int64(v), 10), nil }
func (bufInts) Unmarshal(data []byte) (int, error) { return strconv.Atoi(string(data)) }

// bufIntBuffer is zict's Buffer({}, {}, n, weight=lambda k, v: v) (or with
// the default weight of 1 if byValue is false).
func bufIntBuffer(tb testing.TB, s *dirstore.Store, n int64, byValue bool, o dirstore.BufferOptions[int]) *dirstore.Buffer[int] {
	tb.Helper()
	o.MaxWeight = n
	if o.Codec == nil {
		o.Codec = bufInts{}
	}
	if byValue {
		o.Weight = func(_ string, v int) int64 { return int64(v) }
	}
	return bufNew(tb, s, o)
}

// bufTiers returns the memory tier, in recency order (least recent first),
// and the Store tier of an int buffer, read without changing recency.
func bufTiers(tb testing.TB, b *dirstore.Buffer[int], s *dirstore.Store) (mem []string, slow map[string]int) {
	tb.Helper()
	slow = map[string]int{}
	for k, err := range s.Keys() {
		if err != nil {
			tb.Fatal(err)
		}
		data, err := s.Get(k)
		if err != nil {
			tb.Fatal(err)
		}
		v, err := strconv.Atoi(string(data))
		if err != nil {
			tb.Fatal(err)
		}
		slow[k] = v
	}
	seen := map[string]bool{}
	for k := range b.Keys() {
		if seen[k] {
			tb.Fatalf("Keys yields %q twice", k)
		}
		seen[k] = true
		if _, ok := slow[k]; !ok {
			mem = append(mem, k)
		}
	}
	if len(seen) != len(mem)+len(slow) {
		tb.Fatalf("Keys %v does not cover the store tier %v", slices.Collect(maps.Keys(seen)), slow)
	}
	if n := b.Len(); n != len(seen) {
		tb.Fatalf("Len = %d, Keys yields %d", n, len(seen))
	}
	return mem, slow
}

// bufCheck checks both tiers: the memory keys (in recency order unless
// order is false), the Store's key/value pairs and the memory weight.
func bufCheck(tb testing.TB, b *dirstore.Buffer[int], s *dirstore.Store, mem []string, order bool, slow map[string]int, weight int64) {
	tb.Helper()
	gotMem, gotSlow := bufTiers(tb, b, s)
	if !order {
		slices.Sort(gotMem)
		mem = slices.Sorted(slices.Values(mem))
	}
	if !slices.Equal(gotMem, mem) {
		tb.Errorf("memory tier = %q, want %q", gotMem, mem)
	}
	if slow == nil {
		slow = map[string]int{}
	}
	if !maps.Equal(gotSlow, slow) {
		tb.Errorf("store tier = %v, want %v", gotSlow, slow)
	}
	if w := b.Weight(); w != weight {
		tb.Errorf("Weight() = %d, want %d", w, weight)
	}
}

func bufMustGet[V comparable](tb testing.TB, b *dirstore.Buffer[V], key string, want V) {
	tb.Helper()
	v, err := b.Get(key)
	if err != nil || v != want {
		tb.Fatalf("Get(%q) = %v, %v; want %v", key, v, err, want)
	}
}

func bufMustSet[V any](tb testing.TB, b *dirstore.Buffer[V], key string, v V) {
	tb.Helper()
	if err := b.Set(key, v); err != nil {
		tb.Fatalf("Set(%q): %v", key, err)
	}
}

func bufMissing[V any](tb testing.TB, b *dirstore.Buffer[V], key string) {
	tb.Helper()
	if ok, err := b.Has(key); ok || err != nil {
		tb.Errorf("Has(%q) = %v, %v; want false", key, ok, err)
	}
	if v, err := b.Get(key); !errors.Is(err, fs.ErrNotExist) {
		tb.Errorf("Get(%q) = %v, %v; want an error matching fs.ErrNotExist", key, v, err)
	}
}

// ---- test_lru.py ----

func TestBufferLRUSimple(t *testing.T) {
	s := storetest.Open(t, "", bufOptions(nil))
	b := bufIntBuffer(t, s, 2, false, dirstore.BufferOptions[int]{})
	bufMustSet(t, b, "x", 1)
	bufMustSet(t, b, "y", 2)
	bufMustGet(t, b, "x", 1)
	bufMustGet(t, b, "y", 2)
	bufCheck(t, b, s, []string{"x", "y"}, true, nil, 2)

	bufMustSet(t, b, "z", 3)
	// zict's LRU drops x; the Buffer spills it.
	bufCheck(t, b, s, []string{"y", "z"}, true, map[string]int{"x": 1}, 2)

	if err := b.Delete("y"); err != nil {
		t.Fatal(err)
	}
	bufMissing(t, b, "y")
	bufMustSet(t, b, "a", 5)
	bufCheck(t, b, s, []string{"z", "a"}, true, map[string]int{"x": 1}, 2)
}

func TestBufferLRUOverwrite(t *testing.T) {
	s := storetest.Open(t, "", bufOptions(nil))
	b := bufIntBuffer(t, s, 2, false, dirstore.BufferOptions[int]{})
	bufMustSet(t, b, "x", 1)
	bufMustSet(t, b, "y", 2)
	bufMustSet(t, b, "y", 3)
	bufCheck(t, b, s, []string{"x", "y"}, true, nil, 2)
	bufMustSet(t, b, "y", 4)
	bufCheck(t, b, s, []string{"x", "y"}, true, nil, 2)
	bufMustGet(t, b, "y", 4)
}

func TestBufferLRUCallbacks(t *testing.T) {
	var spilled []string
	count := 0
	s := storetest.Open(t, "", bufOptions(nil))
	b := bufIntBuffer(t, s, 2, false, dirstore.BufferOptions[int]{
		OnSpill: func(k string, v int) error {
			spilled = append(spilled, fmt.Sprint(k, v))
			count++
			return nil
		},
	})
	bufMustSet(t, b, "x", 1)
	bufMustSet(t, b, "y", 2)
	bufMustSet(t, b, "z", 3)
	if !slices.Equal(spilled, []string{"x1"}) || count != 1 {
		t.Fatalf("spilled %q (%d calls), want [x1]", spilled, count)
	}
}

var errBufTest = errors.New("test error")

func TestBufferLRUCallbackErrorKeepsKey(t *testing.T) {
	var tried []string
	s := storetest.Open(t, "", bufOptions(nil))
	b := bufIntBuffer(t, s, 2, false, dirstore.BufferOptions[int]{
		OnSpill: func(k string, v int) error {
			tried = append(tried, fmt.Sprint(k, v))
			return errBufTest
		},
	})
	bufMustSet(t, b, "x", 1)
	bufMustSet(t, b, "y", 2)
	if err := b.Set("z", 3); !errors.Is(err, errBufTest) {
		t.Fatalf("Set(z) = %v, want the callback's error", err)
	}
	if !slices.Equal(tried, []string{"x1"}) {
		t.Fatalf("tried to spill %q, want [x1]", tried)
	}
	// Nothing is lost and nothing is left in the Store. zict keeps x
	// oldest; here a key whose spill failed becomes the most recently used,
	// so the next eviction tries another key first.
	bufCheck(t, b, s, []string{"y", "z", "x"}, true, nil, 3)
	bufMustGet(t, b, "x", 1)
	bufMustGet(t, b, "z", 3)
}

func TestBufferLRUCallbackErrorKeepsKeyWeights(t *testing.T) {
	var tried, spilled []string
	s := storetest.Open(t, "", bufOptions(nil))
	b := bufIntBuffer(t, s, 2, true, dirstore.BufferOptions[int]{
		OnSpill: func(k string, v int) error {
			tried = append(tried, fmt.Sprint(k, v))
			if v >= 3 {
				return errBufTest
			}
			spilled = append(spilled, fmt.Sprint(k, v))
			return nil
		},
	})
	bufMustSet(t, b, "x", 1)
	// y is heavier than MaxWeight on its own. Its spill fails, after which
	// x spills to make room.
	if err := b.Set("y", 3); !errors.Is(err, errBufTest) {
		t.Fatalf("Set(y) = %v, want the callback's error", err)
	}
	if !slices.Equal(tried, []string{"y3", "x1"}) || !slices.Equal(spilled, []string{"x1"}) {
		t.Fatalf("tried %q, spilled %q; want [y3 x1], [x1]", tried, spilled)
	}
	bufCheck(t, b, s, []string{"y"}, true, map[string]int{"x": 1}, 3)

	// z is heavy too: its spill fails, then y's.
	if err := b.Set("z", 4); !errors.Is(err, errBufTest) {
		t.Fatalf("Set(z) = %v, want the callback's error", err)
	}
	if !slices.Equal(tried, []string{"y3", "x1", "z4", "y3"}) || !slices.Equal(spilled, []string{"x1"}) {
		t.Fatalf("tried %q, spilled %q; want [y3 x1 z4 y3], [x1]", tried, spilled)
	}
	// zict's order is [y z]: here failed keys become the most recent.
	bufCheck(t, b, s, []string{"z", "y"}, true, map[string]int{"x": 1}, 7)
}

func TestBufferLRUWeight(t *testing.T) {
	s := storetest.Open(t, "", bufOptions(nil))
	b := bufIntBuffer(t, s, 10, true, dirstore.BufferOptions[int]{})
	bufMustSet(t, b, "x", 5)
	if w := b.Weight(); w != 5 {
		t.Fatalf("Weight = %d", w)
	}
	bufMustSet(t, b, "y", 4)
	if w := b.Weight(); w != 9 {
		t.Fatalf("Weight = %d", w)
	}
	bufMustSet(t, b, "z", 3)
	bufCheck(t, b, s, []string{"y", "z"}, true, map[string]int{"x": 5}, 7)
	if err := b.Delete("z"); err != nil {
		t.Fatal(err)
	}
	if w := b.Weight(); w != 4 {
		t.Fatalf("Weight = %d", w)
	}
	bufMustSet(t, b, "a", 10000)
	bufCheck(t, b, s, []string{"y"}, true, map[string]int{"x": 5, "a": 10000}, 4)
}

func TestBufferLRUExplicitEvict(t *testing.T) {
	s := storetest.Open(t, "", bufOptions(nil))
	b := bufIntBuffer(t, s, 10, false, dirstore.BufferOptions[int]{})
	bufMustSet(t, b, "x", 1)
	bufMustSet(t, b, "y", 2)
	bufMustSet(t, b, "z", 3)
	for _, want := range []string{"x", "y", "z"} {
		k, w, err := b.Evict()
		if k != want || w != 1 || err != nil {
			t.Fatalf("Evict() = %q, %d, %v; want %q, 1, nil", k, w, err, want)
		}
	}
	if k, w, err := b.Evict(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Evict() of nothing = %q, %d, %v; want an error matching fs.ErrNotExist", k, w, err)
	}
	bufCheck(t, b, s, nil, true, map[string]int{"x": 1, "y": 2, "z": 3}, 0)
}

// TestBufferLRUManualEviction ports test_manual_eviction. zict builds the
// over-full state with set_noevict; here failing spills build it.
func TestBufferLRUManualEviction(t *testing.T) {
	var fail atomic.Bool
	var spilled []string
	s := storetest.Open(t, "", bufOptions(nil))
	b := bufIntBuffer(t, s, 100, true, dirstore.BufferOptions[int]{
		OnSpill: func(k string, v int) error {
			if fail.Load() {
				return errBufTest
			}
			spilled = append(spilled, k)
			return nil
		},
	})
	fail.Store(true)
	bufMustSet(t, b, "x", 70)
	if err := b.Set("y", 50); !errors.Is(err, errBufTest) {
		t.Fatalf("Set(y) = %v", err)
	}
	if err := b.Set("z", 110); !errors.Is(err, errBufTest) {
		t.Fatalf("Set(z) = %v", err)
	}
	bufCheck(t, b, s, []string{"x", "z", "y"}, true, nil, 230)
	fail.Store(false)

	if err := b.EvictUntilBelowTarget(100); err != nil {
		t.Fatal(err)
	}
	bufCheck(t, b, s, []string{"y"}, true, map[string]int{"x": 70, "z": 110}, 50)
	if !slices.Equal(spilled, []string{"x", "z"}) {
		t.Fatalf("spilled %q", spilled)
	}
	if err := b.EvictUntilBelowTarget(100); err != nil { // no-op
		t.Fatal(err)
	}
	if err := b.EvictUntilBelowTarget(50); err != nil { // no-op: 50 is not above 50
		t.Fatal(err)
	}
	bufCheck(t, b, s, []string{"y"}, true, map[string]int{"x": 70, "z": 110}, 50)
	if err := b.EvictUntilBelowTarget(0); err != nil {
		t.Fatal(err)
	}
	bufCheck(t, b, s, nil, true, map[string]int{"x": 70, "y": 50, "z": 110}, 0)
	if !slices.Equal(spilled, []string{"x", "z", "y"}) {
		t.Fatalf("spilled %q", spilled)
	}
}

// ---- test_buffer.py ----

func TestBufferSimple(t *testing.T) {
	s := storetest.Open(t, "", bufOptions(nil))
	b := bufIntBuffer(t, s, 10, true, dirstore.BufferOptions[int]{})
	bufMustSet(t, b, "x", 1)
	bufMustSet(t, b, "y", 2)
	bufMustGet(t, b, "x", 1)
	bufMustGet(t, b, "y", 2)
	bufCheck(t, b, s, []string{"x", "y"}, false, nil, 3)

	bufMustSet(t, b, "z", 8)
	bufCheck(t, b, s, []string{"y", "z"}, false, map[string]int{"x": 1}, 10)

	bufMustGet(t, b, "x", 1)
	bufCheck(t, b, s, []string{"x", "z"}, false, map[string]int{"y": 2}, 9)

	for _, k := range []string{"x", "y"} {
		if ok, err := b.Has(k); !ok || err != nil {
			t.Fatalf("Has(%q) = %v, %v", k, ok, err)
		}
	}
	bufMissing(t, b, "missing")

	bufMustSet(t, b, "y", 1)
	bufCheck(t, b, s, []string{"x", "y", "z"}, false, nil, 10)

	if err := b.Delete("z"); err != nil {
		t.Fatal(err)
	}
	bufCheck(t, b, s, []string{"x", "y"}, false, nil, 2)
	if err := b.Delete("y"); err != nil {
		t.Fatal(err)
	}
	bufCheck(t, b, s, []string{"x"}, false, nil, 1)
	bufMissing(t, b, "y")

	bufMustSet(t, b, "a", 5)
	if got := slices.Sorted(b.Keys()); !slices.Equal(got, []string{"a", "x"}) {
		t.Fatalf("Keys = %q", got)
	}

	// A value heavier than MaxWeight goes straight to the Store and stays
	// there when read.
	bufMustSet(t, b, "b", 1000)
	bufCheck(t, b, s, []string{"x", "a"}, true, map[string]int{"b": 1000}, 6)
	bufMustGet(t, b, "b", 1000)
	bufCheck(t, b, s, []string{"x", "a"}, true, map[string]int{"b": 1000}, 6)
}

func TestBufferSetAvoidFastSlowDuplicate(t *testing.T) {
	s := storetest.Open(t, "", bufOptions(nil))
	b := bufIntBuffer(t, s, 10, true, dirstore.BufferOptions[int]{})
	for _, p := range [][2]int{{1, 12}, {12, 1}} {
		bufMustSet(t, b, "a", p[0])
		bufMustGet(t, b, "a", p[0])
		bufMustSet(t, b, "a", p[1])
		bufMustGet(t, b, "a", p[1])
		bufTiers(t, b, s) // checks that the tiers are disjoint
		if err := b.Delete("a"); err != nil {
			t.Fatal(err)
		}
		bufMissing(t, b, "a")
		bufCheck(t, b, s, nil, true, nil, 0)
	}
}

// bufCheckMapping ports utils_test.check_mapping for a []byte buffer.
func bufCheckMapping(t *testing.T, b *dirstore.Buffer[[]byte]) {
	t.Helper()
	items := func() map[string]string {
		t.Helper()
		m := map[string]string{}
		for k := range b.Keys() {
			if _, ok := m[k]; ok {
				t.Fatalf("Keys yields %q twice", k)
			}
			v, err := b.Get(k)
			if err != nil {
				t.Fatalf("Get(%q): %v", k, err)
			}
			m[k] = string(v)
		}
		if b.Len() != len(m) {
			t.Fatalf("Len = %d, Keys yields %d", b.Len(), len(m))
		}
		return m
	}
	check := func(want map[string]string) {
		t.Helper()
		if got := items(); !maps.Equal(got, want) {
			t.Fatalf("items = %v, want %v", got, want)
		}
	}
	check(map[string]string{})
	bufMissing(t, b, "x")

	bufMustSet(t, b, "abc", []byte("456"))
	bufMustSet(t, b, "xyz", []byte("12"))
	check(map[string]string{"abc": "456", "xyz": "12"})
	bufMissing(t, b, "def")
	for k, v := range map[string]string{"xyz": "707", "uvw": "000"} {
		bufMustSet(t, b, k, []byte(v))
	}
	check(map[string]string{"abc": "456", "xyz": "707", "uvw": "000"})

	if err := b.Delete("abc"); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete("abc"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("second Delete = %v", err)
	}
	bufMissing(t, b, "abc")
	check(map[string]string{"xyz": "707", "uvw": "000"})
	bufMustSet(t, b, "def", []byte("\x00\xff"))
	check(map[string]string{"xyz": "707", "uvw": "000", "def": "\x00\xff"})

	// stress_test_mapping_updates
	r := rand.New(rand.NewPCG(42, 42))
	for k := range items() {
		b.Delete(k)
	}
	keys := strings.Split("abcdefghijklmnopqrstuvwxyz", "")
	want := map[string]string{}
	for i := 0; i < 4; i++ {
		r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		for _, k := range keys {
			v := strconv.Itoa(r.IntN(1000000))
			want[k] = v
			bufMustSet(t, b, k, []byte(v))
		}
		check(want)
	}
}

func TestBufferMapping(t *testing.T) {
	s := storetest.Open(t, "", bufOptions(nil))
	b := bufNew(t, s, dirstore.BufferOptions[[]byte]{
		MaxWeight: 2, Weight: func(string, []byte) int64 { return 1 },
	})
	bufCheckMapping(t, b)
	if !strings.Contains(b.String(), "Buffer") {
		t.Errorf("String() = %q", b.String())
	}
}

func TestBufferCallbacks(t *testing.T) {
	var f2s, s2f []string
	s := storetest.Open(t, "", bufOptions(nil))
	b := bufIntBuffer(t, s, 10, true, dirstore.BufferOptions[int]{
		OnSpill:   func(k string, v int) error { f2s = append(f2s, k); return nil },
		OnUnspill: func(k string, v int) { s2f = append(s2f, k) },
	})
	bufMustSet(t, b, "x", 1)
	bufMustSet(t, b, "y", 2)
	bufMustGet(t, b, "x", 1)
	bufMustGet(t, b, "y", 2)
	if len(f2s)+len(s2f) != 0 {
		t.Fatalf("callbacks ran: %q %q", f2s, s2f)
	}
	bufMustSet(t, b, "z", 8)
	if !slices.Equal(f2s, []string{"x"}) || len(s2f) != 0 {
		t.Fatalf("f2s %q s2f %q", f2s, s2f)
	}
	bufMustGet(t, b, "z", 8)
	if !slices.Equal(f2s, []string{"x"}) || len(s2f) != 0 {
		t.Fatalf("f2s %q s2f %q", f2s, s2f)
	}
	bufMustGet(t, b, "x", 1)
	if !slices.Equal(f2s, []string{"x", "y"}) || !slices.Equal(s2f, []string{"x"}) {
		t.Fatalf("f2s %q s2f %q", f2s, s2f)
	}
}

func TestBufferCallbacksExceptionCatch(t *testing.T) {
	var f2s, s2f []string
	s := storetest.Open(t, "", bufOptions(nil))
	b := bufIntBuffer(t, s, 10, true, dirstore.BufferOptions[int]{
		OnSpill: func(k string, v int) error {
			if v > 10 {
				return errBufTest
			}
			f2s = append(f2s, k)
			return nil
		},
		OnUnspill: func(k string, v int) { s2f = append(s2f, k) },
	})
	bufMustSet(t, b, "x", 1)
	bufMustSet(t, b, "y", 2)
	bufMustGet(t, b, "x", 1)
	bufMustGet(t, b, "y", 2)
	bufCheck(t, b, s, []string{"x", "y"}, true, nil, 3)

	bufMustSet(t, b, "z", 8)
	if !slices.Equal(f2s, []string{"x"}) || len(s2f) != 0 {
		t.Fatalf("f2s %q s2f %q", f2s, s2f)
	}
	bufCheck(t, b, s, []string{"y", "z"}, true, map[string]int{"x": 1}, 10)

	// w is heavy and its spill fails: everything else spills and w stays.
	if err := b.Set("w", 11); !errors.Is(err, errBufTest) {
		t.Fatalf("Set(w) = %v", err)
	}
	if !slices.Equal(f2s, []string{"x", "y", "z"}) || len(s2f) != 0 {
		t.Fatalf("f2s %q s2f %q", f2s, s2f)
	}
	bufCheck(t, b, s, []string{"w"}, true, map[string]int{"x": 1, "y": 2, "z": 8}, 11)
}

func TestBufferEvictRestoreDuringIter(t *testing.T) {
	s := storetest.Open(t, "", bufOptions(nil))
	b := bufIntBuffer(t, s, 5, false, dirstore.BufferOptions[int]{})
	bufMustSet(t, b, "z", 3)
	if _, _, err := b.Evict(); err != nil {
		t.Fatal(err)
	}
	bufMustSet(t, b, "x", 1)
	bufMustSet(t, b, "y", 2)
	if got := slices.Collect(b.Keys()); !slices.Equal(got, []string{"x", "y", "z"}) {
		t.Fatalf("Keys = %q", got)
	}
	next, stop := iter.Pull(b.Keys())
	defer stop()
	want := func(w string) {
		t.Helper()
		if k, ok := next(); k != w || !ok {
			t.Fatalf("next = %q, %v; want %q", k, ok, w)
		}
	}
	want("x")
	if k, _, err := b.Evict(); k != "x" || err != nil {
		t.Fatalf("Evict = %q, %v", k, err)
	}
	want("y")
	bufMustGet(t, b, "x", 1)
	want("z")
	if k, ok := next(); ok {
		t.Fatalf("next = %q after the end", k)
	}
}

// ---- cancel-evict rules ----

// bufGate pauses the first operation that passes through it once armed,
// until released.
type bufGate struct {
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func newBufGate() *bufGate {
	return &bufGate{entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *bufGate) pass() {
	if g.armed.CompareAndSwap(true, false) {
		close(g.entered)
		<-g.release
	}
}

func (g *bufGate) wait(tb testing.TB) {
	tb.Helper()
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		tb.Fatal("the operation never reached the gate")
	}
}

// bufValueFile reports whether path is the value file of key (whose name
// needs no escaping).
func bufValueFile(path, key string) bool {
	return strings.HasPrefix(filepath.Base(path), key+"#") && !strings.Contains(path, ".dirstore")
}

// bufGateFS pauses the store's kind operations on key's value file at gate.
func bufGateFS(gate *bufGate, kind errorfs.OpKind, key string) errorfs.Injector {
	return errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == kind && bufValueFile(op.Path, key) {
			gate.pass()
		}
		return nil
	})
}

// bufGateCodec is bufInts with Unmarshal passing through gate.
type bufGateCodec struct {
	bufInts
	gate *bufGate
}

func (c bufGateCodec) Unmarshal(data []byte) (int, error) {
	c.gate.pass()
	return c.bufInts.Unmarshal(data)
}

func TestBufferCancelEvict(t *testing.T) {
	for _, when := range []string{"before", "after"} {
		for _, event := range []string{"set", "del"} {
			t.Run("when="+when+",event="+event, func(t *testing.T) {
				gate := newBufGate()
				var inj errorfs.Injector
				o := dirstore.BufferOptions[int]{}
				if when == "before" {
					// Paused creating the value file: nothing written yet.
					inj = bufGateFS(gate, errorfs.OpCreate, "x")
				} else {
					// Paused in OnSpill: the value is in the Store.
					o.OnSpill = func(string, int) error { gate.pass(); return nil }
				}
				s := storetest.Open(t, "", bufOptions(inj))
				b := bufIntBuffer(t, s, 100, true, o)
				bufMustSet(t, b, "x", 1)
				bufMustSet(t, b, "other", 5)

				type result struct {
					k   string
					w   int64
					err error
				}
				res := make(chan result)
				gate.armed.Store(true)
				go func() {
					k, w, err := b.Evict()
					res <- result{k, w, err}
				}()
				gate.wait(t)
				// While x is being spilled it is still served from memory,
				// and other keys are served too.
				bufMustGet(t, b, "x", 1)
				bufMustGet(t, b, "other", 5)
				if event == "set" {
					bufMustSet(t, b, "x", 2)
					bufMustGet(t, b, "x", 2)
				} else {
					if err := b.Delete("x"); err != nil {
						t.Fatal(err)
					}
					bufMissing(t, b, "x")
				}
				close(gate.release)
				if r := <-res; r != (result{}) {
					t.Fatalf("Evict() = %q, %d, %v; want \"\", 0, nil", r.k, r.w, r.err)
				}
				if event == "set" {
					bufCheck(t, b, s, []string{"other", "x"}, true, nil, 7)
					bufMustGet(t, b, "x", 2)
				} else {
					bufCheck(t, b, s, []string{"other"}, true, nil, 5)
					bufMissing(t, b, "x")
				}
			})
		}
	}
}

func TestBufferCancelRestore(t *testing.T) {
	for _, when := range []string{"before", "after"} {
		for _, event := range []string{"set", "del"} {
			t.Run("when="+when+",event="+event, func(t *testing.T) {
				gate := newBufGate()
				var inj errorfs.Injector
				o := dirstore.BufferOptions[int]{}
				if when == "before" {
					// Paused opening the value file: nothing read yet.
					inj = bufGateFS(gate, errorfs.OpOpen, "x")
				}
				s := storetest.Open(t, "", bufOptions(inj))
				if when == "after" {
					// Paused decoding: the value was read.
					o.Codec = bufGateCodec{gate: gate}
				}
				b := bufIntBuffer(t, s, 100, true, o)
				bufMustSet(t, b, "x", 1)
				if _, _, err := b.Evict(); err != nil {
					t.Fatal(err)
				}
				bufCheck(t, b, s, nil, true, map[string]int{"x": 1}, 0)

				type result struct {
					v   int
					err error
				}
				res := make(chan result, 2)
				gate.armed.Store(true)
				go func() {
					v, err := b.Get("x")
					res <- result{v, err}
				}()
				gate.wait(t)
				// A second Get of the key waits for the first read-back.
				go func() {
					v, err := b.Get("x")
					res <- result{v, err}
				}()
				bufMustSet(t, b, "y", 3) // other keys are served meanwhile
				if event == "set" {
					bufMustSet(t, b, "x", 2)
				} else {
					if err := b.Delete("x"); err != nil {
						t.Fatal(err)
					}
				}
				close(gate.release)
				// zict raises KeyError in both cases; here the Get that lost
				// answers from the new state.
				for range 2 {
					r := <-res
					if event == "set" && (r.v != 2 || r.err != nil) {
						t.Errorf("Get(x) = %d, %v; want 2", r.v, r.err)
					}
					if event == "del" && !errors.Is(r.err, fs.ErrNotExist) {
						t.Errorf("Get(x) = %d, %v; want an error matching fs.ErrNotExist", r.v, r.err)
					}
				}
				if event == "set" {
					bufCheck(t, b, s, []string{"y", "x"}, false, nil, 5)
				} else {
					bufCheck(t, b, s, []string{"y"}, true, nil, 3)
				}
			})
		}
	}
}

// TestBufferCancelRemove covers a Delete of a spilled key whose Store
// removal (a manifest commit) is paused: a Set wins over it, a second
// Delete and a Get wait for its outcome.
func TestBufferCancelRemove(t *testing.T) {
	for _, event := range []string{"set", "del", "get"} {
		t.Run("event="+event, func(t *testing.T) {
			gate := newBufGate()
			s := storetest.Open(t, "", bufOptions(errorfs.InjectorFunc(func(op errorfs.Op) error {
				if op.Kind == errorfs.OpFileWrite && strings.Contains(op.Path, ".dirstore") {
					gate.pass()
				}
				return nil
			})))
			b := bufIntBuffer(t, s, 100, true, dirstore.BufferOptions[int]{})
			bufMustSet(t, b, "x", 1)
			if _, _, err := b.Evict(); err != nil {
				t.Fatal(err)
			}
			gate.armed.Store(true)
			first := make(chan error)
			go func() { first <- b.Delete("x") }()
			gate.wait(t)
			if ok, _ := b.Has("x"); !ok {
				t.Error("Has(x) = false while its Delete is in progress")
			}
			second := make(chan error, 1)
			switch event {
			case "set":
				bufMustSet(t, b, "x", 2)
				bufMustGet(t, b, "x", 2)
				second <- nil
			case "del":
				go func() { second <- b.Delete("x") }()
			case "get":
				go func() {
					_, err := b.Get("x")
					second <- err
				}()
			}
			time.Sleep(10 * time.Millisecond) // let the waiters wait
			close(gate.release)
			if err := <-first; err != nil {
				t.Fatalf("Delete = %v", err)
			}
			err := <-second
			if event == "set" {
				if err != nil {
					t.Fatal(err)
				}
				bufCheck(t, b, s, []string{"x"}, true, nil, 2)
				return
			}
			if !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("%s after the Delete = %v, want an error matching fs.ErrNotExist", event, err)
			}
			bufCheck(t, b, s, nil, true, nil, 0)
		})
	}
}

// TestBufferHeavyFirst checks that a heavy value in memory spills before
// lighter, older ones. A Set of a key that is being spilled parks its value
// until the spill is abandoned, so a heavy value can land in memory.
func TestBufferHeavyFirst(t *testing.T) {
	gate := newBufGate()
	s := storetest.Open(t, "", bufOptions(bufGateFS(gate, errorfs.OpCreate, "x")))
	var spilled []string
	b := bufIntBuffer(t, s, 10, true, dirstore.BufferOptions[int]{
		OnSpill: func(k string, _ int) error { spilled = append(spilled, k); return nil },
	})
	bufMustSet(t, b, "a", 1)
	bufMustSet(t, b, "x", 2)
	gate.armed.Store(true)
	done := make(chan error)
	go func() { done <- b.EvictUntilBelowTarget(0) }()
	gate.wait(t)
	bufMustSet(t, b, "x", 50) // heavy, parked while x's old value is being written
	bufMustSet(t, b, "c", 1)  // light, older than x's new value
	close(gate.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The evictor spilled a, gave up x's old value, and then spilled x's
	// new, heavy value before c, which is less recently used.
	if !slices.Equal(spilled, []string{"a", "x", "c"}) {
		t.Fatalf("spilled %q, want [a x c]", spilled)
	}
	bufCheck(t, b, s, nil, true, map[string]int{"a": 1, "c": 1, "x": 50}, 0)
}

// ---- stress tests (utils_test.check_*_threadsafe) ----

// bufSlowFS makes every value file operation take a while, so that spills
// and read-backs overlap with other operations.
func bufSlowFS() errorfs.Injector {
	return errorfs.InjectorFunc(func(op errorfs.Op) error {
		if (op.Kind == errorfs.OpCreate || op.Kind == errorfs.OpOpen) && !strings.Contains(op.Path, ".dirstore") {
			time.Sleep(50 * time.Microsecond)
		}
		return nil
	})
}

// bufRandomWeight returns weights that make values sometimes fit together,
// sometimes evict each other and sometimes heavy (zict: 0.4, 0.9, 1.1 of n).
func bufRandomWeight(choices ...int64) func(string, []byte) int64 {
	return func(string, []byte) int64 { return choices[rand.IntN(len(choices))] }
}

func bufCheckEmpty(t *testing.T, b *dirstore.Buffer[[]byte], s *dirstore.Store) {
	t.Helper()
	if n, w, sn := b.Len(), b.Weight(), s.Len(); n != 0 || w != 0 || sn != 0 {
		t.Fatalf("Len %d, Weight %d, Store.Len %d; want all 0", n, w, sn)
	}
	if k := slices.Collect(b.Keys()); len(k) != 0 {
		t.Fatalf("Keys = %q", k)
	}
}

const bufStressRounds = 200

func TestBufferStressDifferentKeys(t *testing.T) {
	s := storetest.Open(t, "", bufOptions(bufSlowFS()))
	b := bufNew(t, s, dirstore.BufferOptions[[]byte]{MaxWeight: 10, Weight: bufRandomWeight(4, 9, 11)})
	var counters [2]atomic.Int64
	var stop atomic.Bool
	more := func() bool {
		return !stop.Load() && (counters[0].Load() < bufStressRounds || counters[1].Load() < bufStressRounds)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for i, kv := range [][2]string{{"x", "123"}, {"y", "456"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key, value := kv[0], kv[1]
			fail := func(format string, args ...any) {
				stop.Store(true)
				errs <- fmt.Errorf(key+": "+format, args...)
			}
			for more() {
				if err := b.Set(key, []byte(value)); err != nil {
					fail("Set: %v", err)
					return
				}
				if v, err := b.Get(key); string(v) != value || err != nil {
					fail("Get = %q, %v", v, err)
					return
				}
				if err := b.Delete(key); err != nil {
					fail("Delete: %v", err)
					return
				}
				if ok, err := b.Has(key); ok || err != nil {
					fail("Has after Delete = %v, %v", ok, err)
					return
				}
				if _, err := b.Get(key); !errors.Is(err, fs.ErrNotExist) {
					fail("Get after Delete: %v", err)
					return
				}
				if err := b.Delete(key); !errors.Is(err, fs.ErrNotExist) {
					fail("second Delete: %v", err)
					return
				}
				if n := b.Len(); n != 0 && n != 1 {
					fail("Len = %d", n)
					return
				}
				counters[i].Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	bufCheckEmpty(t, b, s)
	bufCheckMapping(t, b)
}

func TestBufferStressSameKey(t *testing.T) {
	s := storetest.Open(t, "", bufOptions(bufSlowFS()))
	b := bufNew(t, s, dirstore.BufferOptions[[]byte]{MaxWeight: 10, Weight: bufRandomWeight(9, 11)})
	var counters [5]atomic.Int64
	var stop atomic.Bool
	more := func() bool {
		if stop.Load() {
			return false
		}
		for i := range counters {
			if counters[i].Load() < bufStressRounds {
				return true
			}
		}
		return false
	}
	errs := make(chan error, len(counters))
	workers := []func() error{
		func() error { return b.Set("x", []byte("123")) },
		func() error { return b.Set("x", []byte("456")) },
		func() error {
			if err := b.Delete("x"); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return nil
		},
		func() error {
			v, err := b.Get("x")
			if err != nil && !errors.Is(err, fs.ErrNotExist) || err == nil && string(v) != "123" && string(v) != "456" {
				return fmt.Errorf("Get = %q, %v", v, err)
			}
			return nil
		},
		// Not in zict: spill and check the invariants too.
		func() error {
			if _, _, err := b.Evict(); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			if n := b.Len(); n > 1 {
				return fmt.Errorf("Len = %d", n)
			}
			if k := slices.Collect(b.Keys()); len(k) > 1 {
				return fmt.Errorf("Keys = %q", k)
			}
			return nil
		},
	}
	var wg sync.WaitGroup
	for i, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for more() {
				if err := w(); err != nil {
					stop.Store(true)
					errs <- fmt.Errorf("worker %d: %w", i, err)
					return
				}
				counters[i].Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := b.Delete("x"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	bufCheckEmpty(t, b, s)
	bufCheckMapping(t, b)
}

// ---- failures ----

// bufENOSPC fails writes of value files with ENOSPC while on is set.
type bufENOSPC struct{ on atomic.Bool }

func (e *bufENOSPC) MaybeError(op errorfs.Op) error {
	if e.on.Load() && op.Kind == errorfs.OpFileWrite && !strings.Contains(op.Path, ".dirstore") {
		return syscall.ENOSPC
	}
	return nil
}

func (e *bufENOSPC) String() string { return "bufENOSPC" }

func TestBufferENOSPC(t *testing.T) {
	full := &bufENOSPC{}
	s := storetest.Open(t, "", bufOptions(full))
	var spills atomic.Int64
	b := bufNew(t, s, dirstore.BufferOptions[[]byte]{
		MaxWeight: 4 << 10,
		OnSpill:   func(string, []byte) error { spills.Add(1); return nil },
	})
	value := func(i int) []byte { return []byte(strings.Repeat(strconv.Itoa(i%10), 1000+i)) }
	want := map[string][]byte{}
	check := func() {
		t.Helper()
		if b.Len() != len(want) {
			t.Fatalf("Len = %d, want %d", b.Len(), len(want))
		}
		for k, v := range want {
			got, err := b.Get(k)
			if err != nil || string(got) != string(v) {
				t.Fatalf("Get(%q) = %d bytes %.20q, %v; want %d bytes %.20q", k, len(got), got, err, len(v), v)
			}
		}
		var storeKeys []string
		for k, err := range s.Keys() {
			if err != nil {
				t.Fatal(err)
			}
			storeKeys = append(storeKeys, k)
		}
		mem := b.Weight()
		var sum int64
		for k, v := range want {
			if !slices.Contains(storeKeys, k) {
				sum += int64(len(v))
			}
		}
		if sum != mem {
			t.Fatalf("Weight %d, but the keys not in the Store weigh %d: tiers overlap", mem, sum)
		}
	}
	for i := range 10 {
		k := "k" + strconv.Itoa(i)
		want[k] = value(i)
		bufMustSet(t, b, k, want[k])
	}
	check()

	full.on.Store(true)
	failed := 0
	for i := 10; i < 20; i++ {
		k := "k" + strconv.Itoa(i)
		want[k] = value(i)
		if err := b.Set(k, want[k]); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Set(%q) = %v, want ENOSPC", k, err)
			}
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no Set failed with the disk full")
	}
	if _, _, err := b.Evict(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Evict() = %v, want ENOSPC", err)
	}
	if err := b.Flush(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Flush() = %v, want ENOSPC", err)
	}
	if w := b.Weight(); w <= 4<<10 {
		t.Fatalf("Weight %d: values spilled with the disk full", w)
	}
	check() // reads spilled values back; their re-spills fail silently

	full.on.Store(false)
	before := spills.Load()
	bufMustSet(t, b, "after", []byte("x"))
	if w := b.Weight(); w > 4<<10 {
		t.Fatalf("Weight %d after the disk has room again", w)
	}
	if spills.Load() == before {
		t.Fatal("nothing spilled after the disk has room again")
	}
	want["after"] = []byte("x")
	check()
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if b.Weight() != 0 || s.Len() != len(want) {
		t.Fatalf("after Flush: Weight %d, Store.Len %d", b.Weight(), s.Len())
	}
	check()
}

func TestBufferCodecAndWeightErrors(t *testing.T) {
	s := storetest.Open(t, "", bufOptions(nil))
	b := bufNew(t, s, dirstore.BufferOptions[int]{
		MaxWeight: 1,
		Codec:     bufFailCodec{},
		Weight: func(_ string, v int) int64 {
			if v < 0 {
				return -1
			}
			return 1
		},
	})
	if err := b.Set("neg", -5); !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("Set with a negative weight = %v, want fs.ErrInvalid", err)
	}
	bufMissing(t, b, "neg")
	bufMustSet(t, b, "a", 1)
	if err := b.Set("b", 2); !errors.Is(err, errBufTest) {
		t.Fatalf("Set = %v, want the codec's error", err)
	}
	bufMustGet(t, b, "a", 1)
	bufMustGet(t, b, "b", 2)
	if b.Len() != 2 || s.Len() != 0 {
		t.Fatalf("Len %d, Store.Len %d", b.Len(), s.Len())
	}
}

type bufFailCodec struct{ bufInts }

func (bufFailCodec) Marshal(int) ([]byte, error) { return nil, errBufTest }

func TestBufferOptions(t *testing.T) {
	s := storetest.Open(t, "", bufOptions(nil))
	if _, err := dirstore.NewBuffer(s, dirstore.BufferOptions[int]{}); !errors.Is(err, fs.ErrInvalid) || !strings.Contains(err.Error(), "Codec") {
		t.Errorf("nil Codec for int values: %v", err)
	}
	_, err := dirstore.NewBuffer[string](nil, dirstore.BufferOptions[string]{MaxWeight: -1})
	if !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("NewBuffer = %v", err)
	}
	for _, want := range []string{"Store", "MaxWeight", "Codec"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}

	// Default weights: len for []byte, else 1.
	bb := bufNew(t, s, dirstore.BufferOptions[[]byte]{MaxWeight: 100})
	bufMustSet(t, bb, "a", []byte("12345"))
	if w := bb.Weight(); w != 5 {
		t.Errorf("[]byte weight = %d, want 5", w)
	}
	bufMustSet(t, bb, "empty", nil)
	bufMustSet(t, bb, "big", make([]byte, 101))
	if w := bb.Weight(); w != 5 || s.Len() != 1 {
		t.Errorf("Weight %d, Store.Len %d after a heavy value", bb.Weight(), s.Len())
	}
	bb.Close()
	ib := bufIntBuffer(t, storetest.Open(t, "", bufOptions(nil)), 100, false, dirstore.BufferOptions[int]{})
	bufMustSet(t, ib, "a", 12345)
	if w := ib.Weight(); w != 1 {
		t.Errorf("int weight = %d, want 1", w)
	}
	if err := ib.Set(strings.Repeat("k", dirstore.MaxKeyLen+1), 1); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("Set of a too long key = %v", err)
	}
}

// ---- lifecycle ----

func TestBufferExistingStore(t *testing.T) {
	s := storetest.Open(t, "", bufOptions(nil))
	for _, k := range []string{"b", "a"} {
		if err := s.Set(k, []byte("old "+k)); err != nil {
			t.Fatal(err)
		}
	}
	b := bufNew(t, s, dirstore.BufferOptions[[]byte]{MaxWeight: 100})
	if b.Len() != 2 || !slices.Equal(slices.Collect(b.Keys()), []string{"a", "b"}) {
		t.Fatalf("Len %d, Keys %q", b.Len(), slices.Collect(b.Keys()))
	}
	bufMustSet(t, b, "c", []byte("c"))
	bufMustSet(t, b, "b", []byte("new b")) // removes the old copy
	if v, err := b.Get("a"); string(v) != "old a" || err != nil {
		t.Fatalf("Get(a) = %q, %v", v, err)
	}
	if s.Len() != 0 {
		t.Fatalf("Store.Len = %d after reading everything back", s.Len())
	}
	if got := slices.Collect(b.Keys()); !slices.Equal(got, []string{"c", "b", "a"}) {
		t.Fatalf("Keys = %q", got)
	}
}

func TestBufferClose(t *testing.T) {
	s := storetest.Open(t, "", bufOptions(nil))
	b := bufNew(t, s, dirstore.BufferOptions[[]byte]{MaxWeight: 3})
	bufMustSet(t, b, "spilled", []byte("123"))
	bufMustSet(t, b, "mem", []byte("456"))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
	if err := b.Set("x", nil); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Set after Close = %v", err)
	}
	if _, err := b.Get("spilled"); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Get after Close = %v", err)
	}
	if err := b.Delete("spilled"); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Delete after Close = %v", err)
	}
	if _, err := b.Has("spilled"); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Has after Close = %v", err)
	}
	if _, _, err := b.Evict(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Evict after Close = %v", err)
	}
	if err := b.Flush(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Flush after Close = %v", err)
	}
	if b.Len() != 0 || b.Weight() != 0 {
		t.Errorf("Len %d, Weight %d after Close", b.Len(), b.Weight())
	}

	// The memory tier is lost, the Store stays open with what spilled.
	if v, err := s.Get("spilled"); string(v) != "123" || err != nil {
		t.Fatalf("Store.Get = %q, %v", v, err)
	}
	if s.Len() != 1 {
		t.Fatalf("Store.Len = %d", s.Len())
	}

	// Flush before Close keeps everything.
	b2 := bufNew(t, s, dirstore.BufferOptions[[]byte]{MaxWeight: 3})
	bufMustSet(t, b2, "mem", []byte("456"))
	if err := b2.Flush(); err != nil {
		t.Fatal(err)
	}
	b2.Close()
	b3 := bufNew(t, s, dirstore.BufferOptions[[]byte]{MaxWeight: 3})
	if v, err := b3.Get("mem"); string(v) != "456" || err != nil {
		t.Fatalf("Get after Flush, Close and NewBuffer = %q, %v", v, err)
	}
}

func TestBufferGetAllocs(t *testing.T) {
	s := storetest.Open(t, "", bufOptions(nil))
	b := bufNew(t, s, dirstore.BufferOptions[[]byte]{MaxWeight: 1 << 20})
	value := []byte("value")
	bufMustSet(t, b, "k", value)
	if n := testing.AllocsPerRun(100, func() { b.Get("k") }); n != 0 {
		t.Errorf("Get of a value in memory allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { b.Set("k", value) }); n != 0 {
		t.Errorf("Set of a value that stays in memory allocates %v times", n)
	}
}

// ---- benchmarks ----
//
// The host is noisy, so each benchmark runs the Buffer and its baseline
// interleaved in one loop, times each side and reports both per-op costs
// and their ratio.

// BenchmarkBufferGet compares a Get of a value in memory with a golang-lru
// Cache.Get (the goal is a cost ratio of at most 1.5).
func BenchmarkBufferGet(b *testing.B) {
	const chunk = 512
	for _, n := range []int{1000, 100000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			keys := make([]string, n)
			for i := range keys {
				keys[i] = "key-" + strconv.Itoa(i)
			}
			value := []byte("value")
			buf := bufNew(b, storetest.Open(b, "", bufOptions(nil)), dirstore.BufferOptions[[]byte]{MaxWeight: 1 << 40})
			c, _ := lru.New[string, []byte](n)
			for _, k := range keys {
				bufMustSet(b, buf, k, value)
				c.Add(k, value)
			}
			var tBuf, tLRU time.Duration
			ops := 0
			for b.Loop() {
				t0 := time.Now()
				for j := range chunk {
					buf.Get(keys[(ops+j)%n])
				}
				t1 := time.Now()
				for j := range chunk {
					c.Get(keys[(ops+j)%n])
				}
				t2 := time.Now()
				tBuf += t1.Sub(t0)
				tLRU += t2.Sub(t1)
				ops += chunk
			}
			b.ReportMetric(float64(tBuf.Nanoseconds())/float64(ops), "buffer-ns/get")
			b.ReportMetric(float64(tLRU.Nanoseconds())/float64(ops), "lru-ns/get")
			b.ReportMetric(float64(tBuf)/float64(tLRU), "cost-ratio")
		})
	}
}

// BenchmarkBufferSetSpill writes a stream of 4 KiB values through a Buffer
// whose memory tier holds a tenth of the working set, so that every Set
// spills a value, interleaved with the same stream written by Store.Set
// alone, both to a real directory with NoSync. The goal is a throughput
// ratio (buffer/store) of at least 0.8. keys=cycle overwrites the working
// set round and round, so a Set of a spilled key also removes its Store
// copy; keys=new never repeats a key.
func BenchmarkBufferSetSpill(b *testing.B) {
	const size = 4 << 10
	const inMemory = 256
	const working = 10 * inMemory
	value := make([]byte, size)
	for i := range value {
		value[i] = byte(i)
	}
	open := func(b *testing.B) *dirstore.Store {
		s, err := dirstore.Open(b.TempDir(), &dirstore.Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	for _, pattern := range []string{"cycle", "new"} {
		b.Run("keys="+pattern, func(b *testing.B) {
			keyOf := func(i int) string {
				if pattern == "cycle" {
					i %= working
				}
				return "key-" + strconv.Itoa(i)
			}
			bs, ss := open(b), open(b)
			buf, err := dirstore.NewBuffer(bs, dirstore.BufferOptions[[]byte]{MaxWeight: inMemory * size})
			if err != nil {
				b.Fatal(err)
			}
			// Reach the steady state: memory full, the working set written.
			i := 0
			for ; i < working; i++ {
				if err := buf.Set(keyOf(i), value); err != nil {
					b.Fatal(err)
				}
				if err := ss.Set(keyOf(i), value); err != nil {
					b.Fatal(err)
				}
			}
			var tBuf, tStore time.Duration
			ops := 0
			b.SetBytes(2 * size)
			for b.Loop() {
				k := keyOf(i)
				t0 := time.Now()
				if err := buf.Set(k, value); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := ss.Set(k, value); err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				tBuf += t1.Sub(t0)
				tStore += t2.Sub(t1)
				i++
				ops++
			}
			b.StopTimer()
			b.ReportMetric(float64(tBuf.Microseconds())/float64(ops), "buffer-us/set")
			b.ReportMetric(float64(tStore.Microseconds())/float64(ops), "store-us/set")
			b.ReportMetric(float64(tStore)/float64(tBuf), "throughput-ratio")
			buf.Close()
			bs.Close()
			ss.Close()
		})
	}
}
