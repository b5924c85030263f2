package manifest

import (
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// A Scanner walks one prefix in key order and skips ahead with SeekGE.
func TestScanner(t *testing.T) {
	db, err := Open("/m", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b := db.NewBatch()
	for i, k := range []string{"a", "d/1", "d/2", "d/3", "d/x/1", "d/y", "e"} {
		b.Put(k, Entry{Version: uint64(i + 1)})
	}
	b.SetMeta("d/meta", nil) // another prefix of the key space
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	sc, err := db.Scan("d/")
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	var got []string
	for ok := sc.Next(); ok; {
		e, err := sc.Entry()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, sc.Key())
		if sc.Key() == "d/2" && e.Version == 3 {
			ok = sc.SeekGE("d/x0") // past d/3 and d/x/
		} else {
			ok = sc.Next()
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"d/1", "d/2", "d/y"}; !slices.Equal(got, want) {
		t.Fatalf("scan = %q, want %q", got, want)
	}
	if sc.SeekGE("d/") != true || sc.Key() != "d/1" {
		t.Fatalf("SeekGE back to the start: %q", sc.Key())
	}
	if sc.SeekGE("e") {
		t.Fatalf("SeekGE past the prefix found %q", sc.Key())
	}
}

// Keys lists the keys of one prefix in key order, and only keys: not the
// records of the other prefixes (meta, undo, recency, pins), nor deleted keys.
func TestKeys(t *testing.T) {
	db, err := Open("/m", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b := db.NewBatch()
	for i, k := range []string{"e", "d/2", "a", "d/1", "d/x/1", "d/gone"} {
		b.Put(k, Entry{Version: uint64(i + 1)})
		b.SetRecency(k, 0, false, int64(i))
		b.Pin(k)
	}
	b.SetMeta("d/meta", nil)
	b.PutUndo(&Undo{Seq: 7, Key: "d/0"})
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	b = db.NewBatch()
	b.Delete("d/gone")
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"a", "d/1", "d/2", "d/x/1", "e"}},
		{"d/", []string{"d/1", "d/2", "d/x/1"}},
		{"d/x", []string{"d/x/1"}},
		{"f", nil},
	} {
		var got []string
		for k, err := range db.Keys(c.prefix) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, k)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("Keys(%q) = %q, want %q", c.prefix, got, c.want)
		}
	}
	// Stopping early stops the iteration.
	n := 0
	for range db.Keys("") {
		n++
		break
	}
	if n != 1 {
		t.Errorf("break after the first key: %d keys yielded", n)
	}
}
