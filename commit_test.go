package dirstore_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

// TestGroupCommit: concurrent writers share the directory and manifest
// syncs (doc.go, Durability). Every sync is made slow (and the first
// directory sync waits until every writer has synced its value file), so
// that writers pile up behind one; without group commit each Set would
// sync the directory and the manifest's log once.
func TestGroupCommit(t *testing.T) {
	const writers = 16
	var armed atomic.Bool // after Open
	var valueSyncs, dirSyncs, logSyncs atomic.Int64
	allWritten := make(chan struct{})
	var once sync.Once
	fsys := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if !armed.Load() || op.Kind != errorfs.OpFileSync && op.Kind != errorfs.OpFileSyncData {
			return nil
		}
		switch {
		case op.Path == "/s":
			if dirSyncs.Add(1) == 1 {
				select {
				case <-allWritten:
				case <-time.After(10 * time.Second):
				}
				time.Sleep(20 * time.Millisecond) // for the writers to line up
			}
			time.Sleep(5 * time.Millisecond)
		case strings.Contains(op.Path, ".dirstore") && strings.HasSuffix(op.Path, ".log"):
			logSyncs.Add(1)
			time.Sleep(5 * time.Millisecond)
		case !strings.Contains(op.Path, ".dirstore"):
			if valueSyncs.Add(1) == writers {
				once.Do(func() { close(allWritten) })
			}
		}
		return nil
	}))
	s := storetest.Open(t, "/s", &dirstore.Options{FS: fsys})
	armed.Store(true)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() { mustSet(t, s, fmt.Sprint("k", i), []byte("v")) })
	}
	wg.Wait()
	d, l := dirSyncs.Load(), logSyncs.Load()
	t.Logf("%d Sets: %d directory syncs, %d manifest log syncs", writers, d, l)
	if d > writers/2 {
		t.Errorf("%d concurrent Sets synced the directory %d times: not shared", writers, d)
	}
	if l > writers/2 {
		t.Errorf("%d concurrent Sets synced the manifest's log %d times: not shared", writers, l)
	}
}

// TestDurableSetReverts: a durable Set's manifest commit runs while its
// file is fsynced; when the fsync fails, the key gets its previous value
// back at once (the store then refuses writes) and keeps it after a
// reopen. The seeded bug that keeps the new entry is caught here.
func TestDurableSetReverts(t *testing.T) {
	run := func(t *testing.T, fresh, serial bool) error {
		var on atomic.Bool
		fsys := faultFS(&on, errorfs.OpFileSync, syscall.EIO)
		// Bounded, so that the store keeps recency records (the seeded
		// bug MutRecencyKept leaves them behind).
		opts := &dirstore.Options{FS: fsys, MaxBytes: 1 << 30}
		if serial {
			// As on btrfs: the file's fsync fails before any commit.
			dirstore.SerialSyncs(opts)
		}
		s, err := dirstore.Open("/s", opts)
		if err != nil {
			t.Fatal(err)
		}
		want := "" // a new key is absent again
		if !fresh {
			want = "old"
			if err := s.Set("k", []byte(want)); err != nil {
				t.Fatal(err)
			}
		}
		on.Store(true)
		if err := s.Set("k", []byte("new")); !errors.Is(err, syscall.EIO) || !errors.Is(err, dirstore.ErrFailed) {
			t.Fatalf("Set = %v, want EIO and ErrFailed", err)
		}
		on.Store(false)
		check := func(when string) error {
			got, err := s.Get("k")
			if want == "" && !errors.Is(err, dirstore.ErrNotFound) || want != "" && string(got) != want {
				return fmt.Errorf("%s: Get = %q, %v; want %q", when, got, err, want)
			}
			if n := map[bool]int{true: 0, false: 1}[fresh]; s.Len() != n {
				return fmt.Errorf("%s: Len = %d, want %d", when, s.Len(), n)
			}
			// A key reverted away has no recency records left.
			if recs := s.AccessRecords(); fresh && len(recs) > 0 {
				return fmt.Errorf("%s: recency records %q of a key that is not there", when, recs)
			}
			return nil
		}
		if err := check("after the failed Set"); err != nil {
			s.Close()
			return err
		}
		s.Close()
		s = storetest.Open(t, "/s", &dirstore.Options{FS: fsys, MaxBytes: 1 << 30})
		return check("after a reopen")
	}
	for _, serial := range []bool{false, true} {
		for _, fresh := range []bool{true, false} {
			if err := run(t, fresh, serial); err != nil {
				t.Errorf("new key %v, serial syncs %v: %v", fresh, serial, err)
			}
		}
	}
	for _, m := range []struct {
		name  string
		m     int32
		fresh bool
	}{
		{"a failed durable Set's entry kept", dirstore.MutNoRevert, false},
		{"a reverted new key's recency records kept", dirstore.MutRecencyKept, true},
	} {
		restore := dirstore.SetMutation(m.m)
		if err := run(t, m.fresh, false); err == nil {
			t.Errorf("the seeded bug %q went unnoticed", m.name)
		} else {
			t.Logf("caught %q: %v", m.name, err)
		}
		restore()
	}
}
