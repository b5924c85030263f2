package dirstore_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

// TestRecencyRebuilt: a store opened without a budget writes no recency
// records, and the next Open with one evicts in the order of the writes of
// both sessions, taken from the value files. The seeded bug that leaves
// the mark of up-to-date records at the Open without a budget is caught
// here: the keys rewritten then would go first, by their older records.
func TestRecencyRebuilt(t *testing.T) {
	dir := t.TempDir()
	v := bytes.Repeat([]byte("v"), 100)
	set := func(s *dirstore.Store, keys ...string) {
		t.Helper()
		for _, k := range keys {
			// Apart by more than a file system's coarsest timestamp tick.
			time.Sleep(10 * time.Millisecond)
			if err := s.Set(k, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := storetest.Open(t, dir, &dirstore.Options{MaxBytes: 1 << 20})
	set(s, "a", "b", "c", "d", "e")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = storetest.Open(t, dir, nil)
	set(s, "a", "b", "f")
	for _, r := range s.AccessRecords() {
		if strings.HasPrefix(r, "f@") {
			t.Errorf("a store without a budget recorded the recency of a new key: %q", s.AccessRecords())
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Room for three values: Open evicts the three written first.
	var log evictLog
	s = storetest.Open(t, dir, &dirstore.Options{MaxBytes: 300, OnEvict: log.onEvict})
	if got, want := log.take(), []string{"c", "d", "e"}; !slices.Equal(got, want) {
		t.Errorf("Open with a budget evicted %q, want %q (write order: c d e a b f)", got, want)
	}
	var keys []string
	for k, err := range s.Keys() {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if want := []string{"a", "b", "f"}; !slices.Equal(keys, want) {
		t.Errorf("keys left %q, want %q", keys, want)
	}
	// Now kept up to date: a read makes a the most recently used.
	if _, err := s.Get("a"); err != nil {
		t.Fatal(err)
	}
	if err := s.FlushRecency(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Trim(200); err != nil {
		t.Fatal(err)
	}
	if got, want := log.take(), []string{"b"}; !slices.Equal(got, want) {
		t.Errorf("Trim evicted %q, want %q", got, want)
	}
}

// TestRecencyOfAdoptedFiles: the files of a zict directory, adopted with no
// write times of their own, are evicted in the order of their files'
// modification times.
func TestRecencyOfAdoptedFiles(t *testing.T) {
	dir := t.TempDir()
	base := time.Now().Add(-time.Hour)
	for i, k := range []string{"c", "a", "d", "b"} { // oldest first
		p := filepath.Join(dir, k)
		if err := os.WriteFile(p, bytes.Repeat([]byte(k), 100), 0o600); err != nil {
			t.Fatal(err)
		}
		mt := base.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	var log evictLog
	s := storetest.Open(t, dir, &dirstore.Options{MaxBytes: 100, OnEvict: log.onEvict})
	if got, want := log.take(), []string{"c", "a", "d"}; !slices.Equal(got, want) {
		t.Errorf("Open evicted %q, want %q", got, want)
	}
	if s.Len() != 1 {
		t.Errorf("Len = %d, want 1", s.Len())
	}
}
