package dirstore_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/escape"
	"github.com/dirstore/dirstore/internal/storetest"
)

// TestDeleteVersions: a value's file name is never used twice, after a
// Delete or across a reopen, and Set retires the previous file.
func TestDeleteVersions(t *testing.T) {
	dir := t.TempDir()
	s := storetest.Open(t, dir, nil)
	step := func(want ...string) {
		t.Helper()
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
		if got := valueFiles(t, dir); !slices.Equal(got, want) {
			t.Fatalf("files = %q, want %q", got, want)
		}
	}
	mustSet(t, s, "x", []byte("123"))
	step("x#0")
	if err := s.Delete("x"); err != nil {
		t.Fatal(err)
	}
	step()
	mustSet(t, s, "x", []byte("123")) // a file name is never repeated
	step("x#1")
	mustSet(t, s, "x", []byte("123")) // Set removes the previous file
	step("x#2")
	// Nor across a reopen.
	s.Close()
	s = storetest.Open(t, dir, nil)
	mustSet(t, s, "x", []byte("456"))
	step("x#3")
}

// TestVersionsNeverRepeatAfterCrash: the versions a crashed session handed
// out are never handed out again, though the crash lost every trace of
// them (NoSync: neither their files nor their manifest entries were
// synced): the lease committed before the first of them is above them.
func TestVersionsNeverRepeatAfterCrash(t *testing.T) {
	mem := vfs.NewCrashableMem()
	s, err := dirstore.Open("/s", &dirstore.Options{FS: mem, NoSync: true, WriteBuffer: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var used []uint64
	for _, k := range []string{"a", "b", "c"} {
		mustSet(t, s, k, []byte("lost"))
		_, v, _ := escape.Parse(newestFile(t, mem, "/s", k))
		used = append(used, v)
	}
	crashed := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0, RNG: rand.New(rand.NewPCG(1, 1))})
	r := storetest.Open(t, "/s", &dirstore.Options{FS: crashed, NoSync: true, WriteBuffer: -1})
	if r.Len() != 0 {
		t.Fatalf("the crash kept %d keys; this test wants it to lose them", r.Len())
	}
	for _, k := range []string{"a", "b", "c", "d"} {
		mustSet(t, r, k, []byte("after"))
		if _, v, _ := escape.Parse(newestFile(t, crashed, "/s", k)); slices.Contains(used, v) || v <= slices.Max(used) {
			t.Fatalf("after the crash %q got version %d; the crashed session used %v", k, v, used)
		}
	}
}

// newestFile returns the name of key's file with the highest version in
// dir on fsys.
func newestFile(t *testing.T, fsys vfs.FS, dir, key string) string {
	t.Helper()
	names, err := fsys.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	best, found := uint64(0), ""
	for _, name := range names {
		if q, v, ok := escape.Parse(name); ok && q == escape.Quote(key) && (found == "" || v > best) {
			best, found = v, name
		}
	}
	if found == "" {
		t.Fatalf("no file of key %q in %s", key, dir)
	}
	return found
}
