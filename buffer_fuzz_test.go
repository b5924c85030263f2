package dirstore_test

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

// bufFuzzKeys are the keys FuzzBuffer uses, some of which need escaping
// in file names.
var bufFuzzKeys = []string{"a", "b", "c", "d", "", "x/y z", "#1", ".."}

// Operations of FuzzBuffer: an input is a MaxWeight byte, then pairs of an
// op byte (key index in the high nibble) and an argument byte.
const (
	bufOpSet = iota
	bufOpGet
	bufOpDelete
	bufOpHas
	bufOpEvict
	bufOpEvictUntil
	bufOpDiskFull   // toggles ENOSPC on value file writes
	bufOpSpillFails // toggles OnSpill returning an error
	bufOpFlush
	bufOpReopen // Flush, Close, NewBuffer on the same Store
	bufNumOps
)

func bufFuzzOp(op, key int, arg byte) []byte { return []byte{byte(key<<4 | op), arg} }

func bufFuzzSeeds() [][]byte {
	seq := func(maxWeight byte, ops ...[]byte) []byte {
		return append([]byte{maxWeight}, slices.Concat(ops...)...)
	}
	set := func(k int, n byte) []byte { return bufFuzzOp(bufOpSet, k, n) }
	get := func(k int) []byte { return bufFuzzOp(bufOpGet, k, 0) }
	del := func(k int) []byte { return bufFuzzOp(bufOpDelete, k, 0) }
	return [][]byte{
		// test_buffer.py's test_simple, roughly.
		seq(10, set(0, 1), set(1, 2), get(0), get(1), set(2, 8), get(0), set(1, 1), del(2), del(1), set(3, 5), set(4, 15), get(4)),
		// Overwrite across tiers, and heavy values.
		seq(6, set(0, 4), set(1, 4), set(0, 12), get(0), set(0, 1), get(1), del(0), del(0)),
		// Failing spills, then recovery.
		seq(8, set(0, 5), bufFuzzOp(bufOpSpillFails, 0, 0), set(1, 5), set(2, 9), get(0),
			bufFuzzOp(bufOpEvict, 0, 0), bufFuzzOp(bufOpSpillFails, 0, 0), set(3, 1), bufFuzzOp(bufOpFlush, 0, 0)),
		// A full disk, then recovery and a reopen.
		seq(8, set(5, 6), set(6, 6), bufFuzzOp(bufOpDiskFull, 0, 0), set(7, 6), get(5), get(6), bufFuzzOp(bufOpEvictUntil, 0, 0),
			bufFuzzOp(bufOpDiskFull, 0, 0), bufFuzzOp(bufOpReopen, 0, 0), get(7), del(5), bufFuzzOp(bufOpHas, 5, 0)),
		// Manual eviction to targets.
		seq(15, set(0, 3), set(1, 3), set(2, 3), bufFuzzOp(bufOpEvictUntil, 0, 5), bufFuzzOp(bufOpEvictUntil, 0, 0), get(1), bufFuzzOp(bufOpEvict, 0, 0)),
	}
}

// FuzzBuffer runs operations on a Buffer and a map side by side and checks
// after each one that the Buffer holds the map's contents, that its tiers
// are disjoint, that its weight is that of its memory tier and within
// MaxWeight whenever no spill failed, and that failing spills lose nothing.
func FuzzBuffer(f *testing.F) {
	for _, seed := range bufFuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || len(data) > 400 {
			return
		}
		maxWeight := int64(data[0] % 32)
		data = data[1:]
		full := &bufENOSPC{}
		var spillFails atomic.Bool
		s := storetest.Open(t, "", bufOptions(full))
		opts := dirstore.BufferOptions[[]byte]{
			MaxWeight: maxWeight,
			OnSpill: func(string, []byte) error {
				if spillFails.Load() {
					return errBufTest
				}
				return nil
			},
		}
		b := bufNew(t, s, opts)
		model := map[string]string{}
		failing := func() bool { return full.on.Load() || spillFails.Load() }
		expectSpillErr := func(what string, err error) {
			t.Helper()
			if err == nil {
				return
			}
			if !failing() || !errors.Is(err, errBufTest) && !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("%s: %v", what, err)
			}
		}
		for step := 0; len(data) >= 2; step++ {
			op, arg := int(data[0]&15)%bufNumOps, data[1]
			key := bufFuzzKeys[int(data[0]>>4)%len(bufFuzzKeys)]
			data = data[2:]
			what := fmt.Sprintf("step %d: op %d key %q arg %d", step, op, key, arg)
			switch op {
			case bufOpSet:
				v := fmt.Sprintf("%d:%s", step, strings.Repeat("v", int(arg%24)))
				err := b.Set(key, []byte(v))
				model[key] = v
				expectSpillErr(what, err)
				if err == nil && b.Weight() > maxWeight {
					t.Fatalf("%s: Weight %d > MaxWeight %d after a Set", what, b.Weight(), maxWeight)
				}
			case bufOpGet:
				wasStored, _ := s.Has(key)
				v, err := b.Get(key)
				want, ok := model[key]
				if ok && (err != nil || string(v) != want) || !ok && !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("%s: Get = %q, %v; want %q, %v", what, v, err, want, ok)
				}
				// A read-back into memory makes room; a Get from memory, or
				// of a heavy value that stays in the Store, does not spill.
				if stillStored, _ := s.Has(key); wasStored && !stillStored && !failing() && b.Weight() > maxWeight {
					t.Fatalf("%s: Weight %d > MaxWeight %d after a Get read back", what, b.Weight(), maxWeight)
				}
			case bufOpDelete:
				err := b.Delete(key)
				if _, ok := model[key]; ok != (err == nil) || !ok && !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("%s: Delete = %v, key present %v", what, err, ok)
				}
				delete(model, key)
			case bufOpHas:
				got, err := b.Has(key)
				if _, ok := model[key]; got != ok || err != nil {
					t.Fatalf("%s: Has = %v, %v", what, got, err)
				}
			case bufOpEvict:
				before := b.Weight()
				k, w, err := b.Evict()
				switch {
				case err == nil:
					if ok, _ := s.Has(k); !ok || b.Weight() != before-w {
						t.Fatalf("%s: Evict = %q, %d, but it is not in the Store or the weight is %d -> %d", what, k, w, before, b.Weight())
					}
				case errors.Is(err, fs.ErrNotExist):
					if b.Len() != s.Len() {
						t.Fatalf("%s: Evict found nothing to evict, but %d of %d keys are in memory", what, b.Len()-s.Len(), b.Len())
					}
				default:
					expectSpillErr(what, err)
				}
			case bufOpEvictUntil:
				target := int64(arg%32) - 2
				err := b.EvictUntilBelowTarget(target)
				expectSpillErr(what, err)
				if err == nil && b.Weight() > max(target, 0) {
					t.Fatalf("%s: Weight %d above target %d", what, b.Weight(), target)
				}
			case bufOpDiskFull:
				full.on.Store(!full.on.Load())
			case bufOpSpillFails:
				spillFails.Store(!spillFails.Load())
			case bufOpFlush, bufOpReopen:
				err := b.Flush()
				expectSpillErr(what, err)
				if err == nil && (b.Weight() != 0 || s.Len() != len(model)) {
					t.Fatalf("%s: after Flush, Weight %d and Store.Len %d", what, b.Weight(), s.Len())
				}
				if op == bufOpReopen && err == nil {
					if err := b.Close(); err != nil {
						t.Fatalf("%s: Close: %v", what, err)
					}
					b = bufNew(t, s, opts)
				}
			}
			bufFuzzCheck(t, what, b, s, model)
		}
	})
}

// bufFuzzCheck checks b against model: same keys, disjoint tiers, the
// Store holding the model's values, Weight the weight of the memory tier.
func bufFuzzCheck(t *testing.T, what string, b *dirstore.Buffer[[]byte], s *dirstore.Store, model map[string]string) {
	t.Helper()
	if b.Len() != len(model) {
		t.Fatalf("%s: Len = %d, want %d", what, b.Len(), len(model))
	}
	keys := slices.Collect(b.Keys())
	if got, want := slices.Sorted(slices.Values(keys)), slices.Sorted(maps.Keys(model)); !slices.Equal(got, want) {
		t.Fatalf("%s: Keys = %q, want %q", what, got, want)
	}
	stored := map[string]bool{}
	for k, err := range s.Keys() {
		if err != nil {
			t.Fatal(err)
		}
		want, ok := model[k]
		if !ok {
			t.Fatalf("%s: the Store holds %q, which the model does not", what, k)
		}
		if v, err := s.Get(k); err != nil || string(v) != want {
			t.Fatalf("%s: the Store holds %q = %q, %v; want %q", what, k, v, err, want)
		}
		stored[k] = true
	}
	var weight int64
	var mem []string
	for k, v := range model {
		if !stored[k] {
			weight += int64(len(v))
			mem = append(mem, k)
		}
	}
	if b.Weight() != weight {
		t.Fatalf("%s: Weight = %d, but the keys in memory %q weigh %d", what, b.Weight(), mem, weight)
	}
	// Keys yields the memory tier first.
	if got := keys[:len(mem)]; !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(mem))) {
		t.Fatalf("%s: Keys starts with %q, want the memory tier %q", what, got, mem)
	}
}
