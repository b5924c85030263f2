package dirstore_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dirstore/dirstore"
)

// TestStreamQuickStat: a checked Stream fstats without the scheduler only
// where fstat cannot block, and on that path still sees another
// process's change.
func TestStreamQuickStat(t *testing.T) {
	cache := &dirstore.StreamOptions{Cache: dirstore.NewScanResistantCache(1 << 20)}
	t.Run("tmpfs", func(t *testing.T) {
		path := filepath.Join(mountTmpfs(t, 1<<20), "f")
		if err := os.WriteFile(path, []byte("first"), 0o600); err != nil {
			t.Fatal(err)
		}
		s := openStream(t, path, os.O_RDONLY, cache)
		if !dirstore.StreamQuickStat(s) {
			t.Fatal("a checked Stream on tmpfs takes the scheduler's fstat")
		}
		p := make([]byte, 5)
		for range 2 { // the second read is stored
			if _, err := s.ReadAt(p, 0); err != nil || string(p) != "first" {
				t.Fatalf("ReadAt = %q, %v", p, err)
			}
		}
		// Another writer's change, under the same size; the mtime moved
		// so that a kernel with coarse timestamps sees it too.
		if err := os.WriteFile(path, []byte("later"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, time.Time{}, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReadAt(p, 0); err != nil || string(p) != "later" {
			t.Fatalf("after another writer's change, ReadAt = %q, %v", p, err)
		}
		im := openStream(t, path, os.O_RDONLY, &dirstore.StreamOptions{Immutable: true, Cache: cache.Cache})
		if dirstore.StreamQuickStat(im) {
			t.Error("an immutable Stream, which never fstats to read, is marked for the quick fstat")
		}
	})
	t.Run("procfs", func(t *testing.T) {
		s := openStream(t, "/proc/self/status", os.O_RDONLY, cache)
		if dirstore.StreamQuickStat(s) {
			t.Fatal("a checked Stream on procfs fstats without the scheduler")
		}
	})
}

// TestStreamStatAfterClose: a checked Stream's read that found the Stream
// open takes its fstat without the Stream's lock. If a Close ran in
// between and the descriptor's number now names another file, the read
// must fail with fs.ErrClosed and leave the Stream's view of its file
// (IsModified) alone.
func TestStreamStatAfterClose(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := os.WriteFile(a, []byte("aaaa"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte("another file"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := dirstore.OpenStream(a, os.O_RDONLY, 0, &dirstore.StreamOptions{Cache: dirstore.NewScanResistantCache(1 << 20)})
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 4)
	if _, err := s.ReadAt(p, 0); err != nil {
		t.Fatal(err)
	}
	fd := dirstore.StreamFD(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	other, err := unix.Open(b, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(other)
	// The closed descriptor's number must now name another file, as a
	// concurrent open elsewhere in the program could make it. The open
	// above likely got that number (the lowest free one); if another
	// goroutine took it first, it names that goroutine's file, which is as
	// good and is left alone; if it is still free, b goes there.
	if other != fd {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == unix.EBADF {
			if err := unix.Dup3(other, fd, unix.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
		}
	}
	if err := dirstore.StreamReadRacingClose(s); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("a read whose fstat ran after Close: %v, want an error matching fs.ErrClosed", err)
	}
	if s.IsModified() {
		t.Error("after a read racing Close, IsModified reports a change of a file nobody changed")
	}
}
