package manifest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestLogRecycling: with NoLogRecycling, the logs of flushed memtables are
// removed, so that once every memtable is flushed the manifest's directory
// holds one log, however many it filled; by default pebble keeps some for
// reuse. The seeded bug that ignores the option is caught here.
func TestLogRecycling(t *testing.T) {
	logs := func(noRecycling bool) int {
		mem := vfs.NewMem()
		d, err := Open("/m", Options{FS: mem, MemTableSize: 256 << 10, NoLogRecycling: noRecycling})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		count := func() int {
			names, err := mem.List("/m")
			if err != nil {
				t.Fatal(err)
			}
			return len(slices.DeleteFunc(names, func(n string) bool { return !strings.HasSuffix(n, ".log") }))
		}
		key := strings.Repeat("k", 4<<10)
		for i := range 1000 { // 4 MiB of keys: many memtables
			b := d.NewBatch()
			b.Put(fmt.Sprintf("%s%04d", key, i), Entry{Version: uint64(i)})
			if err := b.Commit(false); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Flush(0); err != nil {
			t.Fatal(err)
		}
		// Pebble removes obsolete files in the background.
		for deadline := time.Now().Add(2 * time.Second); count() > 1 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		return count()
	}
	if n := logs(false); n < 2 {
		t.Errorf("by default, the flushed manifest holds %d log; want pebble to keep some for reuse (else this test shows nothing)", n)
	}
	check := func() error {
		if n := logs(true); n != 1 {
			return fmt.Errorf("with NoLogRecycling, the flushed manifest holds %d logs, want 1", n)
		}
		return nil
	}
	if err := check(); err != nil {
		t.Error(err)
	}
	Mutation.Store(MutLogsRecycled)
	defer Mutation.Store(MutNone)
	if check() == nil {
		t.Error("the seeded bug that ignores NoLogRecycling went unnoticed")
	}
}
