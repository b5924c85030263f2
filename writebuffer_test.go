package dirstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

// bufferedOpts is a NoSync store whose write buffer is applied only when
// the test says so (or when it fills).
func bufferedOpts(size int64) *dirstore.Options {
	return &dirstore.Options{NoSync: true, WriteBuffer: size, CheckpointInterval: time.Hour}
}

func mustApply(t *testing.T, s *dirstore.Store) {
	t.Helper()
	if err := s.ApplyBuffered(); err != nil {
		t.Fatalf("ApplyBuffered: %v", err)
	}
	if n, b := s.Buffered(); n != 0 || b != 0 {
		t.Fatalf("after ApplyBuffered the buffer holds %d operations, %d bytes", n, b)
	}
}

// checkState checks every read of s against want.
func checkState(t *testing.T, where string, s *dirstore.Store, want map[string]string) {
	t.Helper()
	var total int64
	for k, v := range want {
		got, err := s.Get(k)
		if err != nil || string(got) != v {
			t.Fatalf("%s: Get(%q) = %q, %v; want %q", where, k, got, err, v)
		}
		if err := s.View(k, func(b []byte) error {
			if string(b) != v {
				return fmt.Errorf("View(%q) = %q", k, b)
			}
			return nil
		}); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if ok, err := s.Has(k); !ok || err != nil {
			t.Fatalf("%s: Has(%q) = %v, %v", where, k, ok, err)
		}
		total += int64(len(v))
	}
	for _, k := range []string{"gone", "never", "bb/gone"} {
		if _, ok := want[k]; ok {
			continue
		}
		if _, err := s.Get(k); !errors.Is(err, dirstore.ErrNotFound) {
			t.Fatalf("%s: Get(%q) = %v, want ErrNotFound", where, k, err)
		}
		if ok, _ := s.Has(k); ok {
			t.Fatalf("%s: Has(%q) = true", where, k)
		}
	}
	wantKeys := make([]string, 0, len(want))
	for k := range want {
		wantKeys = append(wantKeys, k)
	}
	slices.Sort(wantKeys)
	if got := keys(t, s); !slices.Equal(got, wantKeys) {
		t.Fatalf("%s: Keys = %q, want %q", where, got, wantKeys)
	}
	var bb []string
	for k, err := range s.KeysWithPrefix("bb/") {
		if err != nil {
			t.Fatal(err)
		}
		bb = append(bb, k)
	}
	var wantBB []string
	for _, k := range wantKeys {
		if strings.HasPrefix(k, "bb/") {
			wantBB = append(wantBB, k)
		}
	}
	if !slices.Equal(bb, wantBB) {
		t.Fatalf("%s: KeysWithPrefix(bb/) = %q, want %q", where, bb, wantBB)
	}
	if st := s.Stats(); s.Len() != len(want) || st.Keys != int64(len(want)) || st.Bytes != total {
		t.Fatalf("%s: Len %d, Stats %+v; want %d keys, %d bytes", where, s.Len(), st, len(want), total)
	}
}

// Buffered operations are seen by every read before they reach a file,
// reach one file per key when applied, and survive Close.
func TestWriteBufferReads(t *testing.T) {
	dir := t.TempDir()
	s := storetest.Open(t, dir, bufferedOpts(1<<20))
	want := map[string]string{}
	for _, k := range []string{"aa", "bb/1", "bb/3", "bb/gone", "cc", "gone", "zz"} {
		mustSet(t, s, k, []byte("applied "+k))
		want[k] = "applied " + k
	}
	mustApply(t, s)
	files := valueFiles(t, dir)

	// Overwrites, new keys before, between and after the applied ones,
	// deletes of applied keys, and a key set and deleted while buffered.
	for k, v := range map[string]string{"aa": "new aa", "a": "first", "bb/2": "between", "bb/3": "", "zzz": "last", "cc": "cc1"} {
		mustSet(t, s, k, []byte(v))
		want[k] = v
	}
	mustSet(t, s, "cc", []byte("cc2"))
	want["cc"] = "cc2"
	for _, k := range []string{"gone", "bb/gone", "never"} {
		if k == "never" {
			mustSet(t, s, k, []byte("briefly"))
		}
		if err := s.Delete(k); err != nil {
			t.Fatalf("Delete(%q): %v", k, err)
		}
		delete(want, k)
	}
	if err := s.Delete("never"); !errors.Is(err, dirstore.ErrNotFound) || !strings.Contains(err.Error(), `"never"`) {
		t.Fatalf("second Delete of a buffered key = %v, want ErrNotFound naming it", err)
	}
	if n, _ := s.Buffered(); n != 9 {
		t.Fatalf("the buffer holds %d operations, want 9 (one per key)", n)
	}
	if got := valueFiles(t, dir); !slices.Equal(got, files) {
		t.Fatalf("buffered operations changed the files: %q, was %q", got, files)
	}
	checkState(t, "buffered", s, want)

	// A Stream reads a file: opening one applies the buffer first.
	st, err := s.Open("aa")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(st); err != nil || buf.String() != "new aa" {
		t.Fatalf("Stream of a buffered value: %q, %v", buf.String(), err)
	}
	st.Close()
	if n, _ := s.Buffered(); n != 0 {
		t.Fatalf("after Open of a buffered key the buffer holds %d operations", n)
	}
	checkState(t, "applied", s, want)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := valueFiles(t, dir); len(got) != len(want) {
		t.Fatalf("%d files for %d keys: %q", len(got), len(want), got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = storetest.Open(t, dir, bufferedOpts(1<<20))
	checkState(t, "reopened", s, want)
}

// A key overwritten while buffered is written once.
func TestWriteBufferCoalesces(t *testing.T) {
	dir := t.TempDir()
	s := storetest.Open(t, dir, bufferedOpts(1<<20))
	for i := range 1000 {
		mustSet(t, s, "k", fmt.Appendf(nil, "value %d", i))
	}
	if n, b := s.Buffered(); n != 1 || b > 100 {
		t.Fatalf("the buffer holds %d operations, %d bytes", n, b)
	}
	mustApply(t, s)
	// The version counter moved once: the file is k#0 or k#1, not k#999.
	if got := valueFiles(t, dir); len(got) != 1 || got[0] > "k#1" {
		t.Fatalf("files %q, want one early version of k", got)
	}
	if got := mustGet(t, s, "k"); string(got) != "value 999" {
		t.Fatalf("Get = %q", got)
	}
}

// Writes that bypass the buffer (large values, SetFrom) apply it first, so
// the manifest receives operations in the order they were acknowledged.
func TestWriteBufferBypassKeepsOrder(t *testing.T) {
	dir := t.TempDir()
	s := storetest.Open(t, dir, bufferedOpts(64<<10)) // buffers values up to 4 KiB
	mustSet(t, s, "small", []byte("s"))
	if err := s.Delete("small"); err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "small2", []byte("s2"))
	if n, _ := s.Buffered(); n != 2 {
		t.Fatalf("the buffer holds %d operations, want 2", n)
	}
	big := bytes.Repeat([]byte("b"), 4<<10+1)
	mustSet(t, s, "big", big)
	if n, _ := s.Buffered(); n != 0 {
		t.Fatalf("after a large Set the buffer holds %d operations", n)
	}
	mustSet(t, s, "small3", []byte("s3"))
	if _, err := s.SetFrom("from", strings.NewReader("streamed")); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Buffered(); n != 0 {
		t.Fatalf("after SetFrom the buffer holds %d operations", n)
	}
	checkState(t, "after bypasses", s, map[string]string{"small2": "s2", "big": string(big), "small3": "s3", "from": "streamed"})
	// With the buffer off, every Set writes its file before it returns.
	dir2 := t.TempDir()
	s2 := storetest.Open(t, dir2, bufferedOpts(-1))
	mustSet(t, s2, "k", []byte("v"))
	if n, _ := s2.Buffered(); n != 0 || len(valueFiles(t, dir2)) != 1 {
		t.Fatalf("WriteBuffer -1: %d buffered, files %q", n, valueFiles(t, dir2))
	}
}

// A full buffer makes writers wait: it never holds much more than its size.
func TestWriteBufferBackPressure(t *testing.T) {
	const size, writers, value = 64 << 10, 4, 1 << 10
	dir := t.TempDir()
	s := storetest.Open(t, dir, &dirstore.Options{NoSync: true, WriteBuffer: size})
	var most atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range 500 {
				k := fmt.Sprintf("w%d/%d", w, i%300)
				if err := s.Set(k, bytes.Repeat([]byte{byte(i)}, value)); err != nil {
					t.Error(err)
					return
				}
				_, b := s.Buffered()
				for m := most.Load(); b > m && !most.CompareAndSwap(m, b); m = most.Load() {
				}
			}
		})
	}
	wg.Wait()
	// Each writer checks for room and then adds its value (and its key and
	// bookkeeping, counted too).
	if m := most.Load(); m > size+writers*(value+128) {
		t.Fatalf("the buffer held %d bytes; its size is %d", m, size)
	}
	for w := range writers {
		for i := 200; i < 500; i++ {
			k := fmt.Sprintf("w%d/%d", w, i%300)
			if got := mustGet(t, s, k); !bytes.Equal(got, bytes.Repeat([]byte{byte(i)}, value)) {
				t.Fatalf("Get(%q) = %d bytes of %d", k, len(got), got[0])
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := valueFiles(t, dir); len(got) != writers*300 {
		t.Fatalf("%d files for %d keys", len(got), writers*300)
	}
}

// A batch that cannot be written stays buffered and readable; writes
// return its error until it is written, and nothing acknowledged is lost.
func TestWriteBufferFailureKeepsValues(t *testing.T) {
	var on atomic.Bool
	fsys := faultFS(&on, errorfs.OpFileWrite, syscall.ENOSPC)
	opts := bufferedOpts(1 << 20)
	opts.FS = fsys
	s := storetest.Open(t, "/s", opts)
	want := map[string]string{"a": "a0", "b": "b0", "gone": "g0"}
	for k, v := range want {
		mustSet(t, s, k, []byte(v))
	}
	mustApply(t, s)
	mustSet(t, s, "a", []byte("a1"))
	mustSet(t, s, "c", []byte("c1"))
	if err := s.Delete("gone"); err != nil {
		t.Fatal(err)
	}
	want["a"], want["c"] = "a1", "c1"
	delete(want, "gone")

	on.Store(true)
	if err := s.ApplyBuffered(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("ApplyBuffered with a full disk = %v, want ENOSPC", err)
	}
	checkState(t, "after a failed batch", s, want)
	if err := s.Set("d", []byte("d1")); !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), `"d"`) {
		t.Fatalf("Set after a failed batch = %v, want ENOSPC naming the key", err)
	}
	if err := s.Delete("b"); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Delete after a failed batch = %v, want ENOSPC", err)
	}
	if err := s.Sync(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Sync after a failed batch = %v, want ENOSPC", err)
	}
	checkState(t, "after failed writes", s, want)
	// Verify checks the files there are.
	if err := s.Verify(func(k string, err error) bool {
		if err != nil {
			t.Errorf("Verify: %q: %v", k, err)
		}
		return true
	}); err != nil {
		t.Fatalf("Verify while the buffer cannot be written: %v", err)
	}

	on.Store(false)
	mustSet(t, s, "d", []byte("d1"))
	want["d"] = "d1"
	checkState(t, "recovered", s, want)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = storetest.Open(t, "/s", opts)
	checkState(t, "reopened", s, want)
	names, _ := fsys.List("/s")
	if len(names) != len(want)+1 {
		t.Fatalf("%d files for %d keys: %q", len(names)-1, len(want), names)
	}
}

// Deletes count against the buffer too: a run of them is applied as it
// fills, not held until the next checkpoint.
func TestWriteBufferBoundsDeletes(t *testing.T) {
	const size = 16 << 10
	s := storetest.Open(t, t.TempDir(), bufferedOpts(size))
	for i := range 2000 {
		mustSet(t, s, fmt.Sprint("k", i), nil)
	}
	mustApply(t, s)
	most := 0
	for i := range 2000 {
		if err := s.Delete(fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
		n, _ := s.Buffered()
		most = max(most, n)
	}
	if most > size/64 || most == 0 {
		t.Fatalf("the buffer held %d deletes; its size is %d bytes", most, size)
	}
	if s.Len() != 0 || len(keys(t, s)) != 0 {
		t.Fatalf("after deleting every key: Len %d", s.Len())
	}
}

// The background checkpoint writes out what waits in the buffer, however
// little: Options.CheckpointInterval bounds how long a value waits.
func TestWriteBufferAppliedByCheckpoint(t *testing.T) {
	dir := t.TempDir()
	s := storetest.Open(t, dir, &dirstore.Options{NoSync: true, CheckpointInterval: 10 * time.Millisecond})
	mustSet(t, s, "k", []byte("v"))
	deadline := time.Now().Add(10 * time.Second)
	for n, _ := s.Buffered(); n != 0 || len(valueFiles(t, dir)) != 1; n, _ = s.Buffered() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s the buffer holds %d operations; files %q", n, valueFiles(t, dir))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := mustGet(t, s, "k"); string(got) != "v" {
		t.Fatalf("Get = %q", got)
	}
}
