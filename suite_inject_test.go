package dirstore_test

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/manifest"
	"github.com/dirstore/dirstore/internal/storetest"
)

var injectVerbose = flag.Bool("inject.v", false, "log every failed operation of the error-injection runs")

var injectAt = flag.Int64("inject.at", -1, "inject only at this operation index")

var injectStride = flag.Int("inject.stride", 0, "inject at every Nth file-system operation (0: every one, or every 11th under -race)")

// failAt fails the file-system operation with index at (counting from when
// it is armed), and every later one too if persistent.
type failAt struct {
	at         int64
	persistent bool
	err        error
	armed      atomic.Bool
	n          atomic.Int64
	fired      atomic.Bool
	// firstTable is the index of the first creation of a manifest table
	// after the store's Open (+1; 0: none yet); opened is set after it.
	firstTable atomic.Int64
	opened     atomic.Bool
}

func (f *failAt) MaybeError(op errorfs.Op) error {
	if !f.armed.Load() {
		return nil
	}
	i := f.n.Add(1) - 1
	if f.opened.Load() && op.Kind == errorfs.OpCreate && strings.HasSuffix(op.Path, ".sst") {
		f.firstTable.CompareAndSwap(0, i+1)
	}
	if i == f.at || (f.persistent && i > f.at) {
		f.fired.Store(true)
		return f.err
	}
	return nil
}

func (f *failAt) String() string { return fmt.Sprintf("fail op %d with %v", f.at, f.err) }

// injectRun is one error-injection run: a store holding a few keys is
// reopened with the injector armed, runs the workload and is closed; then
// it is reopened without injection and checked against the operations that
// were acknowledged.
type injectRun struct {
	t      testing.TB
	nosync bool
	buffer int64 // Options.WriteBuffer
	max    int64 // Options.MaxBytes
	ops    []workOp
	inj    *failAt
}

// initial is what the store holds before the injected run.
var injectInitial = model{"k00": "zero", "k01": "one", "k02": strings.Repeat("two", 500)}

func (r *injectRun) run() (fsOps int64) {
	t := r.t
	mem := vfs.NewMem()
	fsys := errorfs.Wrap(mem, r.inj)
	// Keys a bounded store evicts leave the model as OnEvict reports them.
	var evicted []string
	opts := &dirstore.Options{FS: fsys, NoSync: r.nosync, WriteBuffer: r.buffer, CheckpointInterval: time.Hour,
		MaxBytes: r.max, OnEvict: func(key string, _ int64) { evicted = append(evicted, key) }}
	s, err := dirstore.Open("/s", opts)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range injectInitial {
		mustSet(t, s, k, []byte(v))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// want is the acknowledged state; maybe[k], where present, is a value
	// (nil: absent) that k may hold instead, left by the operation whose
	// error failed the store (ErrFailed): its outcome may be unknown.
	want := copyModel(injectInitial)
	maybe := map[string]*string{}
	check := func(where string, err error, key string) {
		t.Helper()
		if err == nil {
			return
		}
		if !errors.Is(err, r.inj.err) && !errors.Is(err, dirstore.ErrFailed) {
			t.Fatalf("%s: %v: error %v matches neither the injected error nor ErrFailed", r.inj, where, err)
		}
		named := fmt.Sprintf("%q", key)
		if len(key) > 120 {
			named = fmt.Sprintf("%q", key[:100]) // long keys are shortened
		}
		if key != "" && !strings.Contains(err.Error(), named) {
			t.Fatalf("%s: %v: error %q does not name the key", r.inj, where, err)
		}
	}
	// victim is the key a bounded store was evicting when a failed commit
	// failed it (its removal's outcome is unknown), once a read shows it
	// gone.
	victimUnknown, victim := false, ""
	// agrees checks a value read for key against want and maybe.
	agrees := func(where, key string, got []byte, ok bool) {
		t.Helper()
		w, wok := want[key]
		if ok == wok && (!ok || string(got) == w) {
			return
		}
		if !ok && wok && victimUnknown && (victim == "" || victim == key) {
			victim = key
			return
		}
		if m, isMaybe := maybe[key]; isMaybe && ok == (m != nil) && (!ok || string(got) == *m) {
			return
		}
		t.Fatalf("%s: %s: key %q = %.20q (present %v), want %.20q (present %v)", r.inj, where, key, got, ok, w, wok)
	}

	r.inj.armed.Store(true)
	history := []map[string]string{copyModel(want)} // the state after each acknowledged operation
	closeErr := errors.New("not opened")
	s, err = dirstore.Open("/s", opts)
	if err != nil {
		check("open", err, "")
	} else {
		r.inj.opened.Store(true)
		failed := false
		for i, o := range r.ops {
			evicted = nil
			err := o.apply(s)
			if len(evicted) > 0 {
				// Evictions are deletes, acknowledged before the operation
				// (a crash may leave the state between them and it).
				for _, k := range evicted {
					delete(want, k)
					delete(maybe, k)
				}
				history = append(history, copyModel(want))
			}
			if err != nil && errors.Is(err, dirstore.ErrNotFound) && o.kind == "delete" {
				if _, ok := want[o.key]; ok {
					t.Fatalf("%s: op %d: delete %q: %v, but the key was set", r.inj, i, o.key, err)
				}
				continue
			}
			check(fmt.Sprintf("op %d %s", i, o.kind), err, o.key)
			if *injectVerbose && err != nil {
				t.Logf("%s: op %d %s %q: %v", r.inj, i, o.kind, o.key, err)
			}
			switch {
			case err == nil:
				if o.kind == "delete" {
					delete(want, o.key)
				} else {
					want[o.key] = string(o.value)
				}
				delete(maybe, o.key)
				history = append(history, copyModel(want))
			case errors.Is(err, dirstore.ErrFailed) && !failed:
				// The operation that failed the store; later ones are
				// refused before they change anything.
				failed = true
				victimUnknown = r.max > 0
				if o.kind == "delete" {
					maybe[o.key] = nil
				} else {
					v := string(o.value)
					maybe[o.key] = &v
				}
			}
			if i%4 == 0 {
				// Reads under injection fail or return the right bytes.
				got, err := s.Get(o.key)
				if err == nil || errors.Is(err, dirstore.ErrNotFound) {
					agrees(fmt.Sprintf("op %d get", i), o.key, got, err == nil)
				} else {
					check(fmt.Sprintf("op %d get", i), err, o.key)
				}
			}
		}
		r.readBack(s, want, maybe, r.inj.fired.Load() && !r.inj.persistent)
		closeErr = s.Close()
		check("close", closeErr, "")
	}
	r.inj.armed.Store(false)
	fsOps = r.inj.n.Load()
	if *injectVerbose {
		names, _ := mem.List("/s")
		t.Logf("%s: files before reopen: %q; want %d keys", r.inj, names, len(want))
	}

	// The reopen without injection shows the acknowledged operations.
	s, err = dirstore.Open("/s", opts)
	if err != nil {
		t.Fatalf("%s: reopen: %v", r.inj, err)
	}
	defer s.Close()
	var keys []string
	got := map[string]string{}
	for k, err := range s.Keys() {
		if err != nil {
			t.Fatalf("%s: keys: %v", r.inj, err)
		}
		keys = append(keys, k)
		v, err := s.Get(k)
		if err != nil {
			t.Fatalf("%s: after reopen: %v", r.inj, err)
		}
		got[k] = string(v)
	}
	// Exactly the acknowledged operations, with or without the one whose
	// outcome is unknown. A NoSync store that could not make them durable
	// (its Close failed) holds a prefix of them.
	withMaybe := copyModel(want)
	for k, v := range maybe {
		if v == nil {
			delete(withMaybe, k)
		} else {
			withMaybe[k] = *v
		}
	}
	candidates := []map[string]string{want, withMaybe}
	if r.nosync && closeErr != nil {
		candidates = append(candidates, history...)
	}
	if r.max > 0 && len(maybe) > 0 {
		// The operation that failed the store may have done so evicting a
		// key, which may or may not be gone.
		for _, m := range []map[string]string{want, withMaybe} {
			for k := range m {
				c := copyModel(m)
				delete(c, k)
				candidates = append(candidates, c)
			}
		}
	}
	if !slices.ContainsFunc(candidates, func(m map[string]string) bool { return maps.Equal(m, got) }) {
		t.Fatalf("%s: after reopen the store holds %d keys %q, not the acknowledged operations (%d keys %q; close: %v)",
			r.inj, len(got), slices.Sorted(maps.Keys(got)), len(want), slices.Sorted(maps.Keys(want)), closeErr)
	}
	if s.Len() != len(keys) {
		t.Fatalf("%s: after reopen Len = %d, Keys has %d", r.inj, s.Len(), len(keys))
	}
	if err := s.Verify(func(k string, err error) bool {
		if err != nil {
			t.Errorf("%s: verify: %v", r.inj, err)
		}
		return true
	}); err != nil {
		t.Fatalf("%s: verify: %v", r.inj, err)
	}
	// No orphan: one file per key besides the manifest's directory.
	names, err := mem.List("/s")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != len(keys)+1 {
		t.Fatalf("%s: after reopen %d files for %d keys: %q", r.inj, len(names)-1, len(keys), names)
	}
	// And the store takes writes again.
	if err := s.Set("after", []byte("x")); err != nil {
		t.Fatalf("%s: set after reopen: %v", r.inj, err)
	}
	return fsOps
}

// readBack reads every acknowledged key of an injected run's store before
// it is closed, by Get, View, a stream (Store.Open) and Keys: each returns
// the acknowledged bytes or an error that wraps the injected errno,
// ErrFailed or ErrCorrupt, never one of the manifest's own (a partial table
// that a failed flush left). After a single injected failure (strict), every
// read succeeds.
func (r *injectRun) readBack(s *dirstore.Store, want map[string]string, maybe map[string]*string, strict bool) {
	t := r.t
	t.Helper()
	allowed := func(where string, err error) {
		t.Helper()
		if strict {
			t.Fatalf("%s: read back after the failure: %s: %v", r.inj, where, err)
		}
		if !errors.Is(err, r.inj.err) && !errors.Is(err, dirstore.ErrFailed) && !errors.Is(err, dirstore.ErrCorrupt) {
			t.Fatalf("%s: read back after the failure: %s: %v matches neither the injected error, ErrFailed nor ErrCorrupt", r.inj, where, err)
		}
	}
	// The operation that failed a bounded store (ErrFailed) may have
	// evicted one key, which it could not report, before it failed: that
	// one key may be absent, never wrong.
	victim := ""
	evictedUnreported := func(key string) bool {
		if r.max > 0 && len(maybe) > 0 && (victim == "" || victim == key) {
			victim = key
			return true
		}
		return false
	}
	agrees := func(where, key string, got []byte, ok bool) {
		t.Helper()
		w, wok := want[key]
		if ok == wok && (!ok || string(got) == w) {
			return
		}
		if !ok && wok && evictedUnreported(key) {
			return
		}
		if m, isMaybe := maybe[key]; isMaybe && ok == (m != nil) && (!ok || string(got) == *m) {
			return
		}
		t.Fatalf("%s: read back after the failure: %s: key %q = %.20q (present %v), want %.20q (present %v)", r.inj, where, key, got, ok, w, wok)
	}
	keys := slices.Sorted(maps.Keys(want))
	for k := range maybe {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		got, err := s.Get(k)
		switch {
		case err == nil || errors.Is(err, dirstore.ErrNotFound):
			agrees("get", k, got, err == nil)
		default:
			allowed("get "+k, err)
		}
		err = s.View(k, func(v []byte) error { agrees("view", k, v, true); return nil })
		switch {
		case errors.Is(err, dirstore.ErrNotFound):
			agrees("view", k, nil, false)
		case err != nil:
			allowed("view "+k, err)
		}
		st, err := s.Open(k)
		switch {
		case errors.Is(err, dirstore.ErrNotFound):
			agrees("open", k, nil, false)
		case err != nil:
			// A value still in the write buffer is written out for a
			// stream, which a failed store refuses.
			if !errors.Is(err, dirstore.ErrFailed) {
				allowed("open "+k, err)
			}
		default:
			v, err := io.ReadAll(st)
			st.Close()
			if err != nil {
				allowed("stream "+k, err)
			} else {
				agrees("stream", k, v, true)
			}
		}
	}
	listed := map[string]bool{}
	for k, err := range s.Keys() {
		if err != nil {
			allowed("keys", err)
			return
		}
		listed[k] = true
	}
	for _, k := range keys {
		_, w := want[k]
		if m, isMaybe := maybe[k]; isMaybe && listed[k] == (m != nil) {
			continue
		}
		if listed[k] != w && !(w && !listed[k] && evictedUnreported(k)) {
			t.Fatalf("%s: read back after the failure: Keys lists %q: %v, want %v", r.inj, k, listed[k], w)
		}
		delete(listed, k)
	}
	for k := range listed {
		if _, ok := maybe[k]; !ok {
			t.Fatalf("%s: read back after the failure: Keys lists %q, which was never acknowledged", r.inj, k)
		}
	}
}

func copyModel(m model) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// TestErrorInjection fails, once and persistently, every file-system
// operation (value files and the manifest's alike) of a store's Open, a
// 200-operation workload and Close, with EIO and with ENOSPC.
func TestErrorInjection(t *testing.T) {
	stride := *injectStride
	if stride == 0 {
		stride = 1
		if underRace {
			stride = 11
		}
	}
	seed := crashSeedFor(t)
	ops := genWorkload(rand.New(rand.NewPCG(seed, 7)), 200, 16, 4<<10)
	// NoSync runs with the default write buffer, which this workload never
	// fills (its operations are applied at Close), and with one that it
	// fills over and over, applied in the background and by writers.
	// The bounded modes keep the store at a budget the workload overflows
	// (16 keys of up to 4 KiB), so that Sets evict.
	modes := []struct {
		nosync bool
		buffer int64
		max    int64
	}{{false, 0, 0}, {true, 0, 0}, {true, 16 << 10, 0}, {false, 0, 12 << 10}, {true, 16 << 10, 12 << 10}}
	for _, m := range modes {
		nosync := m.nosync
		mode := fmt.Sprintf("nosync=%v", nosync)
		if m.buffer != 0 {
			mode += fmt.Sprintf(",buffer=%d", m.buffer)
		}
		if m.max != 0 {
			mode += fmt.Sprintf(",max=%d", m.max)
		}
		// Count the operations of a run without failures.
		dry := &failAt{at: -1}
		total := (&injectRun{t: t, nosync: nosync, buffer: m.buffer, max: m.max, ops: ops, inj: dry}).run()
		t.Logf("%s: %d file-system operations", mode, total)
		if dry.fired.Load() {
			t.Fatal("the dry run injected an error")
		}
		for _, errno := range []syscall.Errno{syscall.EIO, syscall.ENOSPC} {
			for _, persistent := range []bool{false, true} {
				name := fmt.Sprintf("%s,%v,persistent=%v", mode, errno, persistent)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					fired := 0
					// Background work makes the count vary a little between
					// runs: go a bit past the dry run's.
					for at := int64(0); at < total+total/20; at += int64(stride) {
						if *injectAt >= 0 && at != *injectAt {
							continue
						}
						inj := &failAt{at: at, persistent: persistent, err: errno}
						(&injectRun{t: t, nosync: nosync, buffer: m.buffer, max: m.max, ops: ops, inj: inj}).run()
						if inj.fired.Load() {
							fired++
						}
					}
					t.Logf("%d runs injected an error", fired)
				})
			}
		}
	}
}

// faultFS injects err into the operations of kind (on value files only:
// paths outside the hidden directory) while on.
func faultFS(on *atomic.Bool, kind errorfs.OpKind, err error) vfs.FS {
	return errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if on.Load() && op.Kind == kind && !strings.Contains(op.Path, ".dirstore") {
			return err
		}
		return nil
	}))
}

func TestENOSPCKeepsPreviousState(t *testing.T) {
	for _, kind := range []errorfs.OpKind{errorfs.OpCreate, errorfs.OpFileWrite} {
		var on atomic.Bool
		fsys := faultFS(&on, kind, syscall.ENOSPC)
		s := storetest.Open(t, "/s", &dirstore.Options{FS: fsys})
		mustSet(t, s, "k", []byte("old"))
		on.Store(true)
		if err := s.Set("k", []byte("new")); !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), `"k"`) {
			t.Fatalf("%v: Set = %v, want ENOSPC naming the key", kind, err)
		}
		if _, err := s.SetFrom("k2", strings.NewReader("x")); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("%v: SetFrom = %v", kind, err)
		}
		on.Store(false)
		if got := mustGet(t, s, "k"); string(got) != "old" {
			t.Fatalf("%v: after a failed Set, Get = %q", kind, got)
		}
		if ok, _ := s.Has("k2"); ok || s.Len() != 1 {
			t.Fatalf("%v: a failed SetFrom added a key", kind)
		}
		// No file is left behind, and the store still works.
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
		names, _ := fsys.List("/s")
		if len(names) != 2 { // .dirstore and k's file
			t.Fatalf("%v: files %q", kind, names)
		}
		mustSet(t, s, "k", []byte("newer"))
		s.Close()
	}
}

func TestFailedSyncRefusesWrites(t *testing.T) {
	var on atomic.Bool
	fsys := faultFS(&on, errorfs.OpFileSync, syscall.EIO)
	s := storetest.Open(t, "/s", &dirstore.Options{FS: fsys})
	mustSet(t, s, "k", []byte("old"))
	on.Store(true)
	if err := s.Set("k", []byte("new")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Set = %v, want EIO", err)
	}
	on.Store(false)
	if err := s.Set("j", []byte("x")); !errors.Is(err, dirstore.ErrFailed) {
		t.Fatalf("Set after a failed fsync = %v, want ErrFailed", err)
	}
	if got := mustGet(t, s, "k"); string(got) != "old" {
		t.Fatalf("Get = %q", got)
	}
	s.Close()
	// Reopening starts afresh, with the acknowledged state.
	s = storetest.Open(t, "/s", &dirstore.Options{FS: fsys})
	if got := mustGet(t, s, "k"); string(got) != "old" || s.Len() != 1 {
		t.Fatalf("after reopen: %q, %d keys", got, s.Len())
	}
	mustSet(t, s, "j", []byte("x"))
}

// failRecorder is a testing.TB whose Fatalf ends the goroutine and records
// the failure instead of failing the test: a seeded bug's run is expected
// to fail.
type failRecorder struct {
	testing.TB
	msg string
}

func (f *failRecorder) Helper() {}
func (f *failRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *failRecorder) Errorf(format string, args ...any) { f.Fatalf(format, args...) }
func (f *failRecorder) Fatal(args ...any)                 { f.Fatalf("%s", fmt.Sprint(args...)) }

// runRecorded runs r and returns how it failed, or "".
func runRecorded(t *testing.T, r *injectRun) string {
	rec := &failRecorder{TB: t}
	r.t = rec
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.run()
	}()
	<-done
	return rec.msg
}

// TestErrorInjectionCatchesFencedTableReads fails, one at a time, the
// operations of a manifest flush in the middle of a workload whose 64 KiB
// keys fill pebble's memtable: reads then go through the table whose
// writes were cut short. They must work; and with the seeded bug the fence
// must not have (the writes pebble makes to such a table after the fence
// are dropped, so reads meet the partial file on disk), the read-back must
// fail.
func TestErrorInjectionCatchesFencedTableReads(t *testing.T) {
	seed := crashSeedFor(t)
	ops := genWorkload(rand.New(rand.NewPCG(seed, 7)), 100, 16, 1<<10)
	for i := range ops {
		ops[i].key += strings.Repeat("/", 64<<10)
	}
	dry := &failAt{at: -1}
	total := (&injectRun{t: t, ops: ops, inj: dry}).run()
	first := dry.firstTable.Load() - 1
	t.Logf("%d file-system operations, the first table of the workload created at %d", total, first)
	if first < 0 {
		t.Fatal("the workload flushed no table")
	}
	const window = 24
	for at := first; at < first+window; at++ {
		(&injectRun{t: t, ops: ops, inj: &failAt{at: at, err: syscall.ENOSPC}}).run()
	}
	manifest.Mutation.Store(manifest.MutFenceDropsWrites)
	defer manifest.Mutation.Store(manifest.MutNone)
	for at := first; at < first+window; at++ {
		inj := &failAt{at: at, err: syscall.ENOSPC}
		msg := runRecorded(t, &injectRun{ops: ops, inj: inj})
		if msg != "" && !strings.Contains(msg, "invalid table") && !strings.Contains(msg, "read back after the failure") {
			t.Fatalf("a run failed for another reason: %s", msg)
		}
		if msg != "" {
			t.Logf("caught at operation %d of %d: %s", at, total, msg)
			return
		}
	}
	t.Fatal("the error-injection test did not catch reads through a fenced table")
}
