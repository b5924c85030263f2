package dirstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/escape"
	"github.com/dirstore/dirstore/internal/storetest"
)

// osFS is the operating system's file system under another name: a Store on
// it uses its portable file code (internal/datadir's vfsDir) instead of the
// descriptor-based one it uses on vfs.Default.
type osFS struct{ vfs.FS }

// hostileRoot makes the scene of the hostile tests: root/store (not created),
// with a sibling directory holding a secret, and a file next to them.
func hostileRoot(t testing.TB) (root, store string) {
	t.Helper()
	// In memory where possible: fuzzing makes many stores, and which file
	// system holds them does not matter to where a path leads.
	root = shmTempDir(t)
	for _, d := range []string{"sibling", "sibling/sub"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string]string{
		"victim":             "victim: must not change",
		"sibling/secret":     "secret: must not be read",
		"sibling/sub/secret": "deep secret",
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return root, filepath.Join(root, "store")
}

// treeState describes every entry under dir, except those under skip: type,
// permissions, and content or link target.
func treeState(t testing.TB, dir, skip string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == skip {
			return filepath.SkipDir
		}
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		desc := info.Mode().String()
		switch {
		case info.Mode().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			desc += " " + string(b)
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			desc += " -> " + target
		}
		rel, _ := filepath.Rel(dir, path)
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkStoreDirOwn checks that every entry of the store directory, other
// than those in foreign, is .dirstore or a regular value file of the store's
// naming, and returns how many value files there are.
func checkStoreDirOwn(t testing.TB, dir string, foreign map[string]string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		name := e.Name()
		if _, ok := foreign[name]; ok {
			continue
		}
		if name == ".dirstore" {
			if !e.IsDir() {
				t.Fatalf(".dirstore is %v, not a directory", e.Type())
			}
			continue
		}
		if _, _, ok := escape.Parse(name); !ok || !e.Type().IsRegular() {
			t.Fatalf("the store directory holds %q (%v), not of the store's naming", name, e.Type())
		}
		n++
	}
	return n
}

// FuzzHostileKeys sets, reads, lists and deletes two fuzzed keys (and
// reopens the store in between, cleanly or after a crash-like copy) and
// checks that no key reaches outside the store directory: the directory
// around the store and a sibling directory stay exactly as they were, every
// entry the store creates is a regular file of its own naming (or
// .dirstore), each key reads back its own value (never another key's, never
// a file outside), and Keys lists exactly the keys set. Both file code paths
// are covered: the descriptor-based one (vfs.Default) and the portable one
// (any other vfs.FS, here the OS's under another name).
func FuzzHostileKeys(f *testing.F) {
	long := strings.Repeat("a", 300)
	for i, k := range [][2]string{
		{"../victim", "../sibling/secret"},
		{"..", "."},
		{"", "/"},
		{"/etc/passwd", "sibling/secret"},
		{".dirstore", ".dirstore/LOCK"},
		{".dirstore/manifest/CURRENT", "../store/.dirstore/LOCK"},
		{strings.Repeat("../", 100) + "victim", `..\..\victim`},
		{"a\x00b", "a"},
		{"k#1", "k"},
		{"#", "%"},
		{"%2F..%2Fvictim", "%2e%2e"},
		{"\xff\xfe", "日本"},
		{long + "1", long + "2"}, // names cut at 255 bytes: the same prefix
		{strings.Repeat("/", 200), strings.Repeat("%", 100)},
		{strings.Repeat("é", 200), strings.Repeat("é", 201)},
		{"x", "x"},
	} {
		// mode bits: 1 the portable file code, 2 crash-like reopens, 4 and
		// 8 the kind of Set, 16 NoSync.
		for j, mode := range []uint8{0, 0b00011, 0b11110, 0b10101} {
			if i < 3 || i%4 == j {
				f.Add(k[0], k[1], mode)
			}
		}
	}
	f.Fuzz(func(t *testing.T, k1, k2 string, mode uint8) {
		if len(k1) > dirstore.MaxKeyLen || len(k2) > dirstore.MaxKeyLen {
			t.Skip()
		}
		root, dir := hostileRoot(t)
		before := treeState(t, root, dir)
		opts := &dirstore.Options{NoSync: mode&16 != 0}
		if mode&1 != 0 {
			opts.FS = osFS{vfs.Default}
		}
		s, err := dirstore.Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { s.Close() }()
		model := map[string][]byte{}
		check := func(when string) {
			t.Helper()
			if got := treeState(t, root, dir); !maps.Equal(got, before) {
				t.Fatalf("%s: the directories around the store changed:\n got %q\nwant %q", when, got, before)
			}
			checkStoreDirOwn(t, dir, nil)
			for _, k := range []string{k1, k2} {
				got, err := s.Get(k)
				want, ok := model[k]
				if ok && (err != nil || !bytes.Equal(got, want)) || !ok && !errors.Is(err, dirstore.ErrNotFound) {
					t.Fatalf("%s: Get(%q) = %q, %v; want %q (present: %t)", when, k, got, err, want, ok)
				}
				if ok {
					st, err := s.Open(k)
					if err != nil {
						t.Fatalf("%s: Open(%q): %v", when, k, err)
					}
					got, err := io.ReadAll(st)
					st.Close()
					if err != nil || !bytes.Equal(got, want) {
						t.Fatalf("%s: reading Open(%q) = %q, %v; want %q", when, k, got, err, want)
					}
				}
			}
			var listed, want []string
			for k, err := range s.Keys() {
				if err != nil {
					t.Fatalf("%s: Keys: %v", when, err)
				}
				listed = append(listed, k)
			}
			for k := range model {
				want = append(want, k)
			}
			slices.Sort(want)
			if !slices.Equal(listed, want) {
				t.Fatalf("%s: Keys = %q, want %q", when, listed, want)
			}
		}
		set := func(k string, v []byte) {
			t.Helper()
			var err error
			switch mode >> 2 & 3 {
			case 0:
				err = s.Set(k, v)
			case 1:
				err = s.SetBuffers(k, v[:1], v[1:])
			default:
				_, err = s.SetFrom(k, bytes.NewReader(v))
			}
			if err != nil {
				t.Fatalf("Set(%q): %v", k, err)
			}
			model[k] = v
		}
		reopen := func() {
			t.Helper()
			if mode&2 == 0 {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if s, err = dirstore.Open(dir, opts); err != nil {
					t.Fatalf("reopen: %v", err)
				}
				return
			}
			// As a crash would leave it: a copy taken while open.
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			copyTree(t, dir, dir+".copy")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(dir+".copy", dir); err != nil {
				t.Fatal(err)
			}
			if s, err = dirstore.Open(dir, opts); err != nil {
				t.Fatalf("reopen after a crash: %v", err)
			}
		}
		set(k1, []byte("value one of "+k1))
		check("after Set(k1)")
		set(k2, []byte("value two of "+k2))
		check("after Set(k2)")
		reopen()
		check("after reopen")
		set(k1, []byte("value three"))
		if err := s.Delete(k2); err != nil {
			t.Fatalf("Delete(%q): %v", k2, err)
		}
		delete(model, k2)
		check("after Delete(k2)")
		reopen()
		check("after the second reopen")
		if err := s.Delete(k1); err != nil && !(k1 == k2 && errors.Is(err, dirstore.ErrNotFound)) {
			t.Fatalf("Delete(%q): %v", k1, err)
		}
		delete(model, k1)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if s, err = dirstore.Open(dir, opts); err != nil {
			t.Fatal(err)
		}
		check("at the end")
		if n := checkStoreDirOwn(t, dir, nil); n != 0 {
			t.Fatalf("%d value files left after every key was deleted and the store closed", n)
		}
	})
}

// plant puts a hostile entry of the given kind at path, aimed at the
// outside file target (and its directory).
func plant(t testing.TB, kind, path, target string) {
	t.Helper()
	var err error
	switch kind {
	case "symlink":
		err = os.Symlink(target, path)
	case "symlink-dir":
		err = os.Symlink(filepath.Dir(target), path)
	case "symlink-dangling":
		err = os.Symlink(target+".new", path)
	case "symlink-relative":
		rel, _ := filepath.Rel(filepath.Dir(path), target)
		err = os.Symlink(rel, path)
	case "hardlink":
		err = os.Link(target, path)
	case "fifo":
		err = syscall.Mkfifo(path, 0o600)
	case "dir":
		err = os.Mkdir(path, 0o700)
	default:
		panic(kind)
	}
	if err != nil {
		t.Fatalf("planting a %s at %s: %v", kind, path, err)
	}
}

var plantKinds = []string{"symlink", "symlink-dir", "symlink-dangling", "symlink-relative", "hardlink", "fifo", "dir"}

// withTimeout runs fn and fails the test if it does not return within d;
// unblock is then called repeatedly to release fn (a FIFO's reader, for
// example), which may block again and again.
func withTimeout(t testing.TB, what string, d time.Duration, unblock func(), fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
		return
	case <-time.After(d):
	}
	t.Errorf("%s: still blocked after %v", what, d)
	if unblock == nil {
		t.FailNow()
	}
	for {
		select {
		case <-done:
			return
		case <-time.After(10 * time.Millisecond):
			unblock()
		}
	}
}

// unblockFIFOs returns a function that opens every FIFO in dir for reading
// and writing and closes it at once, so that an open of one (for reading or
// for writing) blocked on it returns, wherever the store renamed it.
func unblockFIFOs(dir string) func() {
	return func() {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.Type()&fs.ModeNamedPipe != 0 {
				if f, err := os.OpenFile(filepath.Join(dir, e.Name()), os.O_RDWR|syscall.O_NONBLOCK, 0); err == nil {
					f.Close()
				}
			}
		}
	}
}

// TestHostilePlanted replaces a value's file with a symbolic link (to a
// secret file outside the store, to its directory, dangling, relative), a
// hard link to the secret, a FIFO or a directory, and checks that Get, View
// (with and without Mmap), Open and Verify return an error and never the
// secret, without blocking; that a Set and a Delete of the key work and
// leave the outside untouched; and the same with the entry planted under the
// name the key's next version will take. On both file code paths.
func TestHostilePlanted(t *testing.T) {
	for _, fsName := range []string{"default", "os-vfs"} {
		for _, kind := range plantKinds {
			t.Run("fs="+fsName+",kind="+kind, func(t *testing.T) {
				t.Parallel()
				root, dir := hostileRoot(t)
				secretPath := filepath.Join(root, "sibling", "secret")
				secret, _ := os.ReadFile(secretPath)
				opts := &dirstore.Options{}
				if fsName != "default" {
					opts.FS = osFS{vfs.Default}
				}
				s := storetest.Open(t, dir, opts, storetest.LeftDamaged("entries planted under value files' names"))
				before := treeState(t, root, dir)
				outsideSame := func(when string) {
					t.Helper()
					if got := treeState(t, root, dir); !maps.Equal(got, before) {
						t.Errorf("%s: outside the store changed:\n got %q\nwant %q", when, got, before)
					}
				}
				value := []byte("the value")
				mustSet(t, s, "k", value)
				path := currentFile(t, dir, "k")
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
				plant(t, kind, path, secretPath)
				var unblock func()
				if kind == "fifo" {
					unblock = unblockFIFOs(dir)
				}
				readsFail := func(s *dirstore.Store, how string) {
					t.Helper()
					got, err := s.Get("k")
					if err == nil || bytes.Contains(got, secret) {
						t.Errorf("%s: Get = %q, %v; want an error", how, got, err)
					}
					err = s.View("k", func(v []byte) error {
						if bytes.Contains(v, secret) {
							t.Errorf("%s: View saw the secret", how)
						}
						return nil
					})
					if err == nil {
						t.Errorf("%s: View = nil, want an error", how)
					}
					if st, err := s.Open("k"); err == nil {
						got, err := io.ReadAll(st)
						st.Close()
						if err == nil || bytes.Contains(got, secret) {
							t.Errorf("%s: reading Open = %q, %v; want an error", how, got, err)
						}
					}
					bad := 0
					if err := s.Verify(func(key string, err error) bool {
						if err != nil {
							bad++
						}
						return true
					}); err != nil || bad != 1 {
						t.Errorf("%s: Verify found %d bad values, %v; want 1", how, bad, err)
					}
				}
				withTimeout(t, "reads", 5*time.Second, unblock, func() { readsFail(s, "planted") })
				if fsName == "default" {
					// Mmap is the descriptor-based path's.
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
					ms := storetest.Open(t, dir, &dirstore.Options{Mmap: true}, storetest.LeftDamaged("entries planted under value files' names"))
					withTimeout(t, "reads with Mmap", 5*time.Second, unblock, func() { readsFail(ms, "planted, Mmap") })
					if err := ms.Close(); err != nil {
						t.Fatal(err)
					}
					s = storetest.Open(t, dir, opts, storetest.LeftDamaged("entries planted under value files' names"))
				}
				outsideSame("after the reads")

				// A Set supersedes the planted entry, which the store may
				// then recycle for later values: Sets of other keys must
				// neither write through it nor block on it.
				mustSet(t, s, "k", []byte("new"))
				if got := mustGet(t, s, "k"); string(got) != "new" {
					t.Errorf("Get after Set = %q", got)
				}
				setOthers := func(when string) {
					t.Helper()
					withTimeout(t, "Sets after "+when, 5*time.Second, unblock, func() {
						for i := range 4 {
							k := fmt.Sprintf("o%d", i)
							if err := s.Set(k, []byte("other "+k)); err != nil {
								t.Errorf("Set(%q) after %s: %v", k, when, err)
							}
						}
					})
					for i := range 4 {
						k := fmt.Sprintf("o%d", i)
						if got, err := s.Get(k); err != nil || string(got) != "other "+k {
							t.Errorf("Get(%q) after %s = %q, %v", k, when, got, err)
						}
					}
					outsideSame(when)
				}
				setOthers("a Set over the planted entry")
				if err := s.Sync(); err != nil {
					t.Fatal(err)
				}
				outsideSame("after Sync")

				// The same through a Delete of the key whose file was replaced.
				path = currentFile(t, dir, "k")
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
				plant(t, kind, path, secretPath)
				if err := s.Delete("k"); err != nil {
					t.Fatal(err)
				}
				setOthers("a Delete of the planted entry")
				if err := s.Sync(); err != nil {
					t.Fatal(err)
				}
				outsideSame("after Delete")

				// Planted under the name the next version takes.
				mustSet(t, s, "k", value)
				_, v, _ := escape.Parse(filepath.Base(currentFile(t, dir, "k")))
				next := filepath.Join(dir, escape.Name("k", v+1))
				plant(t, kind, next, secretPath)
				withTimeout(t, "Set over a planted next version", 5*time.Second, unblock, func() {
					if err := s.Set("k", []byte("newer")); err == nil {
						if got := mustGet(t, s, "k"); string(got) != "newer" {
							t.Errorf("Get after Set = %q", got)
						}
					} else if got := mustGet(t, s, "k"); !bytes.Equal(got, value) {
						// Failing is allowed; changing the value is not.
						t.Errorf("Set failed (%v), and Get = %q", err, got)
					}
				})
				mustSet(t, s, "k", []byte("newest"))
				if got := mustGet(t, s, "k"); string(got) != "newest" {
					t.Errorf("Get = %q", got)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = storetest.Open(t, dir, opts, storetest.LeftDamaged("entries planted under value files' names"))
				if got := mustGet(t, s, "k"); string(got) != "newest" {
					t.Errorf("Get after reopen = %q", got)
				}
				outsideSame("at the end")
			})
		}
	}
}

// foreignEntries are dropped into a store's directory: none is of the
// store's naming (quote(key)#version), though several are of zict's, which
// only the first Open of a directory adopts.
var foreignEntries = map[string]string{
	"notes.txt":              "file",
	"README":                 "file",
	".hidden":                "file",
	"x#":                     "file",
	"x#01":                   "file",
	"x#-1":                   "file",
	"x#1#2":                  "file",
	"x#1.tmp":                "file",
	"%zz#3":                  "file",
	"k%2f#3":                 "file", // lowercase escape: not Quote's
	"a b#3":                  "file",
	"k#99999999999999999999": "file", // overflows a version
	"\xff#5":                 "file",
	"sub.d":                  "dir",
	"link":                   "symlink",
	"pipe":                   "fifo",
}

func dropForeign(t testing.TB, dir string) {
	t.Helper()
	for name, kind := range foreignEntries {
		p := filepath.Join(dir, name)
		var err error
		switch kind {
		case "file":
			err = os.WriteFile(p, []byte("foreign "+name), 0o600)
		case "dir":
			if err = os.Mkdir(p, 0o700); err == nil {
				err = os.WriteFile(filepath.Join(p, "inner#1"), []byte("inner"), 0o600)
			}
		case "symlink":
			err = os.Symlink("../victim", p)
		case "fifo":
			err = syscall.Mkfifo(p, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestHostileForeignFiles drops files whose names are not of the store's
// naming into its directory (files, a directory, a symbolic link, a FIFO)
// and checks that they are neither adopted as keys nor touched, across
// operations, a clean reopen, a reopen of a copy taken while the store was
// open, and a reopen after a writer process was killed with SIGKILL.
func TestHostileForeignFiles(t *testing.T) {
	root, dir := hostileRoot(t)
	s := storetest.Open(t, dir, nil)
	mustSet(t, s, "kept", []byte("kept value"))
	dropForeign(t, dir)
	want := treeState(t, dir, filepath.Join(dir, ".dirstore"))
	for name := range want {
		if _, _, ok := escape.Parse(name); ok {
			delete(want, name) // the store's own file
		}
	}
	check := func(s *dirstore.Store, when string, keys []string) {
		t.Helper()
		got := treeState(t, dir, filepath.Join(dir, ".dirstore"))
		for name, desc := range want {
			if got[name] != desc {
				t.Errorf("%s: %q is %q, want %q", when, name, got[name], desc)
			}
		}
		checkStoreDirOwn(t, dir, foreignEntries)
		var listed []string
		for k, err := range s.Keys() {
			if err != nil {
				t.Fatal(err)
			}
			listed = append(listed, k)
		}
		if !slices.Equal(listed, keys) {
			t.Errorf("%s: Keys = %q, want %q", when, listed, keys)
		}
		if s.Len() != len(keys) {
			t.Errorf("%s: Len = %d, want %d", when, s.Len(), len(keys))
		}
		for name := range foreignEntries {
			if _, err := s.Get(name); !errors.Is(err, dirstore.ErrNotFound) {
				t.Errorf("%s: Get(%q) = %v, want not found", when, name, err)
			}
		}
		if err := s.Verify(func(key string, err error) bool {
			if err != nil {
				t.Errorf("%s: Verify: %v", when, err)
			}
			return true
		}); err != nil {
			t.Fatal(err)
		}
	}
	mustSet(t, s, "kept", []byte("kept value 2"))
	mustSet(t, s, "other", []byte("x"))
	if err := s.Delete("other"); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	check(s, "open", []string{"kept"})

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = storetest.Open(t, dir, nil)
	check(s, "clean reopen", []string{"kept"})

	// A copy taken while open: its Open recovers (and removes orphans of
	// the store's naming, of which there is one).
	mustSet(t, s, "kept", []byte("kept value 3"))
	if err := os.WriteFile(filepath.Join(dir, escape.Name("orphan", 1<<40)), []byte("orphan"), 0o600); err != nil {
		t.Fatal(err)
	}
	copyDir := filepath.Join(root, "copy")
	copyTree(t, dir, copyDir)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for name, kind := range foreignEntries {
		if kind == "fifo" { // copyTree does not copy FIFOs
			if err := syscall.Mkfifo(filepath.Join(copyDir, name), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(copyDir, dir); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	s = storetest.Open(t, dir, &dirstore.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	check(s, "reopen after a crash (copy)", []string{"kept"})
	if _, err := os.Lstat(filepath.Join(dir, escape.Name("orphan", 1<<40))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the orphan of the store's naming was not removed by recovery (%v); it said %q", err, logs.String())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A writer killed by SIGKILL.
	for i := range 3 {
		recs := runKillChild(t, dir, i == 1, uint64(i), uint64(i+1)<<32, 2, true, 30*time.Millisecond)
		s = storetest.Open(t, dir, nil)
		var keys []string
		for k, err := range s.Keys() {
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k)
		}
		check(s, fmt.Sprintf("reopen after kill %d (%d operations)", i, len(recs)), keys)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestHostileDirectoryNamedLikeValue drops a directory whose name is of
// the store's naming (an unknown key's version) into the store's directory.
// Recovery removes unknown files of that naming; a directory is not one,
// and must not make Open fail.
func TestHostileDirectoryNamedLikeValue(t *testing.T) {
	root, dir := hostileRoot(t)
	s := storetest.Open(t, dir, nil)
	mustSet(t, s, "k", []byte("v"))
	name := escape.Name("zz", 77)
	if err := os.Mkdir(filepath.Join(dir, name), 0o700); err != nil {
		t.Fatal(err)
	}
	copyDir := filepath.Join(root, "copy")
	copyTree(t, dir, copyDir) // as a crash would leave it: Open recovers
	s2, err := dirstore.Open(copyDir, nil)
	if err != nil {
		t.Fatalf("Open after a crash with a directory named %q in the store: %v", name, err)
	}
	defer s2.Close()
	if got := mustGet(t, s2, "k"); string(got) != "v" {
		t.Errorf("Get = %q", got)
	}
}

// TestHostileAdoptSymlink plants symbolic links with zict's naming (one to
// a secret file outside, one versioned like zict 3's) in a directory before
// its first Open, which adopts zict's files: links must not be adopted (nor
// read), only the real file.
func TestHostileAdoptSymlink(t *testing.T) {
	for _, fsName := range []string{"default", "os-vfs"} {
		t.Run("fs="+fsName, func(t *testing.T) {
			root, dir := hostileRoot(t)
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			secretPath := filepath.Join(root, "sibling", "secret")
			if err := os.WriteFile(filepath.Join(dir, "real"), []byte("real value"), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"secretlink", "versioned#3"} {
				if err := os.Symlink(secretPath, filepath.Join(dir, name)); err != nil {
					t.Fatal(err)
				}
			}
			before := treeState(t, root, "")
			opts := &dirstore.Options{}
			if fsName != "default" {
				opts.FS = osFS{vfs.Default}
			}
			s := storetest.Open(t, dir, opts, storetest.LeftDamaged("a symbolic link planted under a value file's name"))
			if got := keys(t, s); !slices.Equal(got, []string{"real"}) {
				t.Errorf("first Open adopted %q, want only \"real\"", got)
			}
			for _, k := range []string{"secretlink", "versioned"} {
				if v, err := s.Get(k); !errors.Is(err, dirstore.ErrNotFound) {
					t.Errorf("Get(%q) = %q, %v; want not found", k, v, err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			after := treeState(t, root, "")
			for name, desc := range before {
				if filepath.Dir(name) != "store" && after[name] != desc {
					t.Errorf("%q changed: %q, was %q", name, after[name], desc)
				}
			}
		})
	}
}

// TestHostileRecycled is the minimal form of what TestHostilePlanted finds
// in the recycling of superseded files: an entry planted under a value's
// name becomes, once the key is overwritten, a spare that the next Set of
// any key renames and opens for writing. A hard link to a file outside must
// not be written through, a FIFO must not block the Set, and a directory
// must not make it fail.
func TestHostileRecycled(t *testing.T) {
	for _, kind := range []string{"hardlink", "fifo", "dir"} {
		t.Run("kind="+kind, func(t *testing.T) {
			root, dir := hostileRoot(t)
			outside := filepath.Join(root, "victim")
			s := storetest.Open(t, dir, nil, storetest.LeftDamaged("an entry planted under a value file's name"))
			mustSet(t, s, "k", []byte("v1"))
			path := currentFile(t, dir, "k")
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			plant(t, kind, path, outside)
			mustSet(t, s, "k", []byte("v2")) // the planted entry is superseded
			withTimeout(t, "Set", 5*time.Second, unblockFIFOs(dir), func() {
				if err := s.Set("other", []byte("written through")); err != nil {
					t.Errorf("Set(\"other\"): %v", err)
				}
			})
			if b, _ := os.ReadFile(outside); string(b) != "victim: must not change" {
				t.Errorf("the file outside the store now holds %q", b)
			}
		})
	}
}
