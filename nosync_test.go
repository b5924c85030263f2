package dirstore_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

// TestNoSyncBackgroundCheckpoint: a NoSync store's background checkpoint
// (every CheckpointInterval) makes acknowledged writes durable with no
// Sync or Close: a power cut after it, keeping no unsynced byte, keeps
// them. Polled with crash clones, up to ten seconds.
func TestNoSyncBackgroundCheckpoint(t *testing.T) {
	mem := vfs.NewCrashableMem()
	s := storetest.Open(t, "/s", &dirstore.Options{FS: mem, NoSync: true, CheckpointInterval: 20 * time.Millisecond})
	mustSet(t, s, "a", []byte("1"))
	if err := s.Delete("a"); err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "b", []byte("2"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		crashed := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0, RNG: rand.New(rand.NewPCG(1, 1))})
		r, err := dirstore.Open("/s", &dirstore.Options{FS: crashed, ReadOnly: true})
		if err == nil {
			got, gerr := r.Get("b")
			has, _ := r.Has("a")
			r.Close()
			if gerr == nil && string(got) == "2" && !has {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after the writes, a crash still loses them (last reopen: %v)", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
