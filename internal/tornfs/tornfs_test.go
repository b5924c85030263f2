package tornfs_test

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dirstore/dirstore/internal/storetest"
	"github.com/dirstore/dirstore/internal/tornfs"
)

func write(t *testing.T, fsys vfs.FS, name string, data []byte, sync bool) {
	t.Helper()
	f, err := fsys.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	// pebble's MemFS scribbles over what it was given to write, in race
	// builds: give it a copy.
	if _, err := f.Write(slices.Clone(data)); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestTearOnlyUnsynced: Tear garbles unsynced ranges of a clone (some of
// them, by its random choice), never a synced one, and never the original;
// a rename carries a file's unsynced ranges along, a remove drops them.
func TestTearOnlyUnsynced(t *testing.T) {
	mem := vfs.NewCrashableMem()
	fsys := tornfs.New(mem)
	data := bytes.Repeat([]byte("0123456789abcdef"), 256)
	write(t, fsys, "synced", data, true)
	for _, name := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		write(t, fsys, name, data, false)
	}
	if err := fsys.Rename("h", "renamed"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Remove("g"); err != nil {
		t.Fatal(err)
	}
	clone := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(3, 4))})
	fsys.Tear(clone, rand.New(rand.NewPCG(1, 2)))
	if !bytes.Equal(storetest.ReadFile(t, clone, "synced"), data) {
		t.Fatal("a synced file was torn")
	}
	changed := 0
	for _, name := range []string{"a", "b", "c", "d", "e", "f", "renamed"} {
		if !bytes.Equal(storetest.ReadFile(t, clone, name), data) {
			changed++
		}
		if !bytes.Equal(storetest.ReadFile(t, mem, name), data) {
			t.Fatalf("the original %s was torn", name)
		}
	}
	if n := fsys.Torn(); changed == 0 || n != changed {
		t.Fatalf("Torn() = %d, %d of 7 unsynced files changed; want the same, more than 0", n, changed)
	}
}
