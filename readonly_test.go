//go:build linux

package dirstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/dirstore/dirstore"
)

// readOnlyKeys is what the read-only tests write and read back.
var readOnlyKeys = map[string]string{"a": "alpha", "b/c": "bravo charlie", "empty": "", "big": strings.Repeat("0123456789", 10000)}

func fillReadOnlyStore(t *testing.T, dir string, o *dirstore.Options) {
	t.Helper()
	s, err := dirstore.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range readOnlyKeys {
		if err := s.Set(k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkReadOnlyStore reads every key back in every way a reader can.
func checkReadOnlyStore(s *dirstore.Store) error {
	var errs []error
	n := 0
	for k, err := range s.Keys() {
		if err != nil {
			return err
		}
		n++
		want, ok := readOnlyKeys[k]
		if !ok {
			errs = append(errs, fmt.Errorf("Keys yields %q", k))
			continue
		}
		if got, err := s.Get(k); err != nil || string(got) != want {
			errs = append(errs, fmt.Errorf("Get(%q) = %.20q, %v", k, got, err))
		}
		if err := s.View(k, func(v []byte) error {
			if string(v) != want {
				return fmt.Errorf("View(%q) sees %.20q", k, v)
			}
			return nil
		}); err != nil {
			errs = append(errs, err)
		}
		st, err := s.OpenStream(k, nil)
		if err == nil {
			var got []byte
			got, err = io.ReadAll(st)
			st.Close()
			if err == nil && string(got) != want {
				err = fmt.Errorf("stream of %q reads %.20q", k, got)
			}
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if n != len(readOnlyKeys) {
		errs = append(errs, fmt.Errorf("Keys yields %d keys, want %d", n, len(readOnlyKeys)))
	}
	if err := s.Verify(func(k string, err error) bool {
		if err != nil {
			errs = append(errs, err)
		}
		return true
	}); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// TestReadOnlyMount: a store on a file system mounted read-only opens with
// ReadOnly and reads back (with and without Mmap, twice at once), and a
// writable Open fails with a permission error, not ErrLocked.
func TestReadOnlyMount(t *testing.T) {
	needRoot(t)
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=16m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	dir := filepath.Join(mnt, "store")
	fillReadOnlyStore(t, dir, nil)
	if err := unix.Mount("", mnt, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}

	_, err := dirstore.Open(dir, nil)
	if !errors.Is(err, fs.ErrPermission) || errors.Is(err, dirstore.ErrLocked) || !errors.Is(err, syscall.EROFS) {
		t.Errorf("writable Open on a read-only mount = %v, want an EROFS matching fs.ErrPermission and not ErrLocked", err)
	}
	var stores []*dirstore.Store
	for _, mmap := range []bool{false, true} {
		s, err := dirstore.Open(dir, &dirstore.Options{ReadOnly: true, Mmap: mmap})
		if err != nil {
			t.Fatalf("Open(ReadOnly, Mmap=%v) on a read-only mount: %v", mmap, err)
		}
		stores = append(stores, s)
		if err := checkReadOnlyStore(s); err != nil {
			t.Errorf("Mmap=%v: %v", mmap, err)
		}
		if err := s.Set("new", nil); !errors.Is(err, dirstore.ErrReadOnly) {
			t.Errorf("Set on a read-only store = %v, want ErrReadOnly", err)
		}
	}
	for _, s := range stores {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
}

const otherUserEnv = "DIRSTORE_OTHER_USER_DIR"

// otherUID is the user the other-user test runs its child as ("nobody").
const otherUID = 65534

// TestReadOnlyOtherUser: another user's store, whose files the user may
// read but not write, opens with ReadOnly for that user (the lock file
// cannot be opened for writing: a shared lock is taken instead) and reads
// back; a writable Open fails with fs.ErrPermission, not ErrLocked; and
// while the owner has the store open, the reader gets ErrLocked.
func TestReadOnlyOtherUser(t *testing.T) {
	if dir := os.Getenv(otherUserEnv); dir != "" {
		otherUserChild(dir)
		return
	}
	needRoot(t)
	// Whatever the umask, what the test makes is for the other user to read.
	defer syscall.Umask(syscall.Umask(0o022))
	// A directory nobody can reach, with a copy of this test binary that
	// nobody can run (the build directory is root's alone).
	base := t.TempDir()
	for p := base; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exe := filepath.Join(base, "dirstore.test")
	if err := copyFile(os.Args[0], exe, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "store")
	fillReadOnlyStore(t, dir, &dirstore.Options{FileMode: 0o644, DirMode: 0o755})

	child := func() string {
		cmd := exec.Command(exe, "-test.run=^TestReadOnlyOtherUser$", "-test.count=1")
		cmd.Env = append(os.Environ(), otherUserEnv+"="+dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: otherUID, Gid: otherUID}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the child, as user %d: %v\n%s", otherUID, err, out)
		}
		return string(out)
	}
	out := child()
	for _, want := range []string{"writable: permission\n", "read-only: ok\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("the other user says:\n%s\nwant a line %q", out, want)
		}
	}

	// While the owner has it open, the reader is locked out, and says so.
	s, err := dirstore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	out = child()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "read-only: locked\n") {
		t.Errorf("with the store open by its owner, the other user says:\n%s\nwant a line %q", out, "read-only: locked")
	}
}

// otherUserChild is TestReadOnlyOtherUser's child, running as another
// user: it reports how Open fares on dir, one line per mode.
func otherUserChild(dir string) {
	var out bytes.Buffer
	_, err := dirstore.Open(dir, nil)
	switch {
	case errors.Is(err, dirstore.ErrLocked):
		fmt.Fprintf(&out, "writable: locked: %v\n", err)
	case errors.Is(err, fs.ErrPermission):
		fmt.Fprintf(&out, "writable: permission\n")
	default:
		fmt.Fprintf(&out, "writable: %v\n", err)
	}
	s, err := dirstore.Open(dir, &dirstore.Options{ReadOnly: true})
	switch {
	case errors.Is(err, dirstore.ErrLocked):
		fmt.Fprintf(&out, "read-only: locked\n")
	case err != nil:
		fmt.Fprintf(&out, "read-only: %v\n", err)
	default:
		err = checkReadOnlyStore(s)
		if cerr := s.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			fmt.Fprintf(&out, "read-only: %v\n", err)
		} else {
			fmt.Fprintf(&out, "read-only: ok\n")
		}
	}
	os.Stdout.Write(out.Bytes())
	os.Exit(0)
}

func copyFile(src, dst string, perm fs.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, perm)
}
