package manifest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Recency records and the access-order index: their encoding is pinned,
// the index lists keys least recently used first, and a key's records
// move and go together.
func TestRecencyRecords(t *testing.T) {
	db, err := Open("/m", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b := db.NewBatch()
	b.SetRecency("b", 0, false, 300)
	b.SetRecency("a", 0, false, 300)
	b.SetRecency("c\x00", 0, false, 100)
	b.SetRecency("", 0, false, 200)
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	accesses := func(from int64) []string {
		var out []string
		for a, err := range db.Accesses(from) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%q@%d", a.Key, a.Time))
		}
		return out
	}
	if got, want := accesses(0), []string{`"c\x00"@100`, `""@200`, `"a"@300`, `"b"@300`}; !slices.Equal(got, want) {
		t.Fatalf("Accesses = %q, want %q", got, want)
	}
	if got, want := accesses(201), []string{`"a"@300`, `"b"@300`}; !slices.Equal(got, want) {
		t.Fatalf("Accesses(201) = %q, want %q", got, want)
	}
	// A use moves the key; a delete removes both records.
	b = db.NewBatch()
	b.SetRecency("c\x00", 100, true, 400)
	b.DeleteRecency("a", 300)
	b.DeleteAccess(200, "")
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	if got, want := accesses(0), []string{`"b"@300`, `"c\x00"@400`}; !slices.Equal(got, want) {
		t.Fatalf("Accesses = %q, want %q", got, want)
	}
	if tm, ok, err := db.Recency("c\x00"); err != nil || !ok || tm != 400 {
		t.Fatalf("Recency = %d, %v, %v", tm, ok, err)
	}
	if _, ok, err := db.Recency("a"); err != nil || ok {
		t.Fatalf("Recency of a deleted key: %v, %v", ok, err)
	}
	if last, err := db.LastAccess(); err != nil || last != 400 {
		t.Fatalf("LastAccess = %d, %v", last, err)
	}
	// The encoding: 'r'+key -> 8 bytes big-endian; 'a'+8 bytes+key -> "".
	v, closer, err := db.db.Get([]byte("rc\x00"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v, binary.BigEndian.AppendUint64(nil, 400)) {
		t.Fatalf("recency record %x", v)
	}
	closer.Close()
	ak := append(binary.BigEndian.AppendUint64([]byte{'a'}, 400), "c\x00"...)
	v, closer, err = db.db.Get(ak)
	if err != nil || len(v) != 0 {
		t.Fatalf("access record %x: %x, %v", ak, v, err)
	}
	closer.Close()
	// A recency record of the wrong length is corrupt.
	b = db.NewBatch()
	_ = b.b.Set([]byte("rbad"), []byte{1, 2}, nil)
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Recency("bad"); err == nil {
		t.Fatal("a short recency record was read")
	}
}
