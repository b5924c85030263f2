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
