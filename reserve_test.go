//go:build linux

package dirstore_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

// reserveHeld returns the bytes the store's emergency reserve holds on disk.
func reserveHeld(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, ".dirstore", "reserve"), &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// manifestBytes returns the bytes the manifest's files take on disk.
func manifestBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	ents, err := os.ReadDir(filepath.Join(dir, ".dirstore", "manifest"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		info, err := e.Info()
		if err == nil {
			n += info.Size()
		}
	}
	return n
}

// TestReserveFollowsManifest checks that the emergency reserve grows as the
// manifest does, so that the manifest can rewrite itself (a compaction) and
// record a tombstone for every key on a full disk, and that Open gives back
// what it no longer needs.
func TestReserveFollowsManifest(t *testing.T) {
	root := mountTmpfs(t, 256<<20)
	dir := filepath.Join(root, "s")
	const base = 1 << 20
	opts := &dirstore.Options{Reserve: base, NoSync: true}
	s := storetest.Open(t, dir, opts)
	if got := reserveHeld(t, dir); got < base || got > 2*base {
		t.Fatalf("a new store's reserve holds %d bytes, want about its base, %d", got, base)
	}
	// 4,000 keys of 1 KiB of random letters: a manifest of several MiB.
	rng := rand.New(rand.NewPCG(1, 2))
	key := make([]byte, 1<<10)
	for i := range 4000 {
		for j := range key {
			key[j] = 'a' + byte(rng.IntN(26))
		}
		k := fmt.Sprintf("%05d%s", i, key[5:])
		if err := s.Set(k, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	man := manifestBytes(t, dir)
	held := reserveHeld(t, dir)
	t.Logf("4,000 keys of 1 KiB: manifest %d bytes, reserve %d", man, held)
	if man < 4<<20 {
		t.Fatalf("the manifest takes %d bytes: the test needs more", man)
	}
	// The reserve follows the manifest's live data: here the 4,000
	// entries, a KiB of key each (the undo records are dead once
	// checkpointed, and an unbounded store keeps no recency records). It
	// looked at the manifest at most reserveStep (32 KiB) of keys ago, and
	// the live size is an estimate: 10% is left for both.
	if live := int64(4000 << 10); held < base+live*9/10 {
		t.Fatalf("the reserve holds %d bytes, for %d bytes of live keys (a manifest of %d) and a base of %d", held, live, man, base)
	}
	// A reserve far larger than the manifest needs, as an earlier, larger
	// manifest leaves behind, is made again at its size by Open.
	f, err := os.OpenFile(filepath.Join(dir, ".dirstore", "reserve"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Fallocate(int(f.Fd()), 1 /* FALLOC_FL_KEEP_SIZE */, 0, 8*held); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := reserveHeld(t, dir); got < 8*held {
		t.Fatalf("planted reserve of %d bytes holds %d", 8*held, got)
	}
	s = storetest.Open(t, dir, opts)
	defer s.Close()
	after := reserveHeld(t, dir)
	t.Logf("a reserve of %d bytes planted: %d after Open", 8*held, after)
	if after > 2*held || after < base+man/2 {
		t.Fatalf("a reserve of %d bytes planted: %d after Open, want about %d", 8*held, after, held)
	}
}
