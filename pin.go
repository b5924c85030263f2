package dirstore

import (
	"errors"
	"fmt"
	"sync"
)

// pins is the set of pinned keys, loaded from the manifest at Open. Pins
// are for values on their way elsewhere (an upload): few at a time, so
// they are kept in memory.
type pins struct {
	mu   sync.Mutex
	keys map[string]struct{}
}

func (p *pins) has(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.keys[key]
	return ok
}

func (p *pins) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.keys)
}

// loadPins reads the pinned keys from the manifest.
func (s *Store) loadPins() error {
	s.pins.keys = map[string]struct{}{}
	for k, err := range s.man.Pins() {
		if err != nil {
			return s.metaErr(err)
		}
		s.pins.keys[k] = struct{}{}
	}
	return nil
}

// ErrPinned is wrapped by the error of a Set into a bounded store that
// cannot make room because the keys it could evict are pinned.
var ErrPinned = errors.New("dirstore: no room: the rest of the budget is pinned")

// Pin keeps key from being evicted (by MaxBytes, MaxIdle or Trim) until
// Unpin, across Close, crashes and reopens: the pin is committed with sync
// before Pin returns, in any mode, and with Options.NoSync Pin first makes
// every write so far durable (as Sync does), the key's value with them. It is for a value that must not leave
// the store before it was copied elsewhere (an upload pending). A missing
// key is ErrNotFound. A Set or Delete of a pinned key works as usual, and
// the pin stays, for the key's next value too, until Unpin. When pinned
// keys take so much of MaxBytes that a Set cannot make room, the Set fails
// with an error wrapping ErrPinned and changes nothing.
func (s *Store) Pin(key string) error {
	if err := s.begin("pin", key, true); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	if s.opts.NoSync {
		// The pinned value must survive a crash too: make every write so
		// far durable (a checkpoint), as Sync does.
		if err := s.applyBuffered(); err != nil {
			return keyErr("pin", key, fmt.Errorf("applying buffered writes: %w", err))
		}
		if err := s.checkpoint(); err != nil {
			return keyErr("pin", key, err)
		}
	}
	if err := s.versions.touch(s); err != nil {
		return keyErr("pin", key, err)
	}
	mu := s.stripe(key)
	mu.Lock()
	defer mu.Unlock()
	if _, ok, err := s.lookupLocked(key); err != nil || !ok {
		if err == nil {
			err = ErrNotFound
		}
		return keyErr("pin", key, err)
	}
	if s.pins.has(key) {
		return nil
	}
	b := s.man.NewBatch()
	b.Pin(key)
	if err := b.Commit(true); err != nil {
		return keyErr("pin", key, s.fail(err))
	}
	s.pins.mu.Lock()
	s.pins.keys[key] = struct{}{}
	s.pins.mu.Unlock()
	return nil
}

// Unpin lets key be evicted again. Unpinning a key that is not pinned does
// nothing. The change is committed with sync.
func (s *Store) Unpin(key string) error {
	if err := s.begin("unpin", key, true); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	if !s.pins.has(key) {
		return nil
	}
	if err := s.versions.touch(s); err != nil {
		return keyErr("unpin", key, err)
	}
	mu := s.stripe(key)
	mu.Lock()
	defer mu.Unlock()
	b := s.man.NewBatch()
	b.Unpin(key)
	if err := b.Commit(true); err != nil {
		return keyErr("unpin", key, s.fail(err))
	}
	s.pins.mu.Lock()
	delete(s.pins.keys, key)
	s.pins.mu.Unlock()
	return nil
}
