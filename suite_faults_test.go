package dirstore_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

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
