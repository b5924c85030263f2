package manifest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"

	"github.com/cockroachdb/pebble/v2"
)

// Recency records say when each key was last used, and the access-order
// index lists keys by that time (see the package documentation for the
// encoding). Times are nanoseconds since the Unix epoch; negative ones are
// stored as 0.

func recencyKey(key string) []byte {
	b := make([]byte, 0, 1+len(key))
	return append(append(b, prefixRecency), key...)
}

func accessKey(t int64, key string) []byte {
	b := make([]byte, 0, 9+len(key))
	b = binary.BigEndian.AppendUint64(append(b, prefixAccess), uint64(max(t, 0)))
	return append(b, key...)
}

// Recency returns when key was last used; ok is false if it has no record.
func (d *DB) Recency(key string) (t int64, ok bool, err error) {
	v, closer, err := d.db.Get(recencyKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, d.readErr(err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, false, fmt.Errorf("manifest: recency of key %q: %w", key, ErrCorrupt)
	}
	return int64(binary.BigEndian.Uint64(v)), true, nil
}

// SetRecency records that key was used at t: it sets the recency record and
// the access record of t, and deletes the access record of old (the time
// the key's recency record held), if had.
func (b *Batch) SetRecency(key string, old int64, had bool, t int64) {
	t = max(t, 0)
	if had && max(old, 0) != t {
		_ = b.b.Delete(accessKey(old, key), nil)
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(t))
	_ = b.b.Set(recencyKey(key), v[:], nil)
	_ = b.b.Set(accessKey(t, key), nil, nil)
}

// DeleteRecency deletes key's recency record and its access record of t.
func (b *Batch) DeleteRecency(key string, t int64) {
	_ = b.b.Delete(recencyKey(key), nil)
	_ = b.b.Delete(accessKey(t, key), nil)
}

// DeleteAccess deletes the access record of key at t (a stale one).
func (b *Batch) DeleteAccess(t int64, key string) { _ = b.b.Delete(accessKey(t, key), nil) }

// Access is a record of the access-order index.
type Access struct {
	Time int64
	Key  string
}

// Accesses yields the access records from time from on, least recent
// first (keys of one time in byte order). Each yielded key is a fresh
// string; iteration stops at the first error. Records committed while it
// runs may or may not be seen.
func (d *DB) Accesses(from int64) iter.Seq2[Access, error] {
	return func(yield func(Access, error) bool) {
		it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: accessKey(from, ""), UpperBound: []byte{prefixAccess + 1}})
		if err != nil {
			yield(Access{}, d.readErr(err))
			return
		}
		defer it.Close()
		for ok := it.First(); ok; ok = it.Next() {
			k := it.Key()
			if len(k) < 9 {
				yield(Access{}, ErrCorrupt)
				return
			}
			if !yield(Access{Time: int64(binary.BigEndian.Uint64(k[1:9])), Key: string(k[9:])}, nil) {
				return
			}
		}
		if err := it.Error(); err != nil {
			yield(Access{}, d.readErr(err))
		}
	}
}

// LastAccess returns the latest time in the access-order index (0 if it is
// empty).
func (d *DB) LastAccess() (int64, error) {
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixAccess}, UpperBound: []byte{prefixAccess + 1}})
	if err != nil {
		return 0, d.readErr(err)
	}
	defer it.Close()
	if !it.Last() {
		return 0, d.readErr(it.Error())
	}
	k := it.Key()
	if len(k) < 9 {
		return 0, ErrCorrupt
	}
	return int64(binary.BigEndian.Uint64(k[1:9])), nil
}

func pinKey(key string) []byte {
	b := make([]byte, 0, 1+len(key))
	return append(append(b, prefixPin), key...)
}

// Pin records that key is pinned: a bounded store does not evict it.
func (b *Batch) Pin(key string) { _ = b.b.Set(pinKey(key), nil, nil) }

// Unpin deletes key's pin record.
func (b *Batch) Unpin(key string) { _ = b.b.Delete(pinKey(key), nil) }

// Pins yields the pinned keys in order.
func (d *DB) Pins() iter.Seq2[string, error] {
	return d.keysIn([]byte{prefixPin}, []byte{prefixPin + 1})
}
