package dirstore_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

// TestTamperPlanted plants what is not a regular file under values' names:
// every way of reading such a key, and Verify, report ErrCorrupt, without
// following a link or blocking on a FIFO (the CLI's exit codes are tested
// in cmd/dirstore/tamper_test.go).
func TestTamperPlanted(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir() + "/outside"
	plant := map[string]func(p string) error{
		"symlink": func(p string) error {
			if err := os.WriteFile(outside, []byte("value of symlink"), 0o600); err != nil {
				return err
			}
			return os.Symlink(outside, p)
		},
		"fifo":      func(p string) error { return syscall.Mkfifo(p, 0o600) },
		"directory": func(p string) error { return os.Mkdir(p, 0o700) },
	}
	s := storetest.Open(t, dir, nil, storetest.LeftDamaged("files are planted under values' names"))
	for k := range plant {
		mustSet(t, s, k, []byte("value of "+k))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for k, fn := range plant {
		p := valueFileOf(t, dir, k)
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := fn(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, mmap := range []bool{false, true} {
		s, err := dirstore.Open(dir, &dirstore.Options{ReadOnly: true, Mmap: mmap})
		if err != nil {
			t.Fatal(err)
		}
		for k := range plant {
			err := within(t, "a read of "+k, func() error {
				var errs []error
				_, err := s.Get(k)
				errs = append(errs, fmt.Errorf("Get: %w", err))
				err = s.View(k, func([]byte) error { return nil })
				errs = append(errs, fmt.Errorf("View: %w", err))
				st, err := s.OpenStream(k, nil)
				if err == nil {
					_, err = io.ReadAll(st)
					st.Close()
				}
				errs = append(errs, fmt.Errorf("OpenStream: %w", err))
				for _, err := range errs {
					if !errors.Is(err, dirstore.ErrCorrupt) {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Errorf("mmap=%v, %s: %v, want ErrCorrupt", mmap, k, err)
			}
		}
		bad := 0
		if err := s.Verify(func(k string, err error) bool {
			if errors.Is(err, dirstore.ErrCorrupt) {
				bad++
			} else {
				t.Errorf("Verify(%q): %v, want ErrCorrupt", k, err)
			}
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if bad != len(plant) {
			t.Errorf("Verify found %d corrupt values, want %d", bad, len(plant))
		}
		s.Close()
	}
}

// valueFileOf returns the path of key's one value file.
func valueFileOf(t *testing.T, dir, key string) string {
	t.Helper()
	var found []string
	for _, n := range valueFiles(t, dir) {
		if len(n) > len(key) && n[:len(key)+1] == key+"#" {
			found = append(found, n)
		}
	}
	if len(found) != 1 {
		t.Fatalf("value files of %q: %q", key, found)
	}
	return dir + "/" + found[0]
}
