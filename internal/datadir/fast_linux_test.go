package datadir_test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dirstore/dirstore/internal/datadir"
)

// openFast opens the fast Dir on a new directory holding the file "v" with
// content, its access time an hour before its modification time: on a
// relatime (or strictatime) mount, a read that updates access times
// updates it.
func openFast(t *testing.T, content string) (datadir.Dir, string) {
	t.Helper()
	dir := t.TempDir()
	d, err := datadir.Open(nil, dir, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if err := d.Write("v", "", [][]byte{[]byte(content)}, false); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "v")
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, time.Now()); err != nil {
		t.Fatal(err)
	}
	return d, path
}

func atime(t *testing.T, path string) unix.Timespec {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Atim
}

// TestReadKeepsAccessTime: reading a value (Read, OpenRead, Map) does not
// update its file's access time, which the same read through os.ReadFile
// does on this mount.
func TestReadKeepsAccessTime(t *testing.T) {
	d, path := openFast(t, "value")
	before := atime(t, path)
	if b, err := d.Read("v", 5, nil); err != nil || string(b) != "value" {
		t.Fatalf("Read: %q, %v", b, err)
	}
	f, err := d.OpenRead("v")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := f.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	m, unmap, _, err := d.Map("v", 5)
	if err != nil || string(m) != "value" {
		t.Fatalf("Map: %q, %v", m, err)
	}
	unmap()
	if got := atime(t, path); got != before {
		t.Errorf("access time moved from %v to %v", before, got)
	}
	// The control: a plain read updates it, or the check above proves
	// nothing on this mount.
	if _, err := os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	if atime(t, path) == before {
		t.Skip("this mount does not update access times (noatime): nothing to check")
	}
}

// TestReadWithoutFowner: where the kernel refuses O_NOATIME (a file of
// another owner, read without CAP_FOWNER), reads still work, without it.
func TestReadWithoutFowner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to give the file to another owner")
	}
	d, path := openFast(t, "value")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		// Capabilities belong to a thread: drop CAP_FOWNER on this one,
		// which dies with the goroutine (it is never unlocked).
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		data[0].Effective &^= 1 << unix.CAP_FOWNER
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		if fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOATIME, 0); err != unix.EPERM {
			if err == nil {
				unix.Close(fd)
			}
			t.Errorf("open with O_NOATIME without CAP_FOWNER: %v, want EPERM (the test does not test the fallback)", err)
		}
		for range 2 { // the first read finds out, the second knows
			b, err := d.Read("v", 5, nil)
			if err != nil || string(b) != "value" {
				t.Errorf("Read: %q, %v", b, err)
			}
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
