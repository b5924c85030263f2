package dirstore_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/escape"
	"github.com/dirstore/dirstore/internal/tornfs"
)

var (
	crashSeed = flag.Uint64("crash.seed", 0, "seed of the crash tests' workloads (0: a new one, logged)")
	crashOps  = flag.Int("crash.ops", 0, "operations in each crash test's workload (0: 1,000, or 200 under -race)")
)

// workOp is one operation of a generated workload.
type workOp struct {
	kind  string // set, setbuffers, setfrom, delete
	key   string
	value []byte
}

func (o workOp) apply(s *dirstore.Store) error {
	switch o.kind {
	case "set":
		return s.Set(o.key, o.value)
	case "setbuffers":
		h := len(o.value) / 3
		return s.SetBuffers(o.key, o.value[:h], o.value[h:2*h], o.value[2*h:])
	case "setfrom":
		_, err := s.SetFrom(o.key, bytes.NewReader(o.value))
		return err
	case "delete":
		return s.Delete(o.key)
	}
	panic(o.kind)
}

// model is the expected content of a store.
type model map[string]string

func (m model) with(o workOp) model {
	c := make(model, len(m)+1)
	for k, v := range m {
		c[k] = v
	}
	if o.kind == "delete" {
		delete(c, o.key)
	} else {
		c[o.key] = string(o.value)
	}
	return c
}

// genWorkload makes n operations on nkeys keys; deletes always hit a key
// that exists, so every operation changes the model.
func genWorkload(rng *rand.Rand, n, nkeys, maxValue int) []workOp {
	ks := make([]string, nkeys)
	for i := range ks {
		ks[i] = fmt.Sprintf("k%02d", i)
	}
	ks[0], ks[1] = "", "a/b c#%" // hostile names ride along
	live := map[string]bool{}
	ops := make([]workOp, 0, n)
	for i := 0; i < n; i++ {
		key := ks[rng.IntN(nkeys)]
		if live[key] && rng.IntN(4) == 0 {
			ops = append(ops, workOp{kind: "delete", key: key})
			delete(live, key)
			continue
		}
		v := make([]byte, rng.IntN(maxValue+1))
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		kind := []string{"set", "set", "setbuffers", "setfrom"}[rng.IntN(4)]
		ops = append(ops, workOp{kind: kind, key: key, value: v})
		live[key] = true
	}
	return ops
}

// bufPrefix starts the keys that the crash workloads keep in a Buffer.
const bufPrefix = "buf/"

// withBufferOps mixes Buffer operations into ops: Sets (which spill the
// least recently used values to the store once the memory tier is full),
// Gets (which move spilled values back, deleting their store copies) and
// Deletes, on 8 keys of their own.
func withBufferOps(rng *rand.Rand, ops []workOp, maxValue int) []workOp {
	var out []workOp
	live := map[string]bool{}
	for _, o := range ops {
		out = append(out, o)
		if rng.IntN(4) != 0 {
			continue
		}
		key := fmt.Sprintf("%s%d", bufPrefix, rng.IntN(8))
		switch r := rng.IntN(6); {
		case live[key] && r == 0:
			out = append(out, workOp{kind: "delete", key: key})
			delete(live, key)
		case live[key] && r < 3:
			out = append(out, workOp{kind: "get", key: key})
		default:
			v := make([]byte, rng.IntN(maxValue+1))
			for j := range v {
				v[j] = byte(rng.Uint32())
			}
			out = append(out, workOp{kind: "set", key: key, value: v})
			live[key] = true
		}
	}
	return out
}

func (o workOp) applyBuffer(b *dirstore.Buffer[[]byte]) error {
	switch o.kind {
	case "set":
		return b.Set(o.key, o.value)
	case "get":
		_, err := b.Get(o.key)
		return err
	case "delete":
		return b.Delete(o.key)
	}
	panic(o.kind)
}

// withSpilled returns m with the Buffer's keys as the store holds them.
func (m model) withSpilled(t *testing.T, s *dirstore.Store) model {
	c := make(model, len(m))
	for k, v := range m {
		if !strings.HasPrefix(k, bufPrefix) {
			c[k] = v
		}
	}
	for k, err := range s.KeysWithPrefix(bufPrefix) {
		if err != nil {
			t.Fatal(err)
		}
		v, err := s.Get(k)
		if err != nil {
			t.Fatal(err)
		}
		c[k] = string(v)
	}
	return c
}

// crashPoint is the file system as a crash at one moment would leave it.
type crashPoint struct {
	fs       *vfs.MemFS
	acked    int // operations acknowledged before the moment
	inflight int // how many more may have reached the file system
	what     string
}

// crashRecorder clones the file system before every write operation.
type crashRecorder struct {
	mem    *vfs.MemFS
	cfg    func() vfs.CrashCloneCfg
	acked  atomic.Int64
	mu     sync.Mutex
	points []crashPoint
	on     atomic.Bool
	tear   func(*vfs.MemFS) // the torn-write model, if set
	torn   *tornfs.FS       // the file system that tears, for its count
}

func (c *crashRecorder) MaybeError(op errorfs.Op) error {
	if c.on.Load() && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
		// Background goroutines (removals, pebble) write too: the main
		// goroutine may finish operations while the clone is taken.
		before := int(c.acked.Load())
		clone := c.mem.CrashClone(c.cfg())
		after := int(c.acked.Load())
		if c.tear != nil {
			c.tear(clone)
		}
		c.mu.Lock()
		c.points = append(c.points, crashPoint{fs: clone, acked: before, inflight: after - before + 1, what: fmt.Sprintf("%v %s", op.Kind, op.Path)})
		c.mu.Unlock()
	}
	return nil
}

func (c *crashRecorder) String() string { return "crashRecorder" }

func (c *crashRecorder) take() []crashPoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.points
	c.points = nil
	return p
}

// earlyFS makes every Remove and Rename reach the disk at once, ahead of the
// directory sync a careful program would wait for (pebble's MemFS keeps them
// pending until then), as some file systems do.
type earlyFS struct{ vfs.FS }

func (e earlyFS) Remove(name string) error {
	if err := e.FS.Remove(name); err != nil {
		return err
	}
	return e.syncDir(name)
}

func (e earlyFS) Rename(oldname, newname string) error {
	if err := e.FS.Rename(oldname, newname); err != nil {
		return err
	}
	return e.syncDir(newname)
}

func (e earlyFS) syncDir(name string) error {
	d, err := e.FS.OpenDir(e.FS.PathDir(name))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func crashSeedFor(t *testing.T) uint64 {
	seed := *crashSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (rerun with -crash.seed=%d)", seed, seed)
	return seed
}

// crashConfig is one crash test: a durability mode and a model of what an
// unsynced write looks like after the crash.
type crashConfig struct {
	nosync   bool
	unsynced int  // percent of unsynced blocks and directory entries that survive
	early    bool // removals and renames reach the disk at once
	torn     bool // about half the surviving unsynced ranges come back as garbage
	bounded  bool // Options.MaxBytes is a quarter of what the keys could take: Sets evict
	serial   bool // a durable Set syncs one thing at a time, as on btrfs
}

func TestCrash(t *testing.T) {
	var configs []crashConfig
	for _, nosync := range []bool{false, true} {
		for _, pct := range []int{0, 10, 50} {
			configs = append(configs, crashConfig{nosync: nosync, unsynced: pct})
		}
		configs = append(configs,
			crashConfig{nosync: nosync, unsynced: 50, early: true},
			crashConfig{nosync: nosync, unsynced: 100, torn: true},
			crashConfig{nosync: nosync, unsynced: 50, bounded: true})
	}
	configs = append(configs, crashConfig{unsynced: 50, serial: true})
	for _, c := range configs {
		name := fmt.Sprintf("nosync=%v,unsynced=%d%%,early=%v,torn=%v", c.nosync, c.unsynced, c.early, c.torn)
		if c.bounded {
			name += ",bounded"
		}
		if c.serial {
			name += ",serial"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// The size: 1,000 operations on 64 keys with values up
			// to 64 KiB; the race detector makes every crash point ten
			// times dearer.
			nops, nkeys, maxValue := 1000, 64, 64<<10
			if underRace {
				nops, nkeys, maxValue = 200, 12, 8<<10
			}
			if *crashOps > 0 {
				nops = *crashOps
			}
			if err := runCrash(t, crashSeedFor(t), c, nops, nkeys, maxValue); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCrashCatchesMutations seeds, one at a time, the bugs a crash-safe
// store must not have, and checks that the crash tests catch each: a suite
// that passes them is not testing durability.
func TestCrashCatchesMutations(t *testing.T) {
	type mutCase struct {
		name   string
		m      int32
		serial bool
	}
	var cases []mutCase
	for name, m := range dirstore.Mutations {
		cases = append(cases, mutCase{name, m, false})
	}
	// The syncs a durable Set makes one at a time (as on btrfs) must be
	// made too.
	for _, name := range []string{"no file fsync", "no directory fsync"} {
		cases = append(cases, mutCase{name + ", serial", dirstore.Mutations[name], true})
	}
	for _, mc := range cases {
		name, m := mc.name, mc.m
		t.Run(name, func(t *testing.T) {
			restore := dirstore.SetMutation(m)
			defer restore()
			// Removal too early shows only where removals reach the disk
			// before the directory is synced.
			c := crashConfig{unsynced: 0, early: m == dirstore.Mutations["old file removed too early"], serial: mc.serial}
			nops := 60
			if m == dirstore.Mutations["batch rolled back in part"] {
				// Only NoSync buffers writes; some files of a batch must
				// survive and some not.
				c, nops = crashConfig{nosync: true, unsynced: 50}, 1000
			}
			// A Set acknowledged before its directory's fsync shows only
			// where the fsync has not run yet when the next write is made,
			// which the scheduler decides: a few workloads, to catch it
			// every time.
			tries := 1
			if m == dirstore.Mutations["directory fsync not awaited"] {
				tries = 5
			}
			seed := crashSeedFor(t)
			var err error
			for i := range tries {
				if err = runCrash(t, seed+uint64(i), c, nops, 4, 6<<10); err != nil {
					break
				}
			}
			if err == nil {
				t.Fatalf("the crash tests did not catch %q", name)
			}
			t.Logf("caught: %v", err)
		})
	}
}

// crashFS is a crashable file system under the crash model c: the
// recorder clones it at every write operation.
func crashFS(seed uint64, c crashConfig, mem *vfs.MemFS) (vfs.FS, *crashRecorder) {
	torn := tornfs.New(mem)
	cloneRNG := rand.New(rand.NewPCG(seed, 2))
	var rngMu sync.Mutex
	rec := &crashRecorder{mem: mem, torn: torn, cfg: func() vfs.CrashCloneCfg {
		rngMu.Lock()
		defer rngMu.Unlock()
		return vfs.CrashCloneCfg{UnsyncedDataPercent: c.unsynced, RNG: rand.New(rand.NewPCG(cloneRNG.Uint64(), 0))}
	}}
	if c.torn {
		rec.tear = func(clone *vfs.MemFS) {
			rngMu.Lock()
			r := rand.New(rand.NewPCG(cloneRNG.Uint64(), 1))
			rngMu.Unlock()
			torn.Tear(clone, r)
		}
	}
	var fsys vfs.FS = errorfs.Wrap(torn, rec)
	if c.early {
		fsys = earlyFS{fsys}
	}
	return fsys, rec
}

// runCrash runs a workload of nops operations on nkeys keys, clones the file
// system at every write, and returns the first clone that does not reopen
// to an allowed state.
func runCrash(t *testing.T, seed uint64, c crashConfig, nops, nkeys, maxValue int) error {
	rng := rand.New(rand.NewPCG(seed, 1))
	ops := withBufferOps(rng, genWorkload(rng, nops, nkeys, maxValue), maxValue)
	// models[i] is what the store holds after i operations: for the
	// store's own operations, as a map model says; for the Buffer's, what
	// its spills left in the store (read back after each), which a crash
	// must not tear or lose either.
	models := []model{{}}
	mem := vfs.NewCrashableMem()
	fsys, rec := crashFS(seed, c, mem)
	// Frequent checkpoints, so that crashes land in them too. The write
	// buffer takes values up to half the largest and fills up often, so
	// that NoSync writes go through it, around it, and wait for it.
	opts := &dirstore.Options{FS: fsys, NoSync: c.nosync, CheckpointInterval: time.Millisecond, WriteBuffer: int64(8 * maxValue)}
	if c.serial {
		dirstore.SerialSyncs(opts)
	}
	// A bounded store evicts inside the workload: the model drops what
	// OnEvict reports.
	var maxBytes int64
	var evictMu sync.Mutex
	var evicted []string
	if c.bounded {
		maxBytes = int64(nkeys * maxValue / 4) // a quarter of what the keys could take
		opts.MaxBytes = maxBytes
		opts.OnEvict = func(key string, _ int64) {
			evictMu.Lock()
			evicted = append(evicted, key)
			evictMu.Unlock()
		}
	}
	s, err := dirstore.Open("/db", opts)
	if err != nil {
		t.Fatal(err)
	}
	buf, err := dirstore.NewBuffer[[]byte](s, dirstore.BufferOptions[[]byte]{MaxWeight: int64(2 * maxValue)})
	if err != nil {
		t.Fatal(err)
	}
	rec.on.Store(true)
	checked := 0
	var firstErr error
	verify := func() {
		for _, p := range rec.take() {
			if err := crashPointErr(p, ops, models, c.nosync, maxBytes); err != nil && firstErr == nil {
				firstErr = err
			}
			checked++
		}
	}
	for i, o := range ops {
		next := models[len(models)-1]
		// In a bounded store, a key the workload reads or deletes may be
		// gone already, evicted.
		gone := func(err error) bool {
			_, ok := next[o.key]
			return c.bounded && errors.Is(err, dirstore.ErrNotFound) && (o.kind == "get" || o.kind == "delete") && !ok
		}
		if buffered := strings.HasPrefix(o.key, bufPrefix); buffered {
			if err := o.applyBuffer(buf); err != nil && !gone(err) {
				t.Fatalf("op %d buffer %s %q: %v", i, o.kind, o.key, err)
			}
			next = next.withSpilled(t, s)
		} else if err := o.apply(s); err != nil {
			if !gone(err) {
				t.Fatalf("op %d %s %q: %v", i, o.kind, o.key, err)
			}
		} else {
			next = next.with(o)
		}
		if c.bounded {
			next = next.evicted(t, s, &evictMu, &evicted, maxBytes)
		}
		models = append(models, next)
		rec.acked.Store(int64(i + 1))
		if i%20 == 0 {
			verify()
		}
		if firstErr != nil {
			s.Close()
			return firstErr
		}
	}
	if err := buf.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rec.on.Store(false)
	verify()
	if firstErr != nil {
		return firstErr
	}
	// After a clean Close everything must be there.
	if err := crashPointErr(crashPoint{fs: mem.CrashClone(vfs.CrashCloneCfg{}), acked: len(ops), what: "after Close"}, ops, models, false, maxBytes); err != nil {
		return err
	}
	t.Logf("checked %d crash points of %d operations", checked, len(ops))
	if c.bounded {
		n := 0
		for i := 1; i < len(models); i++ {
			for k := range models[i-1] {
				if _, ok := models[i][k]; !ok && !strings.HasPrefix(k, bufPrefix) && ops[i-1].key != k {
					n++ // gone, not by the operation's own Delete
				}
			}
		}
		t.Logf("%d evictions", n)
		if n < len(ops)/50 {
			t.Fatalf("only %d evictions in %d operations", n, len(ops))
		}
	}
	if c.torn {
		n := rec.torn.Torn()
		t.Logf("tore %d unsynced ranges", n)
		if n == 0 {
			t.Fatal("the torn-write model tore nothing")
		}
	}
	if checked < len(ops) {
		t.Fatalf("only %d crash points for %d operations", checked, len(ops))
	}
	return nil
}

// crashPointErr reopens a crashed file system and checks what survived:
// with sync, every acknowledged operation (and maybe those in flight);
// without, some prefix of them. Never a torn value, never an orphan file.
func crashPointErr(p crashPoint, ops []workOp, models []model, nosync bool, maxBytes int64) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("crash at %q after %d acknowledged operations: %s", p.what, p.acked, fmt.Sprintf(format, args...))
	}
	// A bounded store reopens bounded: recovery leaves it within its
	// budget (and, since every state it passed through was, evicts
	// nothing).
	var logs strings.Builder // recovery's, for a failure
	s, err := dirstore.Open("/db", &dirstore.Options{FS: p.fs, MaxBytes: maxBytes, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		return fail("Open: %v", err)
	}
	defer s.Close()
	if st := s.Stats(); maxBytes > 0 && st.Bytes > maxBytes {
		return fail("Bytes %d over MaxBytes %d after recovery", st.Bytes, maxBytes)
	}
	got := model{}
	for k, err := range s.Keys() {
		if err != nil {
			return fail("Keys: %v", err)
		}
		v, err := s.Get(k)
		if err != nil {
			return fail("Get(%q): %v", k, err)
		}
		got[k] = string(v)
	}
	if s.Len() != len(got) {
		return fail("Len = %d, but %d keys", s.Len(), len(got))
	}
	lo := p.acked
	if nosync {
		lo = 0
	}
	// A point taken by a background write after an operation was
	// acknowledged counts the next one as in flight, which may not have
	// started (nor have a model) when the point is checked.
	hi := min(p.acked+p.inflight, len(ops), len(models)-1)
	match := -1
	for i := hi; i >= lo; i-- {
		if maps.Equal(got, models[i]) || (i < hi && midBufferOp(got, ops[i], models[i], models[i+1])) {
			match = i
			break
		}
	}
	if match < 0 {
		return fail("the store matches no allowed state (operations %d to %d): %s\n%s\nrecovery's log:\n%s",
			lo, hi, describeDiff(got, models[p.acked]), nearestState(got, ops, models, lo, hi), logs.String())
	}
	// No orphan: every value file is the current file of a key.
	names, err := p.fs.List("/db")
	if err != nil {
		return fail("List: %v", err)
	}
	n := 0
	for _, name := range names {
		if _, _, ok := escape.Parse(name); ok {
			n++
		}
	}
	if n != len(got) {
		slices.Sort(names)
		return fail("%d value files for %d keys: %q", n, len(got), names)
	}
	return nil
}

// midBufferOp reports whether got is a state the store passes through
// during operation o, from a to b: one Buffer operation may make several
// store operations (remove a key's old copy, spill it and others), so each
// key o changes may be as before, as after, or absent; a Set into a bounded
// store evicts keys before it sets its own, so each key it changes is as
// before or as after. Every other key is as before.
func midBufferOp(got model, o workOp, a, b model) bool {
	buffered := strings.HasPrefix(o.key, bufPrefix)
	keys := map[string]bool{}
	for _, m := range []model{got, a, b} {
		for k := range m {
			keys[k] = true
		}
	}
	for k := range keys {
		g, gok := got[k]
		av, aok := a[k]
		bv, bok := b[k]
		changed := aok != bok || av != bv
		switch {
		case !changed:
			if gok != aok || g != av {
				return false
			}
		case !gok && (buffered || !aok || !bok), gok && aok && g == av, gok && bok && g == bv:
		default:
			return false
		}
	}
	return true
}

// nearestState says, for a crash that left no allowed state, which of
// models[lo..hi] got is closest to, how, and the operations around it: the
// start of a diagnosis, as failures of this kind depend on timing and a
// seed does not reproduce them.
func nearestState(got model, ops []workOp, models []model, lo, hi int) string {
	best, bestN := lo, math.MaxInt
	for i := hi; i >= lo; i-- {
		if n := strings.Count(describeDiff(got, models[i]), "; "); n < bestN {
			best, bestN = i, n
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "nearest: after %d operations: %s", best, describeDiff(got, models[best]))
	for i := max(0, best-8); i < min(best+8, len(ops)); i++ {
		fmt.Fprintf(&b, "\n  op %d: %s %q (%d bytes)", i, ops[i].kind, ops[i].key, len(ops[i].value))
	}
	return b.String()
}

func describeDiff(got, want model) string {
	var b strings.Builder
	for k, v := range want {
		if g, ok := got[k]; !ok {
			fmt.Fprintf(&b, "missing %q; ", k)
		} else if g != v {
			fmt.Fprintf(&b, "%q differs (%d bytes, want %d); ", k, len(g), len(v))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			fmt.Fprintf(&b, "extra %q; ", k)
		}
	}
	return b.String()
}

// evicted returns m without the keys OnEvict reported (taking them from
// *log), after checking that the store holds just the keys left, within
// its budget.
func (m model) evicted(t *testing.T, s *dirstore.Store, mu *sync.Mutex, log *[]string, maxBytes int64) model {
	t.Helper()
	mu.Lock()
	gone := *log
	*log = nil
	mu.Unlock()
	c := make(model, len(m))
	var sum int64
	for k, v := range m {
		if !slices.Contains(gone, k) {
			c[k] = v
			sum += int64(len(v))
		}
	}
	var ks []string
	for k, err := range s.Keys() {
		if err != nil {
			t.Fatal(err)
		}
		ks = append(ks, k)
	}
	if len(ks) != len(c) || s.Stats().Bytes != sum || sum > maxBytes {
		t.Fatalf("the store holds %d keys, %d bytes; the model %d keys, %d bytes (MaxBytes %d)", len(ks), s.Stats().Bytes, len(c), sum, maxBytes)
	}
	for _, k := range ks {
		if _, ok := c[k]; !ok {
			t.Fatalf("the store holds %q, which the model evicted or never had", k)
		}
	}
	return c
}
