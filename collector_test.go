package dirstore_test

import (
	"bytes"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

// TestCollectorReusesSpares: a superseded file is kept as a spare and a
// later Set of another key renames it and writes over it, instead of
// creating a file; Close removes the spares left (the storetest cleanup
// checks that no file but the keys' is left behind).
func TestCollectorReusesSpares(t *testing.T) {
	var renames, creates atomic.Int64
	fsys := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if strings.Contains(op.Path, ".dirstore") {
			return nil
		}
		switch op.Kind {
		case errorfs.OpRename:
			renames.Add(1)
		case errorfs.OpCreate:
			creates.Add(1)
		}
		return nil
	}))
	s := storetest.Open(t, "/s", &dirstore.Options{FS: fsys})
	for i := range 10 {
		mustSet(t, s, "hot", []byte(strings.Repeat("v", i+1)))
	}
	renames.Store(0)
	for _, k := range []string{"a", "b", "c"} {
		mustSet(t, s, k, []byte("new key"))
	}
	if renames.Load() == 0 {
		t.Fatalf("3 Sets after overwrites renamed no spare (%d creates)", creates.Load())
	}
	checkItems(t, s, map[string]string{"hot": strings.Repeat("v", 10), "a": "new key", "b": "new key", "c": "new key"})
}

// TestCollectorPinnedFileNotReused: a file a reader keeps open (a stream
// from OpenStream) is never a spare, so a later Set cannot write over the
// bytes the reader opened; it is removed once superseded.
func TestCollectorPinnedFileNotReused(t *testing.T) {
	s := storetest.Open(t, "", nil) // the fast Dir reuses a spare in place
	old := bytes.Repeat([]byte("old value "), 1000)
	mustSet(t, s, "k", old)
	st, err := s.OpenStream("k", &dirstore.StreamOptions{Cache: dirstore.NoCache})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mustSet(t, s, "k", []byte("new"))
	for _, k := range []string{"a", "b", "c", "d"} {
		mustSet(t, s, k, bytes.Repeat([]byte("x"), len(old)))
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(st)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, old) {
		t.Fatalf("a stream opened before the overwrite read %.20q..., not the value it opened", got)
	}
}
