package dirstore_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/dirstore/dirstore"
)

// mountBtrfs makes a btrfs image of size bytes, mounts it through a loop
// device and returns the mounted directory.
func mountBtrfs(t testing.TB, size int64) string {
	img := imageFile(t, size)
	run(t, "mkfs.btrfs", "-q", "-f", img)
	dir := t.TempDir()
	run(t, "mount", "-o", "loop", img, dir)
	t.Cleanup(func() { run(t, "umount", dir) })
	return dir
}

// TestSerialSyncsWhereWanted: a store on btrfs makes its durable Sets'
// syncs one after another, one on ext4 or tmpfs at once; either way what
// was set is there after a reopen.
func TestSerialSyncsWhereWanted(t *testing.T) {
	for _, c := range []struct {
		fs     string
		mount  func(testing.TB) string
		serial bool
	}{
		{"btrfs", func(t testing.TB) string { return mountBtrfs(t, 256<<20) }, true},
		{"ext4", func(t testing.TB) string { return mountExt4(t, 64<<20) }, false},
		{"tmpfs", func(t testing.TB) string { return mountTmpfs(t, 64<<20) }, false},
	} {
		t.Run(c.fs, func(t *testing.T) {
			dir := filepath.Join(c.mount(t), "store")
			s, err := dirstore.Open(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if s.Serial() != c.serial {
				t.Errorf("on %s: syncs one at a time = %v, want %v", c.fs, s.Serial(), c.serial)
			}
			for i := range 20 {
				if err := s.Set(fmt.Sprint("k", i), bytes.Repeat([]byte{byte(i)}, 1000+i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, err = dirstore.Open(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for i := range 20 {
				v, err := s.Get(fmt.Sprint("k", i))
				if err != nil || !bytes.Equal(v, bytes.Repeat([]byte{byte(i)}, 1000+i)) {
					t.Fatalf("Get(k%d) after reopen: %d bytes, %v", i, len(v), err)
				}
			}
		})
	}
}
