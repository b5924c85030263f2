// Package storetest opens Stores for tests and checks them when the test
// ends, in the manner of bbolt's internal/btesting: every test that opens a
// store through [Open] is also an integrity test of whatever it did.
//
// At the end of the test (t.Cleanup), the store must pass Store.Verify with
// no error for any key, Close must return nil, and the directory must hold
// no orphan: no value file (a name quote(key)#N) other than the one current
// file of each key the store holds. A test that closed the store itself is
// checked the same way through a read-only reopen, so what its Close left
// is checked too.
//
// A test that leaves its store damaged on purpose (files changed behind
// its back, an injected failure) says so with [LeftDamaged]; its store is
// only closed.
package storetest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/escape"
)

// An Option changes what Open's cleanup checks.
type Option func(*config)

type config struct {
	damaged string
}

// LeftDamaged opts a store out of the checks at the end of the test, for
// a test that damages it on purpose; why says how, for the reader.
func LeftDamaged(why string) Option {
	if why == "" {
		panic("storetest: LeftDamaged needs a reason")
	}
	return func(c *config) { c.damaged = why }
}

// Open opens the store in dir with o (nil for the defaults) and registers
// its check with tb.Cleanup. An empty dir is a new directory: tb.TempDir()
// on the operating system's file system, "/store" on any other o.FS.
func Open(tb testing.TB, dir string, o *dirstore.Options, opts ...Option) *dirstore.Store {
	tb.Helper()
	var c config
	for _, opt := range opts {
		opt(&c)
	}
	fsys := vfs.Default
	if o != nil && o.FS != nil {
		fsys = o.FS
	}
	if dir == "" {
		dir = "/store"
		if fsys == vfs.Default {
			dir = tb.TempDir()
		}
	}
	s, err := dirstore.Open(dir, o)
	if err != nil {
		tb.Fatalf("Open(%s): %v", dir, err)
	}
	tb.Cleanup(func() {
		if c.damaged != "" {
			s.Close()
			return
		}
		Check(tb, s, fsys)
	})
	return s
}

// Check verifies s, closes it and looks for orphan files in its directory
// on fsys (see the package comment). If s is closed already, it checks a
// read-only reopen of the directory instead. It reports through tb.Errorf.
func Check(tb testing.TB, s *dirstore.Store, fsys vfs.FS) {
	tb.Helper()
	dir := s.Dir()
	bad, err := verify(s)
	if errors.Is(err, fs.ErrClosed) {
		// The test closed it: check what that left.
		if s, err = dirstore.Open(dir, &dirstore.Options{FS: fsys, ReadOnly: true}); err != nil {
			tb.Errorf("storetest: %s, closed by the test, does not reopen read-only: %v", dir, err)
			return
		}
		bad, err = verify(s)
	}
	if err != nil {
		tb.Errorf("storetest: Verify %s: %v", dir, err)
	}
	for _, e := range bad {
		tb.Errorf("storetest: Verify %s: %v", dir, e)
	}
	keys := map[string]bool{}
	for k, err := range s.Keys() {
		if err != nil {
			tb.Errorf("storetest: Keys %s: %v", dir, err)
			break
		}
		keys[k] = true
	}
	if err := s.Close(); err != nil {
		tb.Errorf("storetest: %v", err)
		return
	}
	for _, name := range Orphans(tb, fsys, dir, keys) {
		tb.Errorf("storetest: %s: orphan file %s", dir, name)
	}
}

// verify runs s.Verify and returns the errors it reported for keys.
func verify(s *dirstore.Store) (bad []error, err error) {
	err = s.Verify(func(key string, err error) bool {
		if err != nil {
			bad = append(bad, fmt.Errorf("key %q: %w", key, err))
		}
		return true
	})
	return bad, err
}

// Orphans returns the value files in dir that are not the one current file
// of a key in keys: files of keys the store does not hold, and a key's
// second file. Entries that are not value files (the metadata directory, a
// zict 2 file, a directory, foreign files) are not the store's to remove,
// and are not orphans.
func Orphans(tb testing.TB, fsys vfs.FS, dir string, keys map[string]bool) []string {
	tb.Helper()
	names, err := fsys.List(dir)
	if err != nil {
		tb.Errorf("storetest: %v", err)
		return nil
	}
	slices.Sort(names)
	byQuoted := map[string]string{}
	for k := range keys {
		byQuoted[escape.Quote(k)] = k
	}
	var orphans []string
	owned := map[string]bool{} // keys with a file
	for _, name := range names {
		q, v, ok := escape.Parse(name)
		if !ok {
			continue
		}
		if info, err := fsys.Stat(fsys.PathJoin(dir, name)); err == nil && !info.Mode().IsRegular() {
			continue
		}
		key, ok := byQuoted[q]
		if !ok && len(name) >= escape.MaxName-2 {
			// A long key's name is cut inside its quoted part: the file
			// is key's if Name gives it for this version.
			for k := range keys {
				if !owned[k] && escape.Name(k, v) == name {
					key, ok = k, true
					break
				}
			}
		}
		if !ok || owned[key] {
			orphans = append(orphans, name)
			continue
		}
		owned[key] = true
	}
	return orphans
}

// WriteFile writes data to path on fsys and syncs it, replacing what was
// there: for tests that plant or damage a store's files.
func WriteFile(tb testing.TB, fsys vfs.FS, path string, data []byte) {
	tb.Helper()
	f, err := fsys.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	// pebble's MemFS scribbles over what it was given to write, in race
	// builds: the caller's bytes are not its to keep.
	if _, err := f.Write(slices.Clone(data)); err != nil {
		tb.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		tb.Fatal(err)
	}
}

// ReadFile returns the contents of path on fsys.
func ReadFile(tb testing.TB, fsys vfs.FS, path string) []byte {
	tb.Helper()
	f, err := fsys.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// Contents returns every key of s with its value, read by Keys and Get;
// any error fails tb, with what names the moment of the read.
func Contents(tb testing.TB, s *dirstore.Store, what string) map[string]string {
	tb.Helper()
	got := map[string]string{}
	for k, err := range s.Keys() {
		if err != nil {
			tb.Fatalf("%s: Keys: %v", what, err)
		}
		v, err := s.Get(k)
		if err != nil {
			tb.Fatalf("%s: Get(%.20q): %v", what, k, err)
		}
		got[k] = string(v)
	}
	return got
}
