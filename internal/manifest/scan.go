package manifest

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Scanner walks the entries whose keys start with a prefix, in key order,
// from a consistent snapshot taken by Scan, and can skip ahead (SeekGE), so
// that a listing need not visit every key under a part it leaves out. It
// is not safe for concurrent use; Close must be called.
type Scanner struct {
	it      *pebble.Iterator
	d       *DB
	started bool
	valid   bool
}

// Scan returns a Scanner over the entries whose keys start with prefix,
// positioned before the first.
func (d *DB) Scan(prefix string) (*Scanner, error) {
	lower := entryKey(prefix)
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upperBound(lower)})
	if err != nil {
		return nil, d.readErr(err)
	}
	return &Scanner{it: it, d: d}, nil
}

// Next moves to the next entry and reports whether there is one.
func (sc *Scanner) Next() bool {
	if !sc.started {
		sc.started = true
		sc.valid = sc.it.First()
	} else if sc.valid {
		sc.valid = sc.it.Next()
	}
	return sc.valid
}

// SeekGE moves to the first entry whose key is at or after key (and
// within the prefix) and reports whether there is one.
func (sc *Scanner) SeekGE(key string) bool {
	sc.started = true
	sc.valid = sc.it.SeekGE(entryKey(key))
	return sc.valid
}

// Key returns the current entry's key, a fresh string.
func (sc *Scanner) Key() string { return string(sc.it.Key()[1:]) }

// Entry returns the current entry.
func (sc *Scanner) Entry() (Entry, error) {
	v, err := sc.it.ValueAndErr()
	if err != nil {
		return Entry{}, err
	}
	e, _, err := DecodeEntry(v)
	if err != nil {
		return e, fmt.Errorf("manifest: entry of key %q: %w", sc.it.Key()[1:], err)
	}
	return e, nil
}

// Err returns the error that ended the walk, if any.
func (sc *Scanner) Err() error { return sc.d.readErr(sc.it.Error()) }

// Close releases the Scanner.
func (sc *Scanner) Close() error { return sc.it.Close() }
