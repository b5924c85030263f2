package dirstore_test

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

// User code that panics (a Codec, Weight, OnSpill, OnUnspill, SetFrom's
// reader, View's and Verify's callbacks, the Store's hooks) must leave no
// lock held, no goroutine blocked and no file behind, and its panic must
// reach the caller.

// boom is what the user code in these tests panics with.
type boom struct{ where string }

// mustPanicWith runs fn and fails the test unless fn panics with want.
func mustPanicWith(t *testing.T, want any, fn func()) {
	t.Helper()
	defer func() {
		t.Helper()
		if got := recover(); got != want {
			t.Errorf("panic %v, want %v", got, want)
		}
	}()
	fn()
}

// within fails the test unless fn returns within a few seconds: nothing
// may be left blocked by a panic.
func within(t *testing.T, what string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s is blocked", what)
		return nil
	}
}

// closeWithin closes s, which must not block, and checks that the store
// then opens again (no lock left) and holds exactly wantFiles value files.
func closeWithin(t *testing.T, s *dirstore.Store, wantFiles int) {
	t.Helper()
	if err := within(t, "Store.Close", s.Close); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s2 := storetest.Open(t, s.Dir(), nil)
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if files := valueFiles(t, s.Dir()); len(files) != wantFiles {
		t.Errorf("value files %q, want %d", files, wantFiles)
	}
}

func TestPanicView(t *testing.T) {
	for _, mmap := range []bool{false, true} {
		t.Run(fmt.Sprintf("mmap=%v", mmap), func(t *testing.T) {
			dir := t.TempDir()
			s, err := dirstore.Open(dir, &dirstore.Options{Mmap: mmap})
			if err != nil {
				t.Fatal(err)
			}
			mustSet(t, s, "k", []byte("v1"))
			p := &boom{"view"}
			mustPanicWith(t, p, func() { s.View("k", func([]byte) error { panic(p) }) })
			// The value's file was pinned for the map: the pin is gone,
			// so the overwrite's old file is removed, not left behind.
			mustSet(t, s, "k", []byte("v2"))
			if err := within(t, "Sync", s.Sync); err != nil {
				t.Fatal(err)
			}
			if got := mustGet(t, s, "k"); string(got) != "v2" {
				t.Errorf("Get = %q", got)
			}
			closeWithin(t, s, 1)
		})
	}
}

// TestPanicCloseInCallback: Close called from View's and Verify's callbacks
// does not deadlock: it closes the Store, the value stays valid until the
// callback returns, and what follows reports the Store closed.
func TestPanicCloseInCallback(t *testing.T) {
	for _, mmap := range []bool{false, true} {
		t.Run(fmt.Sprintf("view,mmap=%v", mmap), func(t *testing.T) {
			dir := t.TempDir()
			s, err := dirstore.Open(dir, &dirstore.Options{Mmap: mmap})
			if err != nil {
				t.Fatal(err)
			}
			mustSet(t, s, "k", []byte("value"))
			var seen string
			err = within(t, "View calling Close", func() error {
				return s.View("k", func(v []byte) error {
					if err := s.Close(); err != nil {
						return err
					}
					seen = string(v) // still valid after Close
					return nil
				})
			})
			if err != nil || seen != "value" {
				t.Errorf("View calling Close = %v, saw %q", err, seen)
			}
			if _, err := s.Get("k"); !errors.Is(err, fs.ErrClosed) {
				t.Errorf("Get after Close in View = %v, want ErrClosed", err)
			}
			s2 := storetest.Open(t, dir, nil)
			if got := mustGet(t, s2, "k"); string(got) != "value" {
				t.Errorf("after reopening, Get = %q", got)
			}
		})
	}
	t.Run("verify", func(t *testing.T) {
		dir := t.TempDir()
		s, err := dirstore.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		const n = 200 // more than one of Verify's batches
		for i := range n {
			mustSet(t, s, fmt.Sprintf("k%03d", i), []byte("v"))
		}
		calls := 0
		err = within(t, "Verify calling Close", func() error {
			return s.Verify(func(key string, err error) bool {
				calls++
				if calls == 10 {
					if err := s.Close(); err != nil {
						t.Errorf("Close in Verify: %v", err)
					}
				}
				return true
			})
		})
		if !errors.Is(err, fs.ErrClosed) || calls >= n {
			t.Errorf("Verify whose callback closed the Store = %v after %d calls, want ErrClosed before %d", err, calls, n)
		}
		storetest.Open(t, dir, nil)
	})
}

func TestPanicVerify(t *testing.T) {
	dir := t.TempDir()
	s, err := dirstore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		mustSet(t, s, fmt.Sprintf("k%03d", i), []byte("v"))
	}
	p := &boom{"verify"}
	mustPanicWith(t, p, func() { s.Verify(func(string, error) bool { panic(p) }) })
	closeWithin(t, s, 100)
}

// panicReader yields some bytes, then panics.
type panicReader struct {
	n int
	p *boom
}

func (r *panicReader) Read(b []byte) (int, error) {
	if r.n > 3 {
		panic(r.p)
	}
	r.n++
	return copy(b, strings.Repeat("x", 100_000)), nil
}

// TestPanicSetFrom: a reader that panics leaves no file behind at once,
// not only after the next Open, on the operating system's file system and
// through a vfs.FS.
func TestPanicSetFrom(t *testing.T) {
	for _, mem := range []bool{false, true} {
		t.Run(fmt.Sprintf("vfs=%v", mem), func(t *testing.T) {
			dir := t.TempDir()
			o := &dirstore.Options{}
			list := func() []string { return valueFiles(t, dir) }
			if mem {
				fsys := vfs.NewMem()
				o.FS = fsys
				dir = "store"
				list = func() []string {
					names, err := fsys.List(dir)
					if err != nil {
						t.Fatal(err)
					}
					return slices.DeleteFunc(names, func(n string) bool { return n == ".dirstore" })
				}
			}
			s, err := dirstore.Open(dir, o)
			if err != nil {
				t.Fatal(err)
			}
			mustSet(t, s, "k", []byte("old"))
			before := list()
			p := &boom{"reader"}
			mustPanicWith(t, p, func() { s.SetFrom("k", &panicReader{p: p}) })
			if after := list(); !slices.Equal(before, after) {
				t.Errorf("value files after a panicking SetFrom: %q, want %q", after, before)
			}
			if got := mustGet(t, s, "k"); string(got) != "old" {
				t.Errorf("Get = %q, want the old value", got)
			}
			n, err := s.SetFrom("k", strings.NewReader("new"))
			if err != nil || n != 3 {
				t.Fatalf("SetFrom after the panic = %d, %v", n, err)
			}
			if err := within(t, "Close", s.Close); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPanicHooks(t *testing.T) {
	dir := t.TempDir()
	s, err := dirstore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var armed bool
	pw, pr := &boom{"write hook"}, &boom{"read hook"}
	must(t, s.Hook(dirstore.OnWrite, func(_ *dirstore.Stream, _ []byte, _ int) {
		if armed {
			panic(pw)
		}
	}))
	must(t, s.Hook(dirstore.OnRead, func(_ *dirstore.Stream, _ []byte, _ int) {
		if armed {
			panic(pr)
		}
	}))
	armed = true
	mustPanicWith(t, pw, func() { s.Set("a", []byte("1")) })
	mustPanicWith(t, pw, func() { s.SetFrom("b", strings.NewReader("2")) })
	mustPanicWith(t, pr, func() { s.Get("a") })
	mustPanicWith(t, pr, func() { s.View("b", func([]byte) error { return nil }) })
	st, err := s.OpenStream("a", nil)
	if err != nil {
		t.Fatal(err)
	}
	mustPanicWith(t, pr, func() { io.ReadAll(st) })
	if err := within(t, "Stream.Close", st.Close); err != nil {
		t.Fatal(err)
	}
	armed = false
	// The writes happened (hooks run after them) and the Store works.
	if got := mustGet(t, s, "a"); string(got) != "1" {
		t.Errorf("Get(a) = %q", got)
	}
	if got := mustGet(t, s, "b"); string(got) != "2" {
		t.Errorf("Get(b) = %q", got)
	}
	closeWithin(t, s, 2)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// panicCodec panics in Marshal or Unmarshal while its flag is set.
type panicCodec struct {
	marshal, unmarshal *boom
}

func (c *panicCodec) Marshal(v string) ([]byte, error) {
	if c.marshal != nil {
		panic(c.marshal)
	}
	return []byte(v), nil
}

func (c *panicCodec) Unmarshal(b []byte) (string, error) {
	if c.unmarshal != nil {
		panic(c.unmarshal)
	}
	return string(b), nil
}

// TestPanicBuffer panics in each of a Buffer's callbacks, in the call that
// runs it, and checks that the panic reaches the caller, the value is
// where it was (in memory, or in the Store), the Store holds no copy it
// should not, and Close returns.
func TestPanicBuffer(t *testing.T) {
	type setup struct {
		b     *dirstore.Buffer[string]
		slow  *dirstore.Store
		codec *panicCodec
		// weight, onSpill and onUnspill panic with these when set.
		weight, onSpill, onUnspill *boom
	}
	newBuffer := func(t *testing.T) *setup {
		su := &setup{codec: &panicCodec{}}
		su.slow = storetest.Open(t, t.TempDir(), nil)
		b, err := dirstore.NewBuffer(su.slow, dirstore.BufferOptions[string]{
			MaxWeight: 2,
			Codec:     su.codec,
			Weight: func(_ string, v string) int64 {
				if su.weight != nil && v == "spilled" {
					panic(su.weight)
				}
				return 1
			},
			OnSpill: func(string, string) error {
				if su.onSpill != nil {
					panic(su.onSpill)
				}
				return nil
			},
			OnUnspill: func(string, string) {
				if su.onUnspill != nil {
					panic(su.onUnspill)
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		su.b = b
		return su
	}
	// spillOne sets "s" and two more keys, so that "s" spills.
	spillOne := func(t *testing.T, su *setup) {
		for _, k := range []string{"s", "x", "y"} {
			v := k
			if k == "s" {
				v = "spilled"
			}
			if err := su.b.Set(k, v); err != nil {
				t.Fatal(err)
			}
		}
		if ok, _ := su.slow.Has("s"); !ok {
			t.Fatal("s did not spill")
		}
	}
	closeBuffer := func(t *testing.T, su *setup) {
		t.Helper()
		if err := within(t, "Buffer.Close", su.b.Close); err != nil {
			t.Errorf("Buffer.Close: %v", err)
		}
	}
	checkGet := func(t *testing.T, su *setup, key, want string) {
		t.Helper()
		if v, err := su.b.Get(key); err != nil || v != want {
			t.Errorf("Get(%q) = %q, %v; want %q", key, v, err, want)
		}
	}

	t.Run("Marshal", func(t *testing.T) {
		su := newBuffer(t)
		p := &boom{"marshal"}
		su.codec.marshal = p
		must(t, su.b.Set("a", "va"))
		must(t, su.b.Set("b", "vb"))
		mustPanicWith(t, p, func() { su.b.Set("c", "vc") })
		mustPanicWith(t, p, func() { su.b.Evict() })
		mustPanicWith(t, p, func() { su.b.EvictUntilBelowTarget(0) })
		mustPanicWith(t, p, func() { su.b.Flush() })
		su.codec.marshal = nil
		for _, k := range []string{"a", "b", "c"} {
			if ok, _ := su.slow.Has(k); ok {
				t.Errorf("the Store holds %q, whose spill panicked", k)
			}
			checkGet(t, su, k, "v"+k)
		}
		must(t, su.b.Flush())
		closeBuffer(t, su)
	})
	t.Run("Unmarshal", func(t *testing.T) {
		su := newBuffer(t)
		spillOne(t, su)
		p := &boom{"unmarshal"}
		su.codec.unmarshal = p
		mustPanicWith(t, p, func() { su.b.Get("s") })
		su.codec.unmarshal = nil
		if ok, _ := su.slow.Has("s"); !ok {
			t.Error("the spilled value left the Store though its read-back panicked")
		}
		checkGet(t, su, "s", "spilled")
		closeBuffer(t, su)
	})
	t.Run("Weight", func(t *testing.T) {
		su := newBuffer(t)
		spillOne(t, su)
		p := &boom{"weight"}
		su.weight = p
		mustPanicWith(t, p, func() { su.b.Get("s") })
		mustPanicWith(t, p, func() { su.b.Set("t", "spilled") })
		su.weight = nil
		checkGet(t, su, "s", "spilled")
		if ok, _ := su.b.Has("t"); ok {
			t.Error("Set whose Weight panicked set the key")
		}
		closeBuffer(t, su)
	})
	t.Run("OnSpill", func(t *testing.T) {
		su := newBuffer(t)
		p := &boom{"onspill"}
		su.onSpill = p
		must(t, su.b.Set("a", "va"))
		must(t, su.b.Set("b", "vb"))
		mustPanicWith(t, p, func() { su.b.Set("c", "vc") })
		su.onSpill = nil
		for _, k := range []string{"a", "b", "c"} {
			if ok, _ := su.slow.Has(k); ok {
				t.Errorf("the Store holds %q, whose OnSpill panicked", k)
			}
			checkGet(t, su, k, "v"+k)
		}
		closeBuffer(t, su)
	})
	t.Run("OnUnspill", func(t *testing.T) {
		su := newBuffer(t)
		spillOne(t, su)
		p := &boom{"onunspill"}
		su.onUnspill = p
		mustPanicWith(t, p, func() { su.b.Get("s") })
		su.onUnspill = nil
		checkGet(t, su, "s", "spilled")
		closeBuffer(t, su)
	})
	t.Run("StoreHook", func(t *testing.T) {
		su := newBuffer(t)
		p := &boom{"hook"}
		armed := false
		must(t, su.slow.Hook(dirstore.OnWrite, func(*dirstore.Stream, []byte, int) {
			if armed {
				panic(p)
			}
		}))
		must(t, su.b.Set("a", "va"))
		must(t, su.b.Set("b", "vb"))
		armed = true
		mustPanicWith(t, p, func() { su.b.Set("c", "vc") })
		armed = false
		// The spill's write happened before its hook panicked; whether
		// the copy stays or goes, the value is the Buffer's still.
		for _, k := range []string{"a", "b", "c"} {
			checkGet(t, su, k, "v"+k)
		}
		must(t, su.b.Flush())
		closeBuffer(t, su)
	})
}
