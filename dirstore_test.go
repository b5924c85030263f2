package dirstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

func keys(t testing.TB, s *dirstore.Store) []string {
	t.Helper()
	var out []string
	for k, err := range s.Keys() {
		if err != nil {
			t.Fatalf("Keys: %v", err)
		}
		out = append(out, k)
	}
	return out
}

// valueFiles lists dir without the store's hidden metadata directory.
func valueFiles(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Name() != ".dirstore" {
			out = append(out, e.Name())
		}
	}
	return out
}

func mustGet(t testing.TB, s *dirstore.Store, key string) []byte {
	t.Helper()
	v, err := s.Get(key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return v
}

func mustSet(t testing.TB, s *dirstore.Store, key string, v []byte) {
	t.Helper()
	if err := s.Set(key, v); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

// checkItems is zict's utils_test.check_items: the store holds exactly want.
func checkItems(t testing.TB, s *dirstore.Store, want map[string]string) {
	t.Helper()
	var wantKeys []string
	for k := range want {
		wantKeys = append(wantKeys, k)
	}
	sort.Strings(wantKeys)
	if got := keys(t, s); !slices.Equal(got, wantKeys) {
		t.Fatalf("keys = %q, want %q", got, wantKeys)
	}
	if s.Len() != len(want) {
		t.Fatalf("Len = %d, want %d", s.Len(), len(want))
	}
	for k, v := range want {
		if got := mustGet(t, s, k); string(got) != v {
			t.Fatalf("Get(%q) = %q, want %q", k, got, v)
		}
	}
}

// checkMapping ports zict's utils_test.check_mapping.
func checkMapping(t *testing.T, s *dirstore.Store) {
	if !strings.Contains(s.String(), "Store") {
		t.Fatalf("String() = %q", s.String())
	}
	checkItems(t, s, map[string]string{})
	mustSet(t, s, "abc", []byte("456"))
	mustSet(t, s, "xyz", []byte("12"))
	checkItems(t, s, map[string]string{"abc": "456", "xyz": "12"})
	for k, want := range map[string]bool{"abc": true, "xyz": true, "def": false} {
		if ok, err := s.Has(k); err != nil || ok != want {
			t.Fatalf("Has(%q) = %v, %v", k, ok, err)
		}
	}
	if _, err := s.Get("def"); !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, dirstore.ErrNotFound) {
		t.Fatalf("Get(missing) = %v", err)
	}
	mustSet(t, s, "xyz", []byte("707"))
	mustSet(t, s, "uvw", []byte("000"))
	checkItems(t, s, map[string]string{"abc": "456", "xyz": "707", "uvw": "000"})
	mustSet(t, s, "xyz", []byte("654"))
	mustSet(t, s, "uvw", []byte("999"))
	checkItems(t, s, map[string]string{"abc": "456", "xyz": "654", "uvw": "999"})
	if err := s.Delete("abc"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("abc"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get(deleted) = %v", err)
	}
	if err := s.Delete("abc"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Delete(deleted) = %v", err)
	}
	checkItems(t, s, map[string]string{"xyz": "654", "uvw": "999"})
	mustSet(t, s, "def", []byte("\x00\xff"))
	checkItems(t, s, map[string]string{"xyz": "654", "uvw": "999", "def": "\x00\xff"})
	for _, k := range keys(t, s) {
		if err := s.Delete(k); err != nil {
			t.Fatal(err)
		}
	}
	checkItems(t, s, map[string]string{})
}

func TestMapping(t *testing.T) {
	for _, o := range []dirstore.Options{{}, {NoSync: true}, {Mmap: true}, {EntryCache: -1}} {
		t.Run(fmt.Sprintf("%+v", o), func(t *testing.T) {
			checkMapping(t, storetest.Open(t, t.TempDir(), &o))
		})
	}
}

func TestImplementation(t *testing.T) {
	dir := t.TempDir()
	s := storetest.Open(t, dir, nil)
	if s.Len() != 0 {
		t.Fatal("new store not empty")
	}
	mustSet(t, s, "x", []byte("123"))
	if got := valueFiles(t, dir); !slices.Equal(got, []string{"x#0"}) {
		t.Fatalf("files = %q, want [x#0]", got)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "x#0")); err != nil || string(b) != "123" {
		t.Fatalf("x#0 holds %q, %v", b, err)
	}
	if got := mustGet(t, s, "x"); string(got) != "123" {
		t.Fatalf("Get = %q", got)
	}
	// The caller owns what Get returns.
	got := mustGet(t, s, "x")
	got[0] = 'X'
	if again := mustGet(t, s, "x"); string(again) != "123" {
		t.Fatalf("Get after modifying a returned slice = %q", again)
	}
}

func TestMmapView(t *testing.T) {
	dir := t.TempDir()
	s := storetest.Open(t, dir, &dirstore.Options{Mmap: true})
	mustSet(t, s, "x", []byte("123"))
	mustSet(t, s, "empty", nil)
	for k, want := range map[string]string{"x": "123", "empty": ""} {
		err := s.View(k, func(v []byte) error {
			if string(v) != want {
				return fmt.Errorf("View(%q) = %q", k, v)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sentinel := errors.New("mine")
	if err := s.View("x", func([]byte) error { return sentinel }); err != sentinel {
		t.Fatalf("View did not return fn's error: %v", err)
	}
	if err := s.View("nope", func([]byte) error { return nil }); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("View(missing) = %v", err)
	}
}

func TestString(t *testing.T) {
	dir := t.TempDir()
	s := storetest.Open(t, dir, nil)
	if want := fmt.Sprintf("<Store: %s, 0 elements>", dir); s.String() != want {
		t.Fatalf("String() = %q, want %q", s.String(), want)
	}
}

func TestArbitraryChars(t *testing.T) {
	dir := t.TempDir()
	s := storetest.Open(t, dir, nil)
	for i := 1; i < 128; i += 16 {
		var b strings.Builder
		b.WriteString("foo_")
		for c := i; c < min(128, i+16); c++ {
			b.WriteByte(byte(c))
		}
		key := b.String()
		if _, err := s.Get(key); !errors.Is(err, dirstore.ErrNotFound) {
			t.Fatalf("Get(%q) = %v", key, err)
		}
		mustSet(t, s, key, []byte("foo"))
		checkItems(t, s, map[string]string{key: "foo"})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = storetest.Open(t, dir, nil)
		checkItems(t, s, map[string]string{key: "foo"})
		if err := s.Delete(key); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(key); !errors.Is(err, dirstore.ErrNotFound) {
			t.Fatalf("Get(%q) after Delete = %v", key, err)
		}
	}
}

func TestHostileKeys(t *testing.T) {
	dir := t.TempDir()
	s := storetest.Open(t, dir, nil)
	ks := []string{"", ".", "..", "/", "../x", "a/../../b", "#", "#1", "%", "%2F", "\x00", "\xff\xfe", "日本語",
		".dirstore", ".dirstore/LOCK", strings.Repeat("k", 64<<10), strings.Repeat("/", 300), strings.Repeat("é", 200)}
	for i, k := range ks {
		mustSet(t, s, k, []byte(fmt.Sprint(i)))
	}
	check := func(s *dirstore.Store) {
		t.Helper()
		for i, k := range ks {
			if got := mustGet(t, s, k); string(got) != fmt.Sprint(i) {
				t.Fatalf("Get(%.20q) = %q, want %d", k, got, i)
			}
		}
		if s.Len() != len(ks) {
			t.Fatalf("Len = %d", s.Len())
		}
	}
	check(s)
	for _, name := range valueFiles(t, dir) {
		if len(name) > 255 {
			t.Fatalf("file name of %d bytes", len(name))
		}
	}
	// Nothing outside dir was created.
	parent, _ := os.ReadDir(filepath.Dir(dir))
	if len(parent) != 1 {
		t.Fatalf("the parent of the store has %d entries", len(parent))
	}
	s.Close()
	check(storetest.Open(t, dir, nil))
}

func TestWriteBuffers(t *testing.T) {
	s := storetest.Open(t, t.TempDir(), nil)
	if err := s.SetBuffers("x", []byte("123"), nil, []byte("4567")); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, "x"); string(got) != "1234567" {
		t.Fatalf("Get = %q", got)
	}
	// Many buffers: more than one writev's worth.
	var bufs [][]byte
	var want []byte
	for i := range 3000 {
		b := []byte(fmt.Sprint(i, ","))
		bufs = append(bufs, b)
		want = append(want, b...)
	}
	if err := s.SetBuffers("many", bufs...); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, "many"); !bytes.Equal(got, want) {
		t.Fatalf("Get(many) differs")
	}
}

func TestSetFrom(t *testing.T) {
	s := storetest.Open(t, t.TempDir(), nil)
	want := bytes.Repeat([]byte("0123456789abcdef"), 100_000)
	n, err := s.SetFrom("big", bytes.NewReader(want))
	if err != nil || n != int64(len(want)) {
		t.Fatalf("SetFrom = %d, %v", n, err)
	}
	if got := mustGet(t, s, "big"); !bytes.Equal(got, want) {
		t.Fatal("value differs")
	}
	// A reader that fails changes nothing.
	boom := errors.New("boom")
	if _, err := s.SetFrom("big", io.MultiReader(strings.NewReader("partial"), errReader{boom})); !errors.Is(err, boom) {
		t.Fatalf("SetFrom(failing reader) = %v", err)
	}
	if got := mustGet(t, s, "big"); !bytes.Equal(got, want) {
		t.Fatal("a failed SetFrom changed the value")
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if files := valueFiles(t, s.Dir()); len(files) != 1 {
		t.Fatalf("a failed SetFrom left files: %q", files)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	s, err := dirstore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "k", []byte("v"))
	if _, err := dirstore.Open(dir, nil); !errors.Is(err, dirstore.ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if _, err := s.Get(strings.Repeat("x", dirstore.MaxKeyLen+1)); !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("Get(huge key) = %v", err)
	}
	_, err = s.Get("missing")
	var ke *dirstore.KeyError
	if !errors.As(err, &ke) || ke.Key != "missing" || !strings.Contains(err.Error(), `"missing"`) {
		t.Fatalf("Get(missing) = %v, want a KeyError naming the key", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("k"); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("Get after Close = %v", err)
	}
	if err := s.Set("k", nil); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("Set after Close = %v", err)
	}
	if err := s.Close(); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
	ro := storetest.Open(t, dir, &dirstore.Options{ReadOnly: true})
	if got := mustGet(t, ro, "k"); string(got) != "v" {
		t.Fatalf("read-only Get = %q", got)
	}
	for _, err := range []error{ro.Set("k", nil), ro.Delete("k")} {
		if !errors.Is(err, dirstore.ErrReadOnly) || !errors.Is(err, fs.ErrPermission) {
			t.Fatalf("write to a read-only store = %v", err)
		}
	}
	if _, err := dirstore.Open(filepath.Join(dir, "nope"), &dirstore.Options{ReadOnly: true}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read-only Open of a missing dir = %v", err)
	}
}

// TestStressDifferentKeys ports zict's check_different_keys_threadsafe.
func TestStressDifferentKeys(t *testing.T) {
	s := storetest.Open(t, t.TempDir(), &dirstore.Options{NoSync: true})
	var wg sync.WaitGroup
	for i, kv := range [][2]string{{"x", "123"}, {"y", "456"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if err := s.Set(kv[0], []byte(kv[1])); err != nil {
					t.Error(err)
					return
				}
				if v, err := s.Get(kv[0]); err != nil || string(v) != kv[1] {
					t.Errorf("worker %d: Get = %q, %v", i, v, err)
					return
				}
				if err := s.Delete(kv[0]); err != nil {
					t.Error(err)
					return
				}
				if ok, err := s.Has(kv[0]); ok || err != nil {
					t.Errorf("worker %d: Has after Delete = %v, %v", i, ok, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	checkMapping(t, s)
}

// TestStressSameKey ports zict's check_same_key_threadsafe.
func TestStressSameKey(t *testing.T) {
	dir := t.TempDir()
	s := storetest.Open(t, dir, &dirstore.Options{NoSync: true})
	var wg sync.WaitGroup
	for _, kv := range [][2]string{{"x", "123"}, {"x", "456"}, {"y", "123"}, {"y", "456"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if err := s.Set(kv[0], []byte(kv[1])); err != nil {
					t.Error(err)
					return
				}
				if v, err := s.Get(kv[0]); err == nil && string(v) != "123" && string(v) != "456" {
					t.Errorf("Get = %q", v)
				} else if err != nil && !errors.Is(err, dirstore.ErrNotFound) {
					t.Error(err)
				}
				if err := s.Delete(kv[0]); err != nil && !errors.Is(err, dirstore.ErrNotFound) {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	mustSet(t, s, "x", []byte("123"))
	mustSet(t, s, "y", []byte("456"))
	checkItems(t, s, map[string]string{"x": "123", "y": "456"})
	// Never more than one file per key.
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if files := valueFiles(t, dir); len(files) != 2 {
		t.Fatalf("files = %q", files)
	}
	for _, k := range []string{"x", "y"} {
		if err := s.Delete(k); err != nil {
			t.Fatal(err)
		}
	}
	checkMapping(t, s)
}

// TestReadOnlySessionsLeaveManifestTables: a session that changes nothing
// commits nothing, so the next Open has no log to replay and flush into a
// new table (which compactions would then merge with all the others: Open
// of a large store got slower with every session).
func TestReadOnlySessionsLeaveManifestTables(t *testing.T) {
	mem := vfs.NewMem()
	s := storetest.Open(t, "/s", &dirstore.Options{FS: mem})
	for i := range 100 {
		mustSet(t, s, fmt.Sprint("k", i), []byte("v"))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	tables := func() []string {
		names, err := mem.List("/s/.dirstore/manifest")
		if err != nil {
			t.Fatal(err)
		}
		var ssts []string
		for _, n := range names {
			if strings.HasSuffix(n, ".sst") {
				ssts = append(ssts, n)
			}
		}
		slices.Sort(ssts)
		return ssts
	}
	// The first reopen flushes what the writing session logged.
	s = storetest.Open(t, "/s", &dirstore.Options{FS: mem})
	s.Close()
	before := tables()
	for range 5 {
		s = storetest.Open(t, "/s", &dirstore.Options{FS: mem})
		if got := mustGet(t, s, "k7"); string(got) != "v" || s.Len() != 100 {
			t.Fatalf("Get = %q, Len = %d", got, s.Len())
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if after := tables(); !slices.Equal(before, after) {
		t.Fatalf("read-only sessions changed the manifest's tables from %q to %q", before, after)
	}
}

// TestHeapDoesNotGrowWithKeys: the keys live in the manifest, not in RAM,
// so the heap after Open, Len and 1,000 Has grows by less than 8 MiB from
// 1,000 to 100,000 keys. The stores live in memory (vfs.NewMem, whose files
// are on the heap already before Open) to spare the disk 100,000 files.
func TestHeapDoesNotGrowWithKeys(t *testing.T) {
	mem := vfs.NewMem()
	fillStore(t, mem, "/small", 1000)
	fillStore(t, mem, "/large", 100_000)
	// The first Open deletes the log the filling left behind, which on
	// vfs.NewMem frees heap: measure the second.
	heapAfterOpen(t, mem, "/small", 1000)
	heapAfterOpen(t, mem, "/large", 100_000)
	hs := heapAfterOpen(t, mem, "/small", 1000)
	hl := heapAfterOpen(t, mem, "/large", 100_000)
	t.Logf("heap after open: %d KiB with 1,000 keys, %d KiB with 100,000", hs>>10, hl>>10)
	if hl > hs+8<<20 {
		t.Fatalf("the heap grew by %d KiB from 1,000 to 100,000 keys", (hl-hs)>>10)
	}
}

// fillStore makes a cleanly closed store of n keys with 16-byte values.
func fillStore(tb testing.TB, fsys vfs.FS, dir string, n int) {
	s, err := dirstore.Open(dir, &dirstore.Options{NoSync: true, FS: fsys})
	if err != nil {
		tb.Fatal(err)
	}
	v := benchValue(16)
	for i := range n {
		mustSet(tb, s, fmt.Sprintf("key%07d", i), v)
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
}

// heapAfterOpen returns the live heap after opening dir and calling Len and
// 1,000 Has, with the store still open.
func heapAfterOpen(tb testing.TB, fsys vfs.FS, dir string, n int) int64 {
	var ms runtime.MemStats
	for range 3 { // sync.Pools and finalizers of earlier stores take several cycles
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	s, err := dirstore.Open(dir, &dirstore.Options{FS: fsys})
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	if s.Len() != n {
		tb.Fatalf("Len = %d, want %d", s.Len(), n)
	}
	for i := range 1000 {
		if ok, err := s.Has(fmt.Sprintf("key%07d", i*(n/1000))); !ok || err != nil {
			tb.Fatalf("Has = %v, %v", ok, err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc) - int64(before)
}
