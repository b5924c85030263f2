package dirstore_test

// The store's on-disk format is versioned (state.go: formatVersion) and
// pinned (the manifest's pebble format: manifest.FormatMajorVersion). Each
// version has a store directory written by it under testdata/format-vN,
// which every later version must open and read back.
//
// To write the fixture of the current version (testdata/format-vN, N the
// code's format version; it replaces that directory only, and the fixtures
// of older versions stay as they are):
//
//	go test -run '^TestFormatFixture$' -format.update .
//
// Then commit testdata/format-vN. A change to the on-disk format (value
// file names, the encodings of entries, undo records or metadata, the
// pinned pebble format) raises formatVersion first, so that it gets a new
// fixture and the old ones keep being read.

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/escape"
	"github.com/dirstore/dirstore/internal/manifest"
	"github.com/dirstore/dirstore/internal/storetest"
)

var formatUpdate = flag.Bool("format.update", false, "write testdata/format-vN, the fixture of the current format version, and pass")

// formatContents is what every fixture holds: keys of every shape, values
// of every size, and a history behind them (an adopted zict file, an
// overwrite, a deletion). Fixed forever: every version's fixture holds it.
func formatContents() map[string][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 70_000)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	m := map[string][]byte{
		"a":                         []byte("alpha"),
		"dir/sub/key":               []byte("a key with slashes"),
		"\x00bin\xff\"quote%#":      []byte("a key with bytes to escape"),
		"empty":                     {},
		strings.Repeat("long", 100): []byte("a key longer than the entry cache takes"),
		"big":                       big,
		"overwritten":               []byte("the second value"),
		"zict/legacy":               []byte("adopted from zict"),
	}
	// Keys far longer than a file name may be (their files are named by a
	// hash), and more than the 1 MiB of manifest log that a clean Close
	// flushes: the fixture's manifest holds a table, not only its log.
	for i := range 12 {
		m[fmt.Sprintf("huge/%02d/", i)+strings.Repeat(fmt.Sprintf("%03d", i), 34_000)] = []byte(fmt.Sprintf("huge key %d", i))
	}
	return m
}

// writeFormatFixture writes formatContents into the new directory dir as
// a user would, with the history that leaves each kind of record behind,
// and closes it cleanly.
func writeFormatFixture(dir string) error {
	want := formatContents()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// A file of zict's naming before the first Open: adopted as a legacy
	// entry (a file named without a version).
	if err := os.WriteFile(filepath.Join(dir, escape.Quote("zict/legacy")), want["zict/legacy"], 0o644); err != nil {
		return err
	}
	s, err := dirstore.Open(dir, &dirstore.Options{FileMode: 0o644, DirMode: 0o755, Reserve: -1})
	if err != nil {
		return err
	}
	var errs []error
	errs = append(errs, s.Set("overwritten", []byte("the first value")), s.Set("deleted", []byte("gone")))
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range want {
			if !yield(k) {
				return
			}
		}
	}) {
		if k != "zict/legacy" {
			errs = append(errs, s.Set(k, want[k]))
		}
	}
	errs = append(errs, s.Delete("deleted"), s.Close())
	return errors.Join(errs...)
}

// TestFormatFixture opens each version's fixture, a copy of it, writable
// and read-only, and reads back every key; then it writes to it and reads
// again, so that this code also goes on from a store of that version. With
// -format.update it writes the current version's fixture first.
func TestFormatFixture(t *testing.T) {
	if *formatUpdate {
		dst := filepath.Join("testdata", fmt.Sprintf("format-v%d", dirstore.FormatVersion))
		if err := os.RemoveAll(dst); err != nil {
			t.Fatal(err)
		}
		if err := writeFormatFixture(dst); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", dst)
	}
	fixtures, err := filepath.Glob(filepath.Join("testdata", "format-v*"))
	if err != nil {
		t.Fatal(err)
	}
	current := filepath.Join("testdata", fmt.Sprintf("format-v%d", dirstore.FormatVersion))
	if !slices.Contains(fixtures, current) {
		t.Fatalf("no fixture of the current format version %d (%s): write it with -format.update (see format_test.go)", dirstore.FormatVersion, current)
	}
	for _, fixture := range fixtures {
		t.Run(filepath.Base(fixture), func(t *testing.T) {
			for _, ro := range []bool{true, false} {
				dir := filepath.Join(t.TempDir(), "store")
				if err := os.CopyFS(dir, os.DirFS(fixture)); err != nil {
					t.Fatal(err)
				}
				s, err := dirstore.Open(dir, &dirstore.Options{ReadOnly: ro})
				if err != nil {
					t.Fatalf("Open(ReadOnly=%v): %v", ro, err)
				}
				checkFormatContents(t, s, formatContents())
				if ro {
					s.Close()
					continue
				}
				// This code goes on from there.
				want := formatContents()
				mustSet(t, s, "a", []byte("alpha, again"))
				want["a"] = []byte("alpha, again")
				if err := s.Delete("big"); err != nil {
					t.Fatal(err)
				}
				delete(want, "big")
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = storetest.Open(t, dir, nil)
				checkFormatContents(t, s, want)
			}
		})
	}
}

func checkFormatContents(t *testing.T, s *dirstore.Store, want map[string][]byte) {
	t.Helper()
	var got []string
	for k, err := range s.Keys() {
		if err != nil {
			t.Fatalf("Keys: %v", err)
		}
		got = append(got, k)
	}
	var wantKeys []string
	for k := range want {
		wantKeys = append(wantKeys, k)
	}
	slices.Sort(wantKeys)
	if !slices.Equal(got, wantKeys) {
		t.Errorf("Keys = %q, want %q", got, wantKeys)
	}
	if s.Len() != len(want) {
		t.Errorf("Len = %d, want %d", s.Len(), len(want))
	}
	var bytes int64
	for k, v := range want {
		bytes += int64(len(v))
		if b, err := s.Get(k); err != nil || string(b) != string(v) {
			t.Errorf("Get(%.20q) = %d bytes, %v; want %d bytes", k, len(b), err, len(v))
		}
	}
	if st := s.Stats(); st.Bytes != bytes {
		t.Errorf("Stats().Bytes = %d, want %d", st.Bytes, bytes)
	}
	if err := s.Verify(func(k string, err error) bool {
		if err != nil {
			t.Errorf("Verify: %v", err)
		}
		return true
	}); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

// TestFormatNewerRefused: a store whose format record says a version newer
// than this code's is refused, read-only or not, with an error matching
// errors.ErrUnsupported, and left as it was.
func TestFormatNewerRefused(t *testing.T) {
	dir := t.TempDir()
	s := storetest.Open(t, dir, nil, storetest.LeftDamaged("its format version is set past what this code reads"))
	mustSet(t, s, "k", []byte("v"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// What a later version would write.
	man, err := manifest.Open(filepath.Join(dir, ".dirstore", "manifest"), manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := man.NewBatch()
	b.SetMeta("format", binary.AppendUvarint(nil, dirstore.FormatVersion+1))
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if err := man.Close(); err != nil {
		t.Fatal(err)
	}
	before := valueFiles(t, dir)
	for _, ro := range []bool{true, false} {
		_, err := dirstore.Open(dir, &dirstore.Options{ReadOnly: ro})
		if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "format version") {
			t.Errorf("Open(ReadOnly=%v) of a newer format = %v, want an error about the format version matching errors.ErrUnsupported", ro, err)
		}
	}
	if after := valueFiles(t, dir); !slices.Equal(before, after) {
		t.Errorf("the refused Opens changed the value files: %q, then %q", before, after)
	}
}

// TestFormatNewerPebbleRefused: a manifest in a pebble format newer than
// the linked pebble knows (as a later dirstore with a later pebble might
// write) is refused with an error matching errors.ErrUnsupported, not
// taken for corruption.
func TestFormatNewerPebbleRefused(t *testing.T) {
	dir := t.TempDir()
	s := storetest.Open(t, dir, nil, storetest.LeftDamaged("its pebble format is set past what this pebble reads"))
	mustSet(t, s, "k", []byte("v"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	manDir := filepath.Join(dir, ".dirstore", "manifest")
	markers, _ := filepath.Glob(filepath.Join(manDir, "marker.format-version.*"))
	if len(markers) != 1 {
		t.Fatalf("format markers: %q", markers)
	}
	// The marker's name ends in the version: ...NNNNNN.VVV.
	want := fmt.Sprintf(".%03d", manifest.FormatMajorVersion)
	if !strings.HasSuffix(markers[0], want) {
		t.Errorf("the manifest's format marker %s does not end in %s, the pinned pebble format", markers[0], want)
	}
	newer := strings.TrimSuffix(markers[0], want) + fmt.Sprintf(".%03d", pebble.FormatNewest+50)
	if err := os.Rename(markers[0], newer); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{true, false} {
		_, err := dirstore.Open(dir, &dirstore.Options{ReadOnly: ro})
		if !errors.Is(err, errors.ErrUnsupported) || errors.Is(err, dirstore.ErrCorrupt) {
			t.Errorf("Open(ReadOnly=%v) of a newer pebble format = %v, want an error matching errors.ErrUnsupported and not ErrCorrupt", ro, err)
		}
	}
	if _, err := os.Stat(newer); err != nil {
		t.Errorf("the refused Opens touched the format marker: %v", err)
	}
}
