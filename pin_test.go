package dirstore_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dirstore/dirstore"
)

// TestPin: a pinned key is never evicted, its pin survives a crash and a
// reopen, and a Set that only pinned keys could make room for fails at
// once with ErrPinned, changing nothing.
func TestPin(t *testing.T) {
	for _, mode := range storeModes {
		t.Run(mode.name, func(t *testing.T) { pinned(t, mode) })
	}
}

func pinned(t testing.TB, mode storeMode) {
	{
		{
			mem := vfs.NewCrashableMem()
			log := &evictLog{}
			opts := &dirstore.Options{FS: mem, MaxBytes: 1000, NoSync: mode.nosync, WriteBuffer: mode.buffer, OnEvict: log.onEvict}
			s, err := dirstore.Open("/s", opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"a", "b", "c"} {
				mustSet(t, s, k, make([]byte, 300))
			}
			if err := s.Pin("a"); err != nil {
				t.Fatal(err)
			}
			if err := s.Pin("nope"); !errors.Is(err, dirstore.ErrNotFound) {
				t.Fatalf("Pin of a missing key: %v", err)
			}
			mustSet(t, s, "d", make([]byte, 300))
			if got := log.take(); !slices.Equal(got, []string{"b"}) {
				t.Fatalf("evicted %q, want b (a is pinned)", got)
			}
			// The pin is durable once Pin returns, even unsynced.
			crashed := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
			s.Close()
			c, err := dirstore.Open("/s", &dirstore.Options{FS: crashed, MaxBytes: 1000, OnEvict: log.onEvict})
			if err != nil {
				t.Fatal(err)
			}
			if ok, _ := c.Has("a"); !ok {
				t.Fatal("the pinned key is gone after a crash")
			}
			if _, err := c.Trim(0); err == nil {
				t.Fatal("Trim(0) with a pinned key said it reached 0")
			}
			if got := keys(t, c); !slices.Equal(got, []string{"a"}) {
				t.Fatalf("after Trim(0) the keys are %q, want the pinned a", got)
			}
			log.take()
			err = c.Set("big", make([]byte, 800))
			if !errors.Is(err, dirstore.ErrPinned) {
				t.Fatalf("Set with only pinned bytes to evict: %v", err)
			}
			if got := keys(t, c); !slices.Equal(got, []string{"a"}) || len(log.take()) != 0 {
				t.Fatalf("a refused Set changed the store: %q", got)
			}
			if err := c.Unpin("a"); err != nil {
				t.Fatal(err)
			}
			if err := c.Unpin("a"); err != nil {
				t.Fatalf("a second Unpin: %v", err)
			}
			mustSet(t, c, "big", make([]byte, 800))
			if got := log.take(); !slices.Equal(got, []string{"a"}) {
				t.Fatalf("after Unpin evicted %q, want a", got)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}
