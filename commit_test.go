package dirstore_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
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
