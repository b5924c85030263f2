package remote

import (
	"fmt"
	"io"
	"time"

	"github.com/dirstore/dirstore"
)

// The outbox's bound (Options.OutboxBytes). Store.mu.outboxBytes counts
// the values waiting in the outbox and the room that Sets writing there
// have reserved; a Set reserves its value's size before it writes (a
// SetFrom, as its reader yields bytes, before the outbox writes them), so
// the outbox never holds more than the bound, however many Sets run at
// once. A Set that replaces a pending value gives the old one's room back
// once the new one is written; an upload's end and a Delete give it back
// once the value has left the outbox.

// reservation is the room one Set holds in the outbox while it writes.
type reservation struct {
	s        *Store
	op, key  string
	deadline time.Time // when a wait for room gives up
	n        int64     // bytes reserved
	err      error     // why the last grow failed
}

func (s *Store) newReservation(op, key string) *reservation {
	r := &reservation{s: s, op: op, key: key, deadline: time.Now()}
	if s.opts.OutboxWait > 0 {
		r.deadline = r.deadline.Add(s.opts.OutboxWait)
	}
	return r
}

// grow reserves n more bytes, waiting for uploads to make room until the
// deadline.
func (r *reservation) grow(n int64) error {
	s := r.s
	bound := s.opts.OutboxBytes
	s.mu.Lock()
	defer s.mu.Unlock()
	if bound <= 0 || mutated(mutNoOutboxBound) {
		s.mu.outboxBytes += n
		r.n += n
		return nil
	}
	if r.n+n > bound {
		r.err = &dirstore.KeyError{Op: r.op, Key: r.key, Err: fmt.Errorf(
			"%w: the value passes %d bytes, more than the outbox's bound (Options.OutboxBytes %d)", dirstore.ErrTooLarge, r.n+n, bound)}
		return r.err
	}
	var timer *time.Timer
	for s.mu.outboxBytes+n > bound {
		if s.mu.closed {
			r.err = &dirstore.KeyError{Op: r.op, Key: r.key, Err: dirstore.ErrClosed}
			return r.err
		}
		wait := time.Until(r.deadline)
		if wait <= 0 {
			r.err = s.outboxFullLocked(r, n)
			return r.err
		}
		if timer == nil {
			// sync.Cond has no timeout: wake the waiters at the deadline.
			timer = time.AfterFunc(wait, func() {
				s.mu.Lock()
				s.mu.cond.Broadcast()
				s.mu.Unlock()
			})
			defer timer.Stop()
		}
		s.mu.cond.Wait()
	}
	s.mu.outboxBytes += n
	r.n += n
	return nil
}

func (s *Store) outboxFullLocked(r *reservation, n int64) error {
	err := fmt.Errorf("%w: %d bytes wait for upload (Options.OutboxBytes %d), no room for %d more after %v",
		ErrOutboxFull, s.mu.outboxBytes, s.opts.OutboxBytes, n, max(s.opts.OutboxWait, 0))
	if s.mu.uploadErr != nil {
		err = fmt.Errorf("%w; the last upload failed: %w", err, s.mu.uploadErr)
	}
	return &dirstore.KeyError{Op: r.op, Key: r.key, Err: err}
}

// keep makes n of the reserved bytes the value's: the item counts them
// from now on. It is called with s.mu held.
func (r *reservation) keep(n int64) {
	r.n -= n
}

// release gives back the room reserved and not kept.
func (r *reservation) release() {
	if r.n == 0 {
		return
	}
	s := r.s
	s.mu.Lock()
	s.mu.outboxBytes -= r.n
	r.n = 0
	s.mu.cond.Broadcast()
	s.mu.Unlock()
}

// reservingReader reserves room in the outbox for each piece it passes on.
type reservingReader struct {
	r   io.Reader
	res *reservation
}

func (rr *reservingReader) Read(p []byte) (int, error) {
	n, err := rr.r.Read(p)
	if n > 0 {
		if rerr := rr.res.grow(int64(n)); rerr != nil {
			return 0, rerr
		}
	}
	return n, err
}
