//go:build linux && !nouring

package backends_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/dirstore/dirstore/backends"
)

// The uring engine learns per descriptor: a file whose reads keep finding
// the page cache is read with plain pread, and once it leaves the page
// cache the engine notices within a bounded number of reads and probes
// again; every read returns the file's bytes throughout.
func TestReadHints(t *testing.T) {
	if err := checkReadHints(t); err != nil {
		t.Fatal(err)
	}
}

// The seeded bug, a hint that a missing page does not reset, is caught.
func TestReadHintsCatchSticky(t *testing.T) {
	defer backends.SeedStickyHint()()
	err := checkReadHints(t)
	if err == nil {
		t.Fatal("a plain hint that outlived the page cache went unnoticed")
	}
	t.Log("caught:", err)
}

// checkReadHints runs the scenario and returns what it found wrong in the
// hints; wrong bytes and I/O errors fail t at once.
func checkReadHints(t *testing.T) error {
	b, err := backends.NewUring(nil)
	if err != nil {
		t.Skip("uring unavailable:", err)
	}
	defer b.Close()
	const size = 64 << 20 // 16,384 pages, each read once
	name := filepath.Join(t.TempDir(), "hints")
	if err := writePatternFile(name, size); err != nil {
		t.Fatal(err)
	}
	warmCache(t, name)
	f, err := backends.OpenFile(name, os.O_RDONLY, 0, &backends.FileOptions{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	p := make([]byte, 4096)
	read := func(i int) {
		t.Helper()
		off := int64(i*7919%(size/4096)) * 4096
		if n, err := f.ReadAt(p, off); n != len(p) || err != nil || !checkPattern(p, off) {
			t.Fatalf("ReadAt(%d) = %d, %v (or wrong bytes)", off, n, err)
		}
	}
	if _, plain, _ := backends.ReadHint(b, fd); plain {
		return errors.New("a new descriptor starts with plain reads")
	}
	for i := range backends.HintPlainAfter {
		read(i)
	}
	if n, plain, _ := backends.ReadHint(b, fd); !plain {
		return fmt.Errorf("after cached reads only, %d probes counted and no plain reads", n)
	}

	// Out of the page cache: a plain read may block, but a probe among the
	// next reads must find a page missing and reset the hint.
	// No readahead, so that the reads below do not bring the file back.
	if err := unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Skip("fadvise:", err)
	}
	unix.Fadvise(fd, 0, 0, unix.FADV_RANDOM)
	for i := range 40 * backends.HintSample {
		read(backends.HintPlainAfter + i)
		if _, plain, _ := backends.ReadHint(b, fd); !plain {
			return nil
		}
	}
	return errors.New("plain reads went on after the file left the page cache")
}
