package manifest

import (
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestFenceKeepsFileWhole checks that a file whose write fails with the
// file system full lives on in memory, whole: the bytes written before,
// the failed write and later ones read back through the fenced FS (pebble
// reads a table it believes written), while the real file keeps only what
// reached it before the fence. With a reserve that frees space (onFull),
// the write is retried instead and nothing is fenced.
func TestFenceKeepsFileWhole(t *testing.T) {
	for _, freed := range []bool{false, true} {
		real := vfs.NewMem()
		var full atomic.Bool
		inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
			if full.Load() && op.Kind == errorfs.OpFileWrite {
				return syscall.ENOSPC
			}
			return nil
		})
		f := &fenceFS{FS: errorfs.Wrap(real, inj)}
		failures := 0
		f.onFail = func(error) { failures++; f.fence() }
		f.onFull = func() bool {
			if freed {
				full.Store(false)
			}
			return freed
		}
		file, err := f.Create("/t.sst", vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"head-", "cut-", "tail"} {
			if _, err := file.Write([]byte(p)); err != nil {
				t.Fatal(err)
			}
			full.Store(true)
		}
		file.Close()
		full.Store(false)
		if got := readAll(t, f, "/t.sst"); got != "head-cut-tail" {
			t.Fatalf("freed=%v: fenced view %q", freed, got)
		}
		want, wantFailures := "head-", 1
		if freed {
			want, wantFailures = "head-cut-tail", 0
		}
		if got := readAll(t, real, "/t.sst"); got != want || failures != wantFailures {
			t.Fatalf("freed=%v: real file %q, %d failures; want %q, %d", freed, got, failures, want, wantFailures)
		}
	}
}
