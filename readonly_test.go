//go:build linux

package dirstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
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
func checkReadOnlyStore(s *dirstore.Store) error { return checkHolds(s, readOnlyKeys) }

// checkHolds reads back every key of s in every way a reader can (Keys,
// Has, Get, View, a stream, Verify) and reports where s does not hold
// exactly model.
func checkHolds(s *dirstore.Store, model map[string]string) error {
	var errs []error
	n := 0
	for k, err := range s.Keys() {
		if err != nil {
			return err
		}
		n++
		want, ok := model[k]
		if !ok {
			errs = append(errs, fmt.Errorf("Keys yields %q", k))
			continue
		}
		if ok, err := s.Has(k); !ok || err != nil {
			errs = append(errs, fmt.Errorf("Has(%q) = %v, %v", k, ok, err))
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
	if n != len(model) {
		errs = append(errs, fmt.Errorf("Keys yields %d keys, want %d", n, len(model)))
	}
	if s.Len() != len(model) {
		errs = append(errs, fmt.Errorf("Len = %d, want %d", s.Len(), len(model)))
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

// TestReadOnlyWhileOpen turns the file system of an open store read-only
// under it, the way it happens in earnest: ext4 mounted with
// errors=remount-ro meets an error (triggered through its sysfs knob) and
// remounts itself read-only, aborting its journal. (A remount read-only by
// hand is refused, EBUSY, while the store holds files open for writing.)
// Then every write (Set, SetFrom, Delete, Pin, Sync, Close) fails with a
// one-line error naming its key or directory that matches fs.ErrPermission,
// syscall.EROFS and ErrFailed; every read (Keys, Has, Get, View, a stream,
// Verify) returns every acknowledged operation. Once the file system is
// checked and mounted again, the store opens writable and holds what it
// held: every acknowledged operation in sync mode; with NoSync (and its
// write buffer), whose writes since the last Sync a crash may lose, at least
// those up to the last Sync and a prefix of the rest. It takes writes again.
func TestReadOnlyWhileOpen(t *testing.T) {
	for _, c := range []struct {
		nosync bool
		buffer int64
	}{{false, 0}, {true, -1}, {true, 0}} {
		// No checkpoint but the test's Sync: what NoSync acknowledged
		// after it waits in the write buffer, or in files not synced, when
		// the file system turns read-only.
		o := &dirstore.Options{NoSync: c.nosync, WriteBuffer: c.buffer, Mmap: !c.nosync, CheckpointInterval: time.Hour}
		t.Run(fmt.Sprintf("nosync=%v,buffer=%d", c.nosync, c.buffer), func(t *testing.T) { readOnlyWhileOpenRun(t, o) })
	}
}

func readOnlyWhileOpenRun(t testing.TB, o *dirstore.Options) {
	root, dev := mountExt4Dev(t, 16<<20, "errors=remount-ro")
	dir := filepath.Join(root, "s")
	s, err := dirstore.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			s.Close() // before the file system is unmounted
		}
	})

	// Acknowledged operations, and the state after each.
	rng := rand.New(rand.NewPCG(13, 1))
	value := func() string {
		b := make([]byte, rng.IntN(20<<10))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return string(b)
	}
	want := map[string]string{}
	var states []map[string]string
	do := func(op, k string) {
		t.Helper()
		var err error
		switch v := value(); op {
		case "set":
			err = s.Set(k, []byte(v))
			want[k] = v
		case "setfrom":
			_, err = s.SetFrom(k, strings.NewReader(v))
			want[k] = v
		case "delete":
			err = s.Delete(k)
			delete(want, k)
		}
		if err != nil {
			t.Fatalf("%s %q before the file system turned read-only: %v", op, k, err)
		}
		states = append(states, maps.Clone(want))
	}
	key := func(i int) string { return fmt.Sprintf("k%02d", i) }
	for i := range 40 {
		do("set", key(i))
	}
	for i := 0; i < 40; i += 7 {
		do("set", key(i))
	}
	for i := 3; i < 40; i += 11 {
		do("delete", key(i))
	}
	do("setfrom", "from")
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	synced := len(states) - 1 // the state every reopen must hold, at least
	for i := 40; i < 50; i++ {
		do("set", key(i))
	}
	do("delete", key(1))
	do("set", key(2))

	// The file system turns read-only.
	knob := filepath.Join("/sys/fs/ext4", filepath.Base(dev), "trigger_fs_error")
	if err := os.WriteFile(knob, []byte("dirstore test: an error that remounts read-only"), 0); err != nil {
		t.Fatalf("trigger an ext4 error: %v", err)
	}
	// (Newer kernels keep the mount's flags and refuse writes themselves:
	// statfs does not say ST_RDONLY, a write does.)
	if err := os.WriteFile(filepath.Join(root, "probe"), nil, 0o600); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("ext4 did not turn read-only: a new file gets %v", err)
	}

	// Every write fails, as a permission error, naming what it wrote.
	refused := func(what, name string, err error) {
		t.Helper()
		switch {
		case err == nil:
			t.Errorf("%s on a read-only file system: nil error", what)
		case !errors.Is(err, fs.ErrPermission) || !errors.Is(err, syscall.EROFS):
			t.Errorf("%s on a read-only file system = %v, want an error matching fs.ErrPermission and EROFS", what, err)
		case !errors.Is(err, dirstore.ErrFailed):
			t.Errorf("%s on a read-only file system = %v, want it to wrap ErrFailed", what, err)
		case strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), name):
			t.Errorf("%s on a read-only file system = %q, want one line naming %s", what, err, name)
		}
	}
	if o.NoSync {
		// A NoSync Set may be acknowledged in memory: Sync is the first
		// write that must reach the disk.
		refused("Sync", dir, s.Sync())
	}
	refused("Set of a new key", `"new"`, s.Set("new", []byte("new value")))
	refused("Set of a key it holds", `"k05"`, s.Set(key(5), []byte("new value")))
	_, err = s.SetFrom("newfrom", strings.NewReader("new value"))
	refused("SetFrom", `"newfrom"`, err)
	refused("Delete", `"k06"`, s.Delete(key(6)))
	refused("Pin", `"k08"`, s.Pin(key(8)))
	refused("Sync", dir, s.Sync())

	// Every read returns what was acknowledged.
	if err := checkHolds(s, want); err != nil {
		t.Errorf("reads after the file system turned read-only: %v", err)
	}
	if ok, err := s.Has("new"); ok || err != nil {
		t.Errorf("Has of the refused key = %v, %v", ok, err)
	}
	if o.NoSync && o.WriteBuffer >= 0 {
		// The values set since the Sync wait in the write buffer, which
		// cannot be written out: a stream reads them from memory.
		if st, err := s.OpenStream(key(45), nil); err != nil || !strings.HasSuffix(st.Name(), "#buffered") {
			t.Errorf("OpenStream of a buffered value = %v; want a stream from memory", err)
		} else {
			st.Close()
		}
	}
	closed = true
	refused("Close", dir, s.Close())

	// The administrator checks the file system and mounts it again.
	run(t, "umount", root)
	if out, err := exec.Command("e2fsck", "-fy", dev).CombinedOutput(); err != nil {
		if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() > 1 {
			t.Fatalf("e2fsck: %v\n%s", err, out)
		}
	}
	run(t, "mount", dev, root)

	s = storetest.Open(t, dir, o)
	got := storetest.Contents(t, s, "after the reopen")
	allowed := states[len(states)-1:]
	if o.NoSync {
		allowed = states[synced:]
	}
	at := slices.IndexFunc(states, func(m map[string]string) bool { return maps.Equal(got, m) })
	t.Logf("the reopen holds the state after %d of the %d acknowledged operations (%d before the last Sync)", at+1, len(states), synced+1)
	if !slices.ContainsFunc(allowed, func(m map[string]string) bool { return maps.Equal(got, m) }) {
		lost := 0
		for k, v := range want {
			if got[k] != v {
				lost++
			}
		}
		t.Fatalf("after the reopen the store holds %d keys, %d of the %d acknowledged lost or wrong, in no state it was in after its last Sync", len(got), lost, len(want))
	}
	if err := checkHolds(s, got); err != nil {
		t.Fatalf("reads after the reopen: %v", err)
	}
	for i := range 5 {
		k := fmt.Sprintf("again%d", i)
		if err := s.Set(k, []byte(k)); err != nil {
			t.Fatalf("Set once the file system is writable again: %v", err)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatalf("Sync once the file system is writable again: %v", err)
	}
}
