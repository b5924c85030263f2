package manifest

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestBlockCacheHolds: lookups in flushed tables are answered from the block
// cache once their blocks were read, with memtables as large as pebble
// charges to the cache. (A cache no larger than two memtables held no
// block: every lookup read and decompressed its blocks again.)
func TestBlockCacheHolds(t *testing.T) {
	d, err := Open("/m", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// Each flush starts a memtable twice as large as the last, up to
	// MemTableSize: after a few, they are as large as they get.
	for range 8 {
		b := d.NewBatch()
		for i := range 10_000 {
			b.Put(fmt.Sprintf("k%06d", i), Entry{Version: 1, Size: int64(i)})
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		if err := d.Flush(0); err != nil {
			t.Fatal(err)
		}
	}
	lookups := func() {
		for i := 0; i < 10_000; i += 97 {
			if e, ok, err := d.Get(fmt.Sprintf("k%06d", i)); err != nil || !ok || e.Size != int64(i) {
				t.Fatalf("Get(k%06d) = %+v, %v, %v", i, e, ok, err)
			}
		}
	}
	lookups()
	before := d.db.Metrics().BlockCache
	lookups() // the same blocks again
	m := d.db.Metrics().BlockCache
	hits, misses := m.Hits-before.Hits, m.Misses-before.Misses
	// A compaction finishing meanwhile may replace some tables.
	if hits < 10*misses {
		t.Errorf("block cache, reading the same keys again: %d hits and %d misses (%d blocks held, %d bytes); want hits", hits, misses, m.Count, m.Size)
	}
}
