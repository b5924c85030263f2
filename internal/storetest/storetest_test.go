package storetest_test

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/escape"
	"github.com/dirstore/dirstore/internal/storetest"
)

// recorder collects what Check reports instead of failing the test.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) reported(t *testing.T, want ...string) {
	t.Helper()
	if len(r.errs) != len(want) {
		t.Fatalf("Check reported %d problems, want %d:\n%s", len(r.errs), len(want), strings.Join(r.errs, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(r.errs[i], w) {
			t.Errorf("report %d = %q, want it to mention %q", i, r.errs[i], w)
		}
	}
}

func open(t *testing.T, fsys vfs.FS) *dirstore.Store {
	t.Helper()
	s, err := dirstore.Open("/s", &dirstore.Options{FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func set(t *testing.T, s *dirstore.Store, key, value string) {
	t.Helper()
	if err := s.Set(key, []byte(value)); err != nil {
		t.Fatal(err)
	}
}

func plant(t *testing.T, fsys vfs.FS, name, content string) {
	t.Helper()
	storetest.WriteFile(t, fsys, "/s/"+name, []byte(content))
}

func TestCheckPassesAHealthyStore(t *testing.T) {
	for _, closed := range []bool{false, true} {
		t.Run(fmt.Sprintf("closedByTest=%v", closed), func(t *testing.T) {
			mem := vfs.NewMem()
			s := open(t, mem)
			set(t, s, "a", "1")
			set(t, s, "a", "2") // the first file is superseded
			set(t, s, strings.Repeat("long", 100), "3")
			set(t, s, strings.Repeat("long", 101), "4") // the same cut name, another version
			set(t, s, "gone", "5")
			if err := s.Delete("gone"); err != nil {
				t.Fatal(err)
			}
			plant(t, mem, "notes.txt", "not a value file")
			if closed {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
			r := &recorder{TB: t}
			storetest.Check(r, s, mem)
			r.reported(t)
		})
	}
}

func TestCheckFindsOrphans(t *testing.T) {
	for _, closed := range []bool{false, true} {
		t.Run(fmt.Sprintf("closedByTest=%v", closed), func(t *testing.T) {
			mem := vfs.NewMem()
			s := open(t, mem)
			set(t, s, "a", "1")
			plant(t, mem, escape.Name("a", 99), "a second file of a")
			plant(t, mem, escape.Name("nokey", 7), "a file of no key")
			if closed {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
			r := &recorder{TB: t}
			storetest.Check(r, s, mem)
			r.reported(t, "orphan file a#99", "orphan file nokey#7")
		})
	}
}

func TestCheckFindsDamage(t *testing.T) {
	for _, closed := range []bool{false, true} {
		t.Run(fmt.Sprintf("closedByTest=%v", closed), func(t *testing.T) {
			mem := vfs.NewMem()
			s := open(t, mem)
			set(t, s, "a", "12345")
			set(t, s, "b", "fine")
			names, _ := mem.List("/s")
			for _, n := range names {
				if strings.HasPrefix(n, "a#") {
					plant(t, mem, n, "54321")
				}
			}
			if closed {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
			r := &recorder{TB: t}
			storetest.Check(r, s, mem)
			r.reported(t, `key "a"`)
			if !strings.Contains(r.errs[0], "corrupt") {
				t.Errorf("report %q does not say corrupt", r.errs[0])
			}
		})
	}
}

func TestCheckRequiresANilClose(t *testing.T) {
	var failSync atomic.Bool
	fsys := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if failSync.Load() && op.Kind == errorfs.OpFileSync {
			return errors.New("injected sync failure")
		}
		return nil
	}))
	s, err := dirstore.Open("/s", &dirstore.Options{FS: fsys, NoSync: true, WriteBuffer: -1})
	if err != nil {
		t.Fatal(err)
	}
	set(t, s, "a", "1")
	failSync.Store(true)
	r := &recorder{TB: t}
	storetest.Check(r, s, fsys)
	r.reported(t, "injected sync failure")
}

// TestLeftDamaged: the opt-out only closes the store, which a damaged one
// still does.
func TestLeftDamaged(t *testing.T) {
	mem := vfs.NewMem()
	t.Run("damage", func(t *testing.T) {
		s := storetest.Open(t, "/s", &dirstore.Options{FS: mem}, storetest.LeftDamaged("a file of no key is planted"))
		set(t, s, "a", "12345")
		plant(t, mem, escape.Name("nokey", 7), "a file of no key")
	})
	s := open(t, mem) // the lock was released
	defer s.Close()
	if v, err := s.Get("a"); err != nil || string(v) != "12345" {
		t.Fatalf("Get = %q, %v", v, err)
	}
}
