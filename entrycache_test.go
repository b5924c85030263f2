package dirstore_test

import (
	"fmt"
	"testing"

	"github.com/dirstore/dirstore"
)

// TestEntryCacheAdmission checks who gets into the entry cache: a key just
// written does, a key read once does not, and a key read again soon after
// does, so that reads spread over many keys do not churn the cache.
func TestEntryCacheAdmission(t *testing.T) {
	const size, keys = 1000, 4000
	dir := t.TempDir()
	s, err := dirstore.Open(dir, &dirstore.Options{NoSync: true, EntryCache: size})
	if err != nil {
		t.Fatal(err)
	}
	key := func(i int) string { return fmt.Sprintf("key-%05d", i) }
	for i := range keys {
		mustSet(t, s, key(i), []byte(key(i)))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = dirstore.Open(dir, &dirstore.Options{EntryCache: size})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Every key read once, each a miss: none is admitted.
	for i := range keys {
		if got := string(mustGet(t, s, key(i))); got != key(i) {
			t.Fatalf("Get(%q) = %q", key(i), got)
		}
	}
	if n := dirstore.EntryCacheLen(s); n != 0 {
		t.Fatalf("after one Get of each of %d keys the entry cache holds %d entries, want 0", keys, n)
	}
	// A hundred of them read again at once: admitted. A ghost can be lost
	// to a later key that lands in its bucket (over one of four slots at
	// random), so allow a few to need a third read.
	for i := range 100 {
		mustGet(t, s, key(keys-1-i))
	}
	if n := dirstore.EntryCacheLen(s); n < 90 || n > 100 {
		t.Fatalf("after a second Get of 100 keys just read the entry cache holds %d entries, want 90 to 100", n)
	}
	for range 3 {
		for i := range 100 {
			mustGet(t, s, key(keys-1-i))
		}
	}
	if n := dirstore.EntryCacheLen(s); n != 100 {
		t.Fatalf("after four Gets of 100 keys the entry cache holds %d entries, want 100", n)
	}
	// A key written is cached at once, and a read sees its new value.
	mustSet(t, s, key(0), []byte("new"))
	if n := dirstore.EntryCacheLen(s); n != 101 {
		t.Fatalf("after a Set the entry cache holds %d entries, want 101", n)
	}
	if got := string(mustGet(t, s, key(0))); got != "new" {
		t.Fatalf("Get(%q) after Set = %q, want %q", key(0), got, "new")
	}
}
