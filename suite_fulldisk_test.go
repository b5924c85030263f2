//go:build linux

package dirstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
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

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v: %s", name, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// mountTmpfs mounts a tmpfs of size bytes and returns its directory.
func mountTmpfs(t testing.TB, size int64) string {
	needRoot(t)
	dir := t.TempDir()
	run(t, "mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir)
	t.Cleanup(func() { run(t, "umount", dir) })
	return dir
}

// imageFile makes an empty (sparse) file of size bytes for a file system
// image, removed with the test.
func imageFile(t testing.TB, size int64) string {
	needRoot(t)
	img := filepath.Join(t.TempDir(), "fs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	return img
}

// mountExt4 makes an ext4 image of size bytes (with a journal), attaches it
// to a loop device and mounts it; it returns the mounted directory.
func mountExt4(t testing.TB, size int64) string {
	dir, _ := mountExt4Dev(t, size)
	return dir
}

// mountExt4Dev is mountExt4 with mount options (for mount -o), and returns
// the loop device too.
func mountExt4Dev(t testing.TB, size int64, opts ...string) (dir, dev string) {
	img := imageFile(t, size)
	run(t, "mkfs.ext4", "-q", "-F", "-m", "0", img)
	dev = run(t, "losetup", "-f", "--show", img)
	t.Cleanup(func() { run(t, "losetup", "-d", dev) })
	dir = t.TempDir()
	args := []string{dev, dir}
	if len(opts) > 0 {
		args = append(args, "-o", strings.Join(opts, ","))
	}
	run(t, "mount", args...)
	t.Cleanup(func() { run(t, "umount", dir) })
	return dir, dev
}

// fullDiskErr checks an error a store returns on a full disk: it wraps
// ENOSPC, ErrFailed or ErrCorrupt, never only an error of the manifest's.
func fullDiskErr(t testing.TB, where string, err error) {
	t.Helper()
	if !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, dirstore.ErrFailed) && !errors.Is(err, dirstore.ErrCorrupt) {
		t.Fatalf("%s: %v wraps neither ENOSPC, ErrFailed nor ErrCorrupt", where, err)
	}
}

type fullDiskCase struct {
	fs     string // tmpfs or ext4
	nosync bool
	buffer int64 // Options.WriteBuffer
	keyLen int   // long keys make the manifest fill the disk
}

func (c fullDiskCase) String() string {
	return fmt.Sprintf("%s,nosync=%v,buffer=%d,key=%d", c.fs, c.nosync, c.buffer, c.keyLen)
}

// mount mounts the case's small file system; grow doubles its size, as
// an administrator gives a full disk more room, with no store open on it.
func (c fullDiskCase) mount(t testing.TB) (dir string, grow func()) {
	if c.fs == "ext4" {
		const size = 16 << 20
		dir, dev := mountExt4Dev(t, size)
		return dir, func() {
			// Offline (the store is closed): the small image has no
			// room reserved for growing online.
			run(t, "umount", dir)
			img := run(t, "losetup", "--list", "--noheadings", "--output", "BACK-FILE", dev)
			if err := os.Truncate(img, 2*size); err != nil {
				t.Fatal(err)
			}
			run(t, "losetup", "--set-capacity", dev)
			run(t, "e2fsck", "-f", "-p", dev)
			run(t, "resize2fs", dev)
			run(t, "mount", dev, dir)
		}
	}
	const size = 8 << 20
	dir = mountTmpfs(t, size)
	return dir, func() { run(t, "mount", "-o", fmt.Sprintf("remount,size=%d", 2*size), dir) }
}

func fullDiskCases() []fullDiskCase {
	var cases []fullDiskCase
	for _, fsName := range []string{"tmpfs", "ext4"} {
		for _, m := range []struct {
			nosync bool
			buffer int64
		}{{false, 0}, {true, -1}, {true, 256 << 10}} {
			for _, keyLen := range []int{8, 4 << 10} {
				cases = append(cases, fullDiskCase{fsName, m.nosync, m.buffer, keyLen})
			}
		}
	}
	return cases
}

// TestFullDisk fills a real small file system (an 8 MiB tmpfs, a 16 MiB
// ext4 image) until a write fails, in sync mode and NoSync with and
// without the write buffer, with short keys and with keys long enough that
// the manifest itself runs out of space. Then, without freeing space:
// every acknowledged key reads back (or the read fails with ENOSPC,
// ErrFailed or ErrCorrupt); Close and a read-only Open show every
// acknowledged operation; a writable Open does too, leaves no empty table
// behind, and its Deletes free space; after them the store takes writes
// again.
func TestFullDisk(t *testing.T) {
	for _, c := range fullDiskCases() {
		t.Run(c.String(), func(t *testing.T) { fullDiskRun(t, c) })
	}
}

func fullDiskRun(t testing.TB, c fullDiskCase) {
	root, grow := c.mount(t)
	dir := filepath.Join(root, "s")
	opts := &dirstore.Options{NoSync: c.nosync, WriteBuffer: c.buffer, CheckpointInterval: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(tWriter{t}, nil))}
	s, err := dirstore.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	// A failed check leaves the store open: close it before the
	// file system is unmounted.
	var ro *dirstore.Store
	t.Cleanup(func() {
		for _, s := range []*dirstore.Store{s, ro} {
			if s != nil {
				s.Close()
			}
		}
	})
	rng := rand.New(rand.NewPCG(uint64(c.keyLen), 1))
	want := map[string]string{}
	hist := map[string][]string{} // every acknowledged value of each key
	var maybeKey string
	var maybeVal *string
	var failure error
	for i := 0; failure == nil; i++ {
		key := fmt.Sprintf("k%05d", i)
		if c.keyLen > len(key) {
			// Random letters: pebble compresses the manifest's tables, and
			// keys of one repeated byte would take little room there.
			pad := make([]byte, c.keyLen-len(key))
			for j := range pad {
				pad[j] = 'a' + byte(rng.IntN(26))
			}
			key += string(pad)
		}
		var v []byte
		if c.keyLen > 8 {
			v = make([]byte, 64)
		} else {
			v = make([]byte, 1<<10+rng.IntN(24<<10))
		}
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		if i > 0 && i%5 == 0 {
			// Overwrite an earlier key now and then.
			key = slices.Sorted(maps.Keys(want))[rng.IntN(len(want))]
		}
		if err := s.Set(key, v); err != nil {
			failure = err
			sv := string(v)
			maybeKey, maybeVal = key, &sv
			break
		}
		want[key] = string(v)
		hist[key] = append(hist[key], string(v))
		if i > 100000 {
			t.Fatal("the disk never filled")
		}
	}
	t.Logf("first failure after %d acknowledged keys: %v", len(want), failure)
	fullDiskErr(t, "the failing Set", failure)

	// Every acknowledged key reads back, by Get and Keys; the key of the
	// failing Set holds its last acknowledged value or the failing Set's,
	// whose outcome is unknown (ErrFailed).
	for k, v := range want {
		got, err := s.Get(k)
		if err != nil {
			fullDiskErr(t, "Get after the failure", err)
			continue
		}
		if string(got) != v && !(k == maybeKey && string(got) == *maybeVal) {
			t.Fatalf("Get(%.20q) after the failure: wrong bytes", k)
		}
	}
	n := 0
	for _, err := range s.Keys() {
		if err != nil {
			fullDiskErr(t, "Keys after the failure", err)
			break
		}
		n++
	}
	// Close commits what was acknowledged, from the reserve.
	if err := s.Close(); err != nil {
		t.Fatalf("Close of the full store: %v", err)
	}
	check := func(when string, s *dirstore.Store) {
		t.Helper()
		got := storetest.Contents(t, s, when)
		withMaybe := maps.Clone(want)
		if maybeVal != nil {
			withMaybe[maybeKey] = *maybeVal
		} else {
			delete(withMaybe, maybeKey) // a Delete whose outcome is unknown
		}
		if !maps.Equal(got, want) && !maps.Equal(got, withMaybe) {
			lost := 0
			for k, v := range want {
				if got[k] != v {
					lost++
				}
			}
			t.Fatalf("%s: %d of %d acknowledged keys lost or wrong (%d keys there)", when, lost, len(want), len(got))
		}
	}
	// A read-only Open shows every acknowledged operation.
	ro, err = dirstore.Open(dir, &dirstore.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only Open of the full store: %v", err)
	}
	check("read-only Open", ro)
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	ro = nil
	// So does a writable one, without space being freed.
	s, err = dirstore.Open(dir, opts)
	if err != nil {
		t.Fatalf("writable Open of the full store: %v", err)
	}
	check("writable Open", s)
	noEmptyTables(t, dir)
	// Deletes free space.
	deleted := 0
	for k := range want {
		if deleted >= len(want)/2 {
			break
		}
		if err := s.Delete(k); err != nil {
			t.Fatalf("Delete in the full store: %v", err)
		}
		delete(want, k)
		deleted++
	}
	if maybeKey != "" {
		if err := s.Delete(maybeKey); err != nil && !errors.Is(err, dirstore.ErrNotFound) {
			t.Fatalf("Delete in the full store: %v", err)
		}
		delete(want, maybeKey)
	}
	maybeKey, maybeVal = "", new(string)
	if err := s.Close(); err != nil {
		t.Fatalf("Close after Deletes: %v", err)
	}
	// With space back, the store takes writes again. Deleting half of
	// the keys gives back what their values took; with long keys (and
	// 64-byte values) the Deletes' own records in the manifest take about
	// as much again, so the disk is still full: there the space comes
	// back as an administrator brings it, by growing the file system.
	if c.keyLen > 8 {
		grow()
	}
	s, err = dirstore.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	check("reopen after Deletes", s)
	for i := range 20 {
		k := fmt.Sprintf("again%02d", i)
		if err := s.Set(k, []byte(k)); err != nil {
			t.Fatalf("Set once space is back: %v", err)
		}
		want[k] = k
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = dirstore.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	check("final reopen", s)
}

// TestFullDiskCatchesSeededBugs seeds the bugs the emergency reserve must
// not have, each of which lets a full disk lose what the store acknowledged
// or leave it unopenable: the full-disk test must fail on each, within a
// few runs of the cases the bug decides (which store first meets the full
// disk varies from run to run).
func TestFullDiskCatchesSeededBugs(t *testing.T) {
	needRoot(t)
	long := []fullDiskCase{{"tmpfs", false, 0, 4 << 10}, {"tmpfs", true, -1, 4 << 10}, {"tmpfs", true, 256 << 10, 4 << 10}}
	for _, m := range []struct {
		name  string
		mut   int32
		cases []fullDiskCase
	}{
		// Sync mode, short keys: the reserve is what lets the full store
		// reopen writable (NoSync stores with short keys need it less
		// often).
		{"reserve never released", dirstore.MutReserveKept, []fullDiskCase{{"tmpfs", false, 0, 8}, {"ext4", false, 0, 8}}},
		// 4 KiB keys: the manifest outgrows a reserve of fixed size, and
		// several of its writes meet the full disk at once.
		{"reserve does not grow with the manifest", dirstore.MutReserveFixed, long},
		{"only the first write to meet a full disk retries", dirstore.MutReleaseOnce, long},
	} {
		t.Run(m.name, func(t *testing.T) {
			restore := dirstore.SetMutation(m.mut)
			defer restore()
			for run := 1; ; run++ {
				var caught []string
				for _, c := range m.cases {
					rec := &failRecorder{TB: t}
					done := make(chan struct{})
					go func() {
						defer close(done)
						fullDiskRun(rec, c)
					}()
					<-done
					if rec.msg != "" {
						caught = append(caught, fmt.Sprintf("%v: %.300s", c, rec.msg))
					}
				}
				if len(caught) > 0 {
					t.Logf("caught in run %d: %s", run, strings.Join(caught, "; "))
					return
				}
				if run == 20 {
					t.Fatalf("the full-disk test did not catch the seeded bug in %d runs", run)
				}
			}
		})
	}
}

// noEmptyTables fails if the manifest's directory holds an empty table, as
// a failed pebble Open leaves.
func noEmptyTables(t testing.TB, dir string) {
	t.Helper()
	mdir := filepath.Join(dir, ".dirstore", "manifest")
	ents, err := os.ReadDir(mdir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".sst") {
			continue
		}
		info, err := e.Info()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		if err == nil && info.Size() == 0 {
			t.Fatalf("empty table %s in the manifest", e.Name())
		}
	}
}

// TestFullDiskBuffer fills an 8 MiB tmpfs through a Buffer that spills into
// a NoSync store with a write buffer, until a Set's spill fails. The values
// spilled by then read back, survive Close and a reopen without space
// freed, and once Deletes free space, a new Buffer over the store takes
// values and its Flush succeeds.
func TestFullDiskBuffer(t *testing.T) {
	root := mountTmpfs(t, 8<<20)
	dir := filepath.Join(root, "s")
	opts := &dirstore.Options{NoSync: true, WriteBuffer: 256 << 10, CheckpointInterval: 50 * time.Millisecond}
	s := storetest.Open(t, dir, opts)
	buf, err := dirstore.NewBuffer[[]byte](s, dirstore.BufferOptions[[]byte]{MaxWeight: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 1))
	var failure error
	for i := 0; failure == nil; i++ {
		v := make([]byte, 4<<10+rng.IntN(16<<10))
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		failure = buf.Set(fmt.Sprintf("b%05d", i), v)
		if i > 100000 {
			t.Fatal("the disk never filled")
		}
	}
	fullDiskErr(t, "the Set whose spill failed", failure)
	// What the store holds now is what the Buffer spilled: every value
	// reads back.
	spilled := storetest.Contents(t, s, "after the failure")
	t.Logf("%d values spilled before %v", len(spilled), failure)
	if err := buf.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		fullDiskErr(t, "Close", err)
	}
	s, err = dirstore.Open(dir, opts)
	if err != nil {
		t.Fatalf("writable Open of the full store: %v", err)
	}
	got := storetest.Contents(t, s, "after the reopen")
	if !maps.Equal(got, spilled) {
		t.Fatalf("after reopen the store holds %d values, not the %d spilled", len(got), len(spilled))
	}
	// Free space, then the Buffer works again.
	n := 0
	for k := range spilled {
		if n++; n%2 == 0 {
			continue
		}
		if err := s.Delete(k); err != nil {
			t.Fatalf("Delete in the full store: %v", err)
		}
		delete(spilled, k)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = storetest.Open(t, dir, opts)
	buf, err = dirstore.NewBuffer[[]byte](s, dirstore.BufferOptions[[]byte]{MaxWeight: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := buf.Set(fmt.Sprintf("again%02d", i), make([]byte, 8<<10)); err != nil {
			t.Fatalf("Buffer Set once space is back: %v", err)
		}
	}
	if err := buf.Flush(); err != nil {
		t.Fatalf("Buffer Flush once space is back: %v", err)
	}
	for k, v := range spilled {
		got, err := buf.Get(k)
		if err != nil || string(got) != v {
			t.Fatalf("Buffer Get(%q) of a spilled value: %v", k, err)
		}
	}
	if err := buf.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestFullDiskOpenLeavesNoTables opens, writable, a store whose disk is
// full to the last byte with its reserve off, so that the manifest's Open
// cannot write: each failed Open wraps ENOSPC and leaves no empty table
// behind, a read-only Open works, and once space is freed the store opens.
func TestFullDiskOpenLeavesNoTables(t *testing.T) {
	root := mountTmpfs(t, 8<<20)
	dir := filepath.Join(root, "s")
	opts := &dirstore.Options{Reserve: -1}
	// Space that other files hold, to be freed at the end.
	other := filepath.Join(root, "other")
	if err := os.WriteFile(other, make([]byte, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	s := storetest.Open(t, dir, opts)
	want := map[string]string{}
	for i := 0; ; i++ {
		k := fmt.Sprintf("k%04d", i)
		v := strings.Repeat(k, 1000)
		if err := s.Set(k, []byte(v)); err != nil {
			fullDiskErr(t, "Set", err)
			break
		}
		want[k] = v
	}
	if err := s.Close(); err != nil {
		fullDiskErr(t, "Close", err)
	}
	// Fill what is left, to the last block.
	filler := filepath.Join(root, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := f.Write(make([]byte, 4096)); err == nil; _, err = f.Write(make([]byte, 4096)) {
	}
	for _, err := f.Write(make([]byte, 1)); err == nil; _, err = f.Write(make([]byte, 1)) {
	}
	f.Close()
	for range 3 {
		s, err := dirstore.Open(dir, opts)
		if err == nil {
			// Nothing to write at Open after a clean Close: fine too.
			s.Close()
			break
		}
		t.Logf("writable Open of the full store: %v", err)
		fullDiskErr(t, "writable Open of a full store", err)
		noEmptyTables(t, dir)
	}
	ro, err := dirstore.Open(dir, &dirstore.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only Open of a full store: %v", err)
	}
	if ro.Len() != len(want) {
		t.Fatalf("read-only Open: %d keys, want %d", ro.Len(), len(want))
	}
	ro.Close()
	for _, name := range []string{filler, other} {
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
	s = storetest.Open(t, dir, opts)
	if s.Len() != len(want) {
		t.Fatalf("reopen: %d keys, want %d", s.Len(), len(want))
	}
}

// tWriter writes a store's log records to the test's log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}
