package manifest

import (
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Undo records round-trip through a batch, with and without More and Alone,
// a single one is deleted, and a record with bytes after its entries or
// unknown flags is corrupt.
func TestUndoRecords(t *testing.T) {
	db, err := Open("/m", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e1, e2 := Entry{Version: 1, Size: 3, CRC: 7}, Entry{Version: 9, Size: 5, CRC: 8}
	want := []Undo{
		{Seq: 4, Key: "a", New: &e1},
		{Seq: 5, Key: "b", Old: &e1, New: &e2, More: true},
		{Seq: 6, Key: "", Old: &e2, More: true},
		{Seq: 7, Key: "c"},
		{Seq: 8, Key: "d", Old: &e2, New: &e1, Alone: true},
		{Seq: 9, Key: "e", New: &e2},
	}
	b := db.NewBatch()
	for i := range want {
		b.PutUndo(&want[i])
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	b = db.NewBatch()
	b.DeleteUndo(9)
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	var got []Undo
	for u, err := range db.Undos(5) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, u)
	}
	if len(got) != 4 {
		t.Fatalf("Undos(5) yielded %d records, want 4 (9 was deleted)", len(got))
	}
	for i, u := range got {
		w := want[i+1]
		if u.Seq != w.Seq || u.Key != w.Key || u.More != w.More || u.Alone != w.Alone || !sameEntry(u.Old, w.Old) || !sameEntry(u.New, w.New) {
			t.Errorf("record %d = %+v, want %+v", i, u, w)
		}
	}
	bad := append(want[3].encode(), 1, 1)
	if _, err := decodeUndo(7, bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a record with trailing bytes decodes: %v", err)
	}
	for _, flags := range []byte{0, 4, 0x80} {
		if _, err := decodeUndo(7, append(want[3].encode(), flags)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("a record with flags %#x decodes: %v", flags, err)
		}
	}
}

func sameEntry(a, b *Entry) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}
