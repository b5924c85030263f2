package dirstore_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/backends"
)

var (
	metaSeed      = flag.Uint64("meta.seed", 0, "seed of TestMetamorphic's first history (0: a new one, logged)")
	metaOps       = flag.Int("meta.ops", 300, "operations in each of TestMetamorphic's histories")
	metaHistories = flag.Int("meta.histories", 2, "histories TestMetamorphic runs (seeds seed, seed+1, ...)")
)

// metaKeys are the keys of the metamorphic histories.
var metaKeys = []string{"", "k", "k1", "k10", "k2", "a/b", "a/b c#%", "..", ".", "\x00", "日本",
	"%41", "#1", strings.Repeat("x", 300), strings.Repeat("x", 300) + "y", "z"}

var metaPrefixes = []string{"", "k", "k1", "a/", "x", "%", "\x00", "none"}

// metaOp is one operation of a history. Everything random about it is drawn
// when the history is made, so every configuration runs the same one.
type metaOp struct {
	kind   string
	key    string
	value  []byte
	prefix string
	off, n int64 // a ReadAt's range
	chunk  int   // a Stream's ChunkSize (0: default)
}

func genMetaHistory(seed uint64, n int) []metaOp {
	rng := rand.New(rand.NewPCG(seed, 8))
	kinds := []struct {
		kind   string
		weight int
	}{
		{"set", 20}, {"setbuffers", 6}, {"setfrom", 6}, {"delete", 10}, {"get", 14}, {"view", 8},
		{"has", 4}, {"len", 2}, {"keys", 3}, {"prefix", 3}, {"stream", 12}, {"readat", 6},
		{"sync", 2}, {"verify", 1}, {"reopen", 3}, {"crash", 2},
	}
	total := 0
	for _, k := range kinds {
		total += k.weight
	}
	ops := make([]metaOp, n)
	for i := range ops {
		p := rng.IntN(total)
		var kind string
		for _, k := range kinds {
			if p < k.weight {
				kind = k.kind
				break
			}
			p -= k.weight
		}
		o := metaOp{kind: kind, key: metaKeys[rng.IntN(len(metaKeys))], prefix: metaPrefixes[rng.IntN(len(metaPrefixes))]}
		switch kind {
		case "set", "setbuffers", "setfrom":
			size := rng.IntN(4 << 10)
			switch rng.IntN(10) {
			case 0:
				size = 0
			case 1:
				size = rng.IntN(200 << 10)
			}
			o.value = make([]byte, size)
			for j := range o.value {
				o.value[j] = byte(rng.Uint32())
			}
		case "readat":
			o.off, o.n = rng.Int64N(6<<10), rng.Int64N(6<<10)
		}
		o.chunk = []int{0, 100, 1000, 4096}[rng.IntN(4)]
		ops[i] = o
	}
	return ops
}

// metaConfig is one way to run a history.
type metaConfig struct {
	nosync, mmap, noEntryCache bool
	mem                        bool // a crashable in-memory file system instead of the OS's
}

func (c metaConfig) String() string {
	fsName := "os"
	if c.mem {
		fsName = "mem"
	}
	return fmt.Sprintf("fs=%s,nosync=%t,mmap=%t,entrycache=%t", fsName, c.nosync, c.mmap, !c.noEntryCache)
}

// metaStreamConfig is one way to read a Stream: every stream operation of
// a history reads through each of them.
type metaStreamConfig struct {
	name  string
	cache *dirstore.Cache
	eng   backends.Backend
}

// TestMetamorphic runs random histories of operations (writes of every
// kind, reads of every kind, Keys, KeysWithPrefix, Len, Stats, Verify,
// Stream reads whole and at random ranges, Sync, clean reopens, and
// reopens of a copy taken while open, which recover) on every configuration:
// NoSync on and off (with a small write buffer, and without one when
// Mmap is on), Mmap on and off, the entry cache on and off (-1), on
// the OS's file system and on an in-memory one; and each Stream read under
// every stream configuration: the default cache, a small cache that evicts,
// NoCache, each through the default engine (DIRSTORE_BACKEND chooses it),
// the sync engine and the uring engine (where io_uring works). Every result
// must equal a map model's, and so every configuration's transcript the
// same. The seed is logged; -meta.seed, -meta.ops and -meta.histories
// replay or extend.
func TestMetamorphic(t *testing.T) {
	seed := *metaSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (rerun with -meta.seed=%d)", seed, seed)
	engines := []backends.Backend{nil}
	for _, name := range []string{"sync", "uring"} {
		b, err := backends.New(name, nil)
		if err != nil {
			t.Logf("no %s engine: %v", name, err)
			continue
		}
		t.Cleanup(func() { b.Close() })
		engines = append(engines, b)
	}
	var configs []metaConfig
	for _, mem := range []bool{false, true} {
		for _, nosync := range []bool{false, true} {
			for _, mmap := range []bool{false, true} {
				for _, noEC := range []bool{false, true} {
					if mem && mmap {
						continue // Mmap is the OS file system's
					}
					configs = append(configs, metaConfig{nosync: nosync, mmap: mmap, noEntryCache: noEC, mem: mem})
				}
			}
		}
	}
	for h := range *metaHistories {
		hseed := seed + uint64(h)
		ops := genMetaHistory(hseed, *metaOps)
		want := metaModelTranscript(ops)
		var mu sync.Mutex
		transcripts := map[string][]string{}
		t.Run(fmt.Sprintf("seed=%d", hseed), func(t *testing.T) {
			for _, c := range configs {
				t.Run(c.String(), func(t *testing.T) {
					t.Parallel()
					got := runMetaHistory(t, c, engines, ops, want)
					mu.Lock()
					transcripts[c.String()] = got
					mu.Unlock()
				})
			}
		})
		// Every configuration against the first (they all matched the model
		// op by op; this is the metamorphic check proper).
		if len(transcripts) != len(configs) {
			continue // a configuration failed and said why
		}
		first := configs[0].String()
		for name, tr := range transcripts {
			if !slices.Equal(tr, transcripts[first]) {
				t.Errorf("seed %d: %s and %s differ", hseed, name, first)
			}
		}
	}
}

// metaModel runs a history on a map and returns what each operation must
// return.
func metaModelTranscript(ops []metaOp) []string {
	m := map[string][]byte{}
	out := make([]string, len(ops))
	for i, o := range ops {
		v, ok := m[o.key]
		switch o.kind {
		case "set", "setbuffers", "setfrom":
			m[o.key] = o.value
			out[i] = "ok"
		case "delete":
			if ok {
				delete(m, o.key)
				out[i] = "ok"
			} else {
				out[i] = "notfound"
			}
		case "get", "view", "stream":
			out[i] = describeRead(v, ok, nil)
		case "readat":
			if !ok {
				out[i] = describeRead(nil, false, nil)
				break
			}
			var b []byte
			var err error
			if o.off < int64(len(v)) {
				b = v[o.off:min(int64(len(v)), o.off+o.n)]
			}
			if int64(len(b)) < o.n {
				err = io.EOF
			}
			out[i] = describeRead(b, true, err)
		case "has":
			out[i] = fmt.Sprint(ok)
		case "len":
			var bytes int
			for _, v := range m {
				bytes += len(v)
			}
			out[i] = fmt.Sprintf("%d keys, %d bytes", len(m), bytes)
		case "keys", "prefix":
			prefix := o.prefix
			if o.kind == "keys" {
				prefix = ""
			}
			var ks []string
			for _, k := range slices.Sorted(maps.Keys(m)) {
				if strings.HasPrefix(k, prefix) {
					ks = append(ks, k)
				}
			}
			out[i] = fmt.Sprintf("%q", ks)
		case "verify":
			out[i] = fmt.Sprintf("%d values ok", len(m))
		case "sync", "reopen", "crash":
			out[i] = "ok"
		default:
			panic(o.kind)
		}
	}
	return out
}

// describeRead is the transcript line of a read: absent, or the value's
// length and checksum, and the error.
func describeRead(v []byte, ok bool, err error) string {
	switch {
	case !ok || errors.Is(err, fs.ErrNotExist):
		return "notfound"
	case err == io.EOF:
		return fmt.Sprintf("%d bytes %08x, EOF", len(v), crc32.ChecksumIEEE(v))
	case err != nil:
		return "error: " + err.Error()
	}
	return fmt.Sprintf("%d bytes %08x", len(v), crc32.ChecksumIEEE(v))
}

// runMetaHistory runs ops on a store of configuration c, checking each
// result against want, and returns the transcript.
func runMetaHistory(t *testing.T, c metaConfig, engines []backends.Backend, ops []metaOp, want []string) []string {
	var fsys vfs.FS
	var mem *vfs.MemFS
	dir := filepath.Join(t.TempDir(), "store")
	if c.mem {
		mem = vfs.NewCrashableMem()
		fsys, dir = mem, "/store"
	}
	opts := func() *dirstore.Options {
		o := &dirstore.Options{FS: fsys, NoSync: c.nosync, Mmap: c.mmap}
		if c.nosync {
			// NoSync without the write buffer, and with a small one that
			// fills often and takes only the smaller values.
			o.WriteBuffer = 16 << 10
			if c.mmap {
				o.WriteBuffer = -1
			}
		}
		if c.noEntryCache {
			o.EntryCache = -1
		}
		return o
	}
	s, err := dirstore.Open(dir, opts())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	var streams []metaStreamConfig
	for _, cache := range []struct {
		name string
		c    *dirstore.Cache
	}{{"default cache", nil}, {"small scan-resistant cache", dirstore.NewScanResistantCache(32 << 10)}, {"NoCache", dirstore.NoCache}} {
		for _, eng := range engines {
			name := cache.name + ", default engine"
			if eng != nil {
				name = cache.name + ", " + eng.Name()
			}
			streams = append(streams, metaStreamConfig{name, cache.c, eng})
		}
	}
	crashes := 0
	out := make([]string, len(ops))
	for i, o := range ops {
		check := func(what, got string) {
			t.Helper()
			if got != want[i] {
				t.Fatalf("%v: operation %d %s(%q)%s = %q, want %q", c, i, o.kind, o.key, what, got, want[i])
			}
		}
		var got string
		switch o.kind {
		case "set":
			got = errString(s.Set(o.key, o.value))
		case "setbuffers":
			h := len(o.value) / 3
			got = errString(s.SetBuffers(o.key, o.value[:h], nil, o.value[h:2*h], o.value[2*h:]))
		case "setfrom":
			_, err := s.SetFrom(o.key, io.MultiReader(bytes.NewReader(o.value[:len(o.value)/2]), bytes.NewReader(o.value[len(o.value)/2:])))
			got = errString(err)
		case "delete":
			got = errString(s.Delete(o.key))
		case "get":
			v, err := s.Get(o.key)
			got = describeRead(v, err == nil, err)
		case "view":
			var d string
			err := s.View(o.key, func(v []byte) error {
				d = describeRead(v, true, nil)
				return nil
			})
			if err != nil {
				d = describeRead(nil, false, err)
			}
			got = d
		case "stream", "readat":
			for _, sc := range streams {
				st, err := s.OpenStream(o.key, &dirstore.StreamOptions{Cache: sc.cache, Backend: sc.eng, ChunkSize: o.chunk})
				if err != nil {
					check(" via "+sc.name, describeRead(nil, false, err))
					continue
				}
				var b []byte
				if o.kind == "stream" {
					b, err = io.ReadAll(st)
				} else {
					b = make([]byte, o.n)
					var n int
					n, err = st.ReadAt(b, o.off)
					b = b[:n]
				}
				if cerr := st.Close(); cerr != nil {
					t.Fatalf("%v: operation %d: Stream.Close: %v", c, i, cerr)
				}
				got = describeRead(b, true, err)
				check(" via "+sc.name, got)
			}
			got = want[i] // each was checked
		case "has":
			ok, err := s.Has(o.key)
			got = fmt.Sprint(ok)
			if err != nil {
				got = "error: " + err.Error()
			}
		case "len":
			st := s.Stats()
			got = fmt.Sprintf("%d keys, %d bytes", s.Len(), st.Bytes)
			if st.Keys != int64(s.Len()) {
				got += fmt.Sprintf(" (Stats.Keys %d)", st.Keys)
			}
		case "keys", "prefix":
			seq := s.Keys()
			if o.kind == "prefix" {
				seq = s.KeysWithPrefix(o.prefix)
			}
			var ks []string
			for k, err := range seq {
				if err != nil {
					t.Fatalf("%v: operation %d: Keys: %v", c, i, err)
				}
				ks = append(ks, k)
			}
			got = fmt.Sprintf("%q", ks)
		case "verify":
			n, bad := 0, 0
			err := s.Verify(func(key string, err error) bool {
				n++
				if err != nil {
					bad++
					t.Errorf("%v: operation %d: Verify: %v", c, i, err)
				}
				return true
			})
			got = fmt.Sprintf("%d values ok", n-bad)
			if err != nil {
				got = "error: " + err.Error()
			}
		case "sync":
			got = errString(s.Sync())
		case "reopen":
			got = errString(s.Close())
			if s, err = dirstore.Open(dir, opts()); err != nil {
				t.Fatalf("%v: operation %d: reopen: %v", c, i, err)
			}
		case "crash":
			// After Sync everything is durable: a crash then must lose
			// nothing, and the reopen recovers.
			if err := s.Sync(); err != nil {
				t.Fatalf("%v: operation %d: Sync: %v", c, i, err)
			}
			crashes++
			old := s
			if c.mem {
				fsys = mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
				mem = fsys.(*vfs.MemFS)
			} else {
				next := filepath.Join(filepath.Dir(dir), fmt.Sprintf("crash%d", crashes))
				copyTree(t, dir, next)
				dir = next
			}
			old.Close()
			if s, err = dirstore.Open(dir, opts()); err != nil {
				t.Fatalf("%v: operation %d: reopen after a crash: %v", c, i, err)
			}
			got = "ok"
		}
		check("", got)
		out[i] = got
	}
	return out
}

func errString(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, dirstore.ErrNotFound):
		return "notfound"
	}
	return "error: " + err.Error()
}
