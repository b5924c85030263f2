package dirstore_test

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dirstore/dirstore"
)

// FuzzStoreOps decodes the input into operations on a store (set,
// setbuffers, setfrom, delete, get, has, reopen, crash-free close) and checks
// every result against a map.
func FuzzStoreOps(f *testing.F) {
	f.Add([]byte{0, 1, 5, 4, 1, 0, 3, 1, 2, 0, 4, 6, 1})
	f.Add([]byte{0, 0, 0, 6, 0, 0, 3, 0, 0, 7, 0, 0, 4, 0, 0})
	f.Add(bytes.Repeat([]byte{1, 2, 200, 3, 2, 0, 6, 0, 0}, 8))
	keys := []string{"", ".", "..", "a/b", "#1", "%", "k", "\x00", "日本", "x#0"}
	f.Fuzz(func(t *testing.T, data []byte) {
		mem := vfs.NewMem()
		opts := &dirstore.Options{FS: mem, NoSync: len(data)%2 == 1}
		if len(data)%4 == 3 {
			// NoSync with a write buffer that takes values up to 256 bytes
			// and fills within a few operations.
			opts.WriteBuffer = 4 << 10
		}
		s, err := dirstore.Open("/s", opts)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { s.Close() }()
		m := map[string][]byte{}
		for len(data) >= 3 {
			op, key, n := data[0]%8, keys[int(data[1])%len(keys)], int(data[2])
			data = data[3:]
			val := bytes.Repeat([]byte{byte(n)}, n*7)
			switch op {
			case 0, 1, 2:
				switch op {
				case 0:
					err = s.Set(key, val)
				case 1:
					err = s.SetBuffers(key, val[:len(val)/2], val[len(val)/2:])
				case 2:
					_, err = s.SetFrom(key, bytes.NewReader(val))
				}
				if err != nil {
					t.Fatalf("set %q: %v", key, err)
				}
				m[key] = val
			case 3:
				err = s.Delete(key)
				if _, ok := m[key]; ok != (err == nil) || (!ok && !errors.Is(err, dirstore.ErrNotFound)) {
					t.Fatalf("Delete(%q) = %v, model has it: %v", key, err, ok)
				}
				delete(m, key)
			case 4, 5:
				got, err := s.Get(key)
				want, ok := m[key]
				if ok != (err == nil) || !bytes.Equal(got, want) || (!ok && !errors.Is(err, dirstore.ErrNotFound)) {
					t.Fatalf("Get(%q) = %q, %v; want %q, %v", key, got, err, want, ok)
				}
			case 6:
				ok, err := s.Has(key)
				if _, want := m[key]; err != nil || ok != want {
					t.Fatalf("Has(%q) = %v, %v", key, ok, err)
				}
			case 7:
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if s, err = dirstore.Open("/s", opts); err != nil {
					t.Fatal(err)
				}
			}
			if s.Len() != len(m) {
				t.Fatalf("Len = %d, want %d", s.Len(), len(m))
			}
		}
		var got, want []string
		for k, err := range s.Keys() {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, k)
		}
		for k := range m {
			want = append(want, k)
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("Keys = %q, want %q", got, want)
		}
	})
}
