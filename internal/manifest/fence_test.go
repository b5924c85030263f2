package manifest

import (
	"errors"
	"io"
	"io/fs"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

func readAll(t *testing.T, fs vfs.FS, name string) string {
	t.Helper()
	f, err := fs.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, fs vfs.FS, name, data string) {
	t.Helper()
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestFence checks that the first failed change fences the file system:
// the failure is reported once, the caller sees success, nothing reaches the
// real file system afterwards, and the fenced view stays coherent.
func TestFence(t *testing.T) {
	real := vfs.NewMem()
	var failSync atomic.Bool
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if failSync.Load() && op.Kind == errorfs.OpFileSync {
			return syscall.EIO
		}
		return nil
	})
	var failures []error
	f := &fenceFS{FS: errorfs.Wrap(real, inj)}
	f.onFail = func(err error) { failures = append(failures, err); f.fence() }
	if err := f.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, f, "/d/old", "before")
	writeFile(t, f, "/d/keep", "kept")
	log, err := f.Create("/d/log", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := log.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}

	// The failed sync is hidden from the caller and fences.
	failSync.Store(true)
	if err := log.Sync(); err != nil {
		t.Fatalf("Sync = %v, want the failure hidden", err)
	}
	failSync.Store(false)
	if len(failures) != 1 || !errors.Is(failures[0], syscall.EIO) || !f.fenced.Load() {
		t.Fatalf("failures %v, fenced %v", failures, f.fenced.Load())
	}

	// Nothing reaches the real file system any more...
	if _, err := log.Write([]byte("b")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, f, "/d/new", "after")
	if err := f.Rename("/d/old", "/d/renamed"); err != nil {
		t.Fatal(err)
	}
	if err := f.Remove("/d/keep"); err != nil {
		t.Fatal(err)
	}
	if err := f.Remove("/d/missing"); !isNotExist(err) {
		t.Fatalf("Remove of a missing file = %v", err)
	}
	names, _ := real.List("/d")
	slices.Sort(names)
	if want := []string{"keep", "log", "old"}; !slices.Equal(names, want) {
		t.Fatalf("real files %q, want %q", names, want)
	}
	if got := readAll(t, real, "/d/log"); got != "a" {
		t.Fatalf("real log %q", got)
	}
	if got := readAll(t, real, "/d/old"); got != "before" {
		t.Fatalf("real old %q", got)
	}

	// ...while the fenced view shows every change.
	names, err = f.List("/d")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"log", "new", "renamed"}; !slices.Equal(names, want) {
		t.Fatalf("fenced files %q, want %q", names, want)
	}
	if got := readAll(t, f, "/d/renamed"); got != "before" {
		t.Fatalf("fenced renamed %q", got)
	}
	if got := readAll(t, f, "/d/new"); got != "after" {
		t.Fatalf("fenced new %q", got)
	}
	if _, err := f.Stat("/d/old"); !isNotExist(err) {
		t.Fatalf("Stat of a renamed file = %v", err)
	}
	if _, err := f.Open("/d/keep"); !isNotExist(err) {
		t.Fatalf("Open of a removed file = %v", err)
	}
	if len(failures) != 1 {
		t.Fatalf("failures %v", failures)
	}
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// TestFailedCommitRefusesChanges checks that a manifest whose log cannot be
// synced reports the cause on that commit and every later one, and that a
// reopen finds the commits acknowledged before.
func TestFailedCommitRefusesChanges(t *testing.T) {
	mem := vfs.NewMem()
	var fail atomic.Bool
	fsys := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if fail.Load() && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return syscall.ENOSPC
		}
		return nil
	}))
	d, err := Open("/m", Options{FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	b := d.NewBatch()
	b.Put("a", Entry{Version: 1, Size: 3})
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	b = d.NewBatch()
	b.Put("b", Entry{Version: 2})
	if err := b.Commit(true); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Commit = %v, want ENOSPC", err)
	}
	fail.Store(false)
	b = d.NewBatch()
	b.Put("c", Entry{Version: 3})
	if err := b.Commit(true); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Commit after a failure = %v, want the failure again", err)
	}
	if err := d.Sync(); err == nil {
		t.Fatal("Sync after a failure succeeded")
	}
	if e, ok, err := d.Get("a"); err != nil || !ok || e.Version != 1 {
		t.Fatalf("Get after a failure = %v %v %v", e, ok, err)
	}
	_ = d.Close()

	d, err = Open("/m", Options{FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, ok, _ := d.Get("a"); !ok {
		t.Fatal("the acknowledged commit is lost")
	}
	if _, ok, _ := d.Get("c"); ok {
		t.Fatal("a refused commit landed")
	}
}
