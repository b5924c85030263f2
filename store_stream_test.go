package dirstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

// storeKinds are the file systems Store.Open must work on: the operating
// system's (descriptors through a backends engine) and pebble's MemFS
// (ReadAt through the vfs.File, no descriptor).
var storeKinds = []struct {
	name string
	fs   func() vfs.FS
}{
	{"dir", func() vfs.FS { return nil }},
	{"mem", func() vfs.FS { return vfs.NewMem() }},
}

func TestStreamStoreOpen(t *testing.T) {
	for _, k := range storeKinds {
		t.Run(k.name, func(t *testing.T) {
			s := storetest.Open(t, "", &dirstore.Options{FS: k.fs()})
			value := bytes.Repeat([]byte("0123456789abcdef"), 1000)
			if err := s.Set("k", value); err != nil {
				t.Fatal(err)
			}
			st, err := s.Open("k")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(st)
			if err != nil || !bytes.Equal(got, value) {
				t.Fatalf("ReadAll = %d bytes, %v", len(got), err)
			}
			if fi, err := st.Stat(); err != nil || fi.Size() != int64(len(value)) {
				t.Fatalf("Stat = %v, %v", fi, err)
			}
			if !strings.Contains(st.Name(), "k#") {
				t.Fatalf("Name() = %q, want the value file's path", st.Name())
			}
			if _, err := st.WriteAt([]byte("x"), 0); !errors.Is(err, fs.ErrPermission) {
				t.Fatalf("WriteAt on a value stream: %v", err)
			}
			if st.IsModified() {
				t.Fatal("a value stream reports a change")
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Open("missing"); !errors.Is(err, dirstore.ErrNotFound) {
				t.Fatalf("Open(missing) = %v", err)
			}
			if err := s.Set("empty", nil); err != nil {
				t.Fatal(err)
			}
			e, err := s.Open("empty")
			if err != nil {
				t.Fatal(err)
			}
			if n, err := e.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Fatalf("Read of an empty value = %d, %v", n, err)
			}
			e.Close()
		})
	}
}

// TestStreamStoreOldVersion: a Stream keeps reading the version it opened
// after an overwrite (and the removal of its file), a Delete and the Store's
// Close; Streams opened later read the new version, and the cache never
// hands one version's bytes to the other's readers.
func TestStreamStoreOldVersion(t *testing.T) {
	for _, k := range storeKinds {
		t.Run(k.name, func(t *testing.T) {
			s := storetest.Open(t, "", &dirstore.Options{FS: k.fs()})
			v1 := bytes.Repeat([]byte("1"), 5000)
			v2 := bytes.Repeat([]byte("2"), 5000)
			s.Set("k", v1)
			old, err := s.Open("k")
			if err != nil {
				t.Fatal(err)
			}
			defer old.Close()
			readAll := func(st *dirstore.Stream) []byte {
				t.Helper()
				p := make([]byte, 6000)
				n, err := st.ReadAt(p, 0)
				if err != io.EOF {
					t.Fatalf("ReadAt: %v", err)
				}
				return p[:n]
			}
			for range 2 { // the second read stores the range
				if !bytes.Equal(readAll(old), v1) {
					t.Fatal("old stream: wrong bytes")
				}
			}
			s.Set("k", v2)
			if err := s.Sync(); err != nil { // removes v1's file
				t.Fatal(err)
			}
			fresh, err := s.Open("k")
			if err != nil {
				t.Fatal(err)
			}
			defer fresh.Close()
			if !bytes.Equal(readAll(fresh), v2) {
				t.Fatal("new stream read the old version")
			}
			if !bytes.Equal(readAll(old), v1) {
				t.Fatal("old stream read the new version")
			}
			dirstore.DefaultCache().Purge() // from the file, not the cache
			if !bytes.Equal(readAll(old), v1) {
				t.Fatal("old stream lost its file")
			}
			s.Delete("k")
			s.Close()
			if got, err := io.ReadAll(old); err != nil || !bytes.Equal(got, v1) {
				t.Fatalf("old stream after Delete and Close: %d bytes, %v", len(got), err)
			}
			if !bytes.Equal(readAll(fresh), v2) {
				t.Fatal("new stream after Delete and Close")
			}
		})
	}
}

func TestStreamStoreCorrupt(t *testing.T) {
	s := storetest.Open(t, "", nil, storetest.LeftDamaged("k's file is truncated behind its back"))
	value := bytes.Repeat([]byte("abcdefgh"), 1000)
	s.Set("k", value)
	st, err := s.OpenStream("k", &dirstore.StreamOptions{Cache: dirstore.NoCache})
	if err != nil {
		t.Fatal(err)
	}
	path := st.Name()
	st.Close()
	b, _ := os.ReadFile(path)
	b[100] ^= 1
	os.WriteFile(path, b, 0o600)
	for _, c := range []*dirstore.Cache{dirstore.NoCache, dirstore.NewScanResistantCache(1 << 20)} {
		st, err := s.OpenStream("k", &dirstore.StreamOptions{Cache: c, ChunkSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(st)
		if !errors.Is(err, dirstore.ErrCorrupt) {
			t.Fatalf("reading a damaged value to the end: %v, want ErrCorrupt", err)
		}
		if _, err := st.ReadAt(make([]byte, len(value)), 0); !errors.Is(err, dirstore.ErrCorrupt) {
			t.Fatalf("ReadAt of a whole damaged value: %v, want ErrCorrupt", err)
		}
		st.Close()
	}
	os.WriteFile(path, b[:100], 0o600)
	if _, err := s.Open("k"); !errors.Is(err, dirstore.ErrCorrupt) {
		t.Fatalf("Open of a truncated value: %v, want ErrCorrupt", err)
	}
}

// TestStreamStoreHook checks what Store hooks get from each operation, and that
// they may use the Store.
func TestStreamStoreHook(t *testing.T) {
	for _, k := range storeKinds {
		t.Run(k.name, func(t *testing.T) {
			s := storetest.Open(t, "", &dirstore.Options{FS: k.fs()})
			type call struct {
				ev     dirstore.Event
				stream bool
				data   string
				n      int
			}
			var calls []call
			for _, ev := range []dirstore.Event{dirstore.OnRead, dirstore.OnWrite} {
				if err := s.Hook(ev, func(st *dirstore.Stream, data []byte, n int) {
					c := call{ev, st != nil, string(data), n}
					if data == nil {
						c.data = "<nil>"
					}
					calls = append(calls, c)
					if ev == dirstore.OnWrite && n == 1 {
						s.Get("b") // a hook may use the store
					}
				}); err != nil {
					t.Fatal(err)
				}
			}
			s.Set("a", []byte("hello"))
			s.SetBuffers("b", []byte("one"))
			s.SetBuffers("c", []byte("two"), []byte("parts"))
			s.SetFrom("d", strings.NewReader("stream"))
			s.Set("e", []byte("!")) // its hook Gets b
			s.Get("a")
			s.View("c", func([]byte) error { return nil })
			st, _ := s.Open("d")
			p := make([]byte, 4)
			st.Read(p)
			st.ReadAt(p[:2], 4)
			st.Close()
			s.Get("missing")
			want := []call{
				{dirstore.OnWrite, false, "hello", 5},
				{dirstore.OnWrite, false, "one", 3},
				{dirstore.OnWrite, false, "<nil>", 8},
				{dirstore.OnWrite, false, "<nil>", 6},
				{dirstore.OnWrite, false, "!", 1},
				{dirstore.OnRead, false, "one", 3},
				{dirstore.OnRead, false, "hello", 5},
				{dirstore.OnRead, false, "twoparts", 8},
				{dirstore.OnRead, true, "stre", 4},
				{dirstore.OnRead, true, "am", 2},
			}
			if !slices.Equal(calls, want) {
				t.Fatalf("hook calls\n%v\nwant\n%v", calls, want)
			}
			if err := s.Hook("on_open", func(*dirstore.Stream, []byte, int) {}); !errors.Is(err, fs.ErrInvalid) || !strings.Contains(err.Error(), "on_open") {
				t.Fatalf("Hook(on_open) = %v", err)
			}
		})
	}
}

// TestStreamStoreHookMmapView: with Options.Mmap, a View's read hooks get the
// value too (a copy: they run after the Store's lock is released).
func TestStreamStoreHookMmapView(t *testing.T) {
	s := storetest.Open(t, t.TempDir(), &dirstore.Options{Mmap: true})
	s.Set("k", []byte("mapped"))
	var got string
	s.Hook(dirstore.OnRead, func(_ *dirstore.Stream, data []byte, _ int) { got = string(data) })
	if err := s.View("k", func(v []byte) error {
		if string(v) != "mapped" {
			t.Errorf("View got %q", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got != "mapped" {
		t.Fatalf("hook got %q", got)
	}
}

// TestStoreHookNotRunByVerify: Verify reads every value but runs no hook
// (Store.Hook's doc); a Get after it does, so the hooks are in place.
func TestStoreHookNotRunByVerify(t *testing.T) {
	for _, mmap := range []bool{false, true} {
		t.Run(fmt.Sprintf("mmap=%v", mmap), func(t *testing.T) {
			s := storetest.Open(t, "", &dirstore.Options{Mmap: mmap})
			mustSet(t, s, "a", []byte("1"))
			mustSet(t, s, "b", []byte("22"))
			var calls atomic.Int64
			for _, ev := range []dirstore.Event{dirstore.OnRead, dirstore.OnWrite} {
				if err := s.Hook(ev, func(*dirstore.Stream, []byte, int) { calls.Add(1) }); err != nil {
					t.Fatal(err)
				}
			}
			verified := 0
			if err := s.Verify(func(key string, err error) bool {
				if err != nil {
					t.Errorf("Verify(%q): %v", key, err)
				}
				verified++
				return true
			}); err != nil {
				t.Fatal(err)
			}
			if verified != 2 || calls.Load() != 0 {
				t.Fatalf("Verify checked %d keys and ran hooks %d times; want 2 and none", verified, calls.Load())
			}
			mustGet(t, s, "a")
			if calls.Load() != 1 {
				t.Fatalf("a Get ran the read hook %d times, want once", calls.Load())
			}
		})
	}
}

// TestStreamNameOutlivesValue: the path a Stream names keeps holding the
// value the Stream opened while the Stream is open, after an overwrite, a
// Delete or an eviction and the removals that follow them (Sync waits for
// those), and is removed once the Stream is closed.
func TestStreamNameOutlivesValue(t *testing.T) {
	streamNameOutlivesValue(t)
	t.Run("seeded bug", func(t *testing.T) {
		defer dirstore.SetMutation(dirstore.MutRemovePinned)()
		if msg := catch(t, streamNameOutlivesValue); msg == "" {
			t.Fatal("a file removed while a Stream pins it went unnoticed")
		} else {
			t.Logf("caught: %s", msg)
		}
	})
}

func streamNameOutlivesValue(t testing.TB) {
	small := bytes.Repeat([]byte("s"), 3000) // small enough to be kept as a spare
	big := bytes.Repeat([]byte("b"), 2<<20)  // too large for a spare
	supersede := map[string]func(s *dirstore.Store, key string) error{
		"overwrite": func(s *dirstore.Store, key string) error { return s.Set(key, []byte("new")) },
		"delete":    func(s *dirstore.Store, key string) error { return s.Delete(key) },
		"evict": func(s *dirstore.Store, key string) error {
			_, err := s.Trim(0)
			return err
		},
	}
	for _, nosync := range []bool{false, true} {
		for how, fn := range supersede {
			for _, value := range [][]byte{small, big} {
				s := storetest.Open(t, "", &dirstore.Options{NoSync: nosync, MaxBytes: 64 << 20})
				mustSet(t, s, "k", value)
				st, err := s.Open("k")
				if err != nil {
					t.Fatal(err)
				}
				name := st.Name()
				if err := fn(s, "k"); err != nil {
					t.Fatal(err)
				}
				// Other writes, which would take a spare if it were one.
				for i := range 4 {
					mustSet(t, s, fmt.Sprint("other", i), small)
				}
				if err := s.Sync(); err != nil {
					t.Fatal(err)
				}
				if got, err := os.ReadFile(name); err != nil || !bytes.Equal(got, value) {
					t.Fatalf("nosync %v, %s of %d bytes: the open Stream's path holds %d bytes (%v), want its value",
						nosync, how, len(value), len(got), err)
				}
				if err := st.Close(); err != nil {
					t.Fatal(err)
				}
				if err := s.Sync(); err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(name); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("nosync %v, %s: the superseded file is still there after its Stream closed: %v", nosync, how, err)
				}
			}
		}
	}
	// A Stream left open past Close: Close removes the file (its
	// descriptor still reads), leaving no orphan for the next Open.
	dir := t.(interface{ TempDir() string }).TempDir()
	s := storetest.Open(t, dir, nil)
	mustSet(t, s, "k", small)
	st, err := s.Open("k")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mustSet(t, s, "k", big)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(st.Name()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a superseded file pinned by a Stream outlived Close: %v", err)
	}
	if got, err := io.ReadAll(st); err != nil || !bytes.Equal(got, small) {
		t.Fatalf("the Stream after Close read %d bytes, %v", len(got), err)
	}
}
