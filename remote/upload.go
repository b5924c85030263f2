package remote

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"strconv"
	"time"

	"gocloud.dev/blob"

	"github.com/dirstore/dirstore"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// metaCRC is the metadata key of an object's CRC-32C (8 hex digits), the
// checksum every download is checked against.
const metaCRC = "crc32c"

// enqueueLocked queues key for an uploader, first in line if urgent.
func (s *Store) enqueueLocked(key string, it *item, urgent bool) {
	if s.mu.closed {
		return
	}
	it.queued = true
	if urgent {
		s.mu.urgent = append(s.mu.urgent, key)
	} else {
		s.mu.queue = append(s.mu.queue, key)
	}
	s.mu.work.Signal()
}

// uploader runs uploads until Close.
func (s *Store) uploader() {
	defer s.workers.Done()
	for {
		s.mu.Lock()
		for len(s.mu.urgent) == 0 && len(s.mu.queue) == 0 && !s.mu.closed {
			s.mu.work.Wait()
		}
		if s.mu.closed {
			s.mu.Unlock()
			return
		}
		var key string
		if len(s.mu.urgent) > 0 {
			key, s.mu.urgent = s.mu.urgent[0], s.mu.urgent[1:]
		} else {
			key, s.mu.queue = s.mu.queue[0], s.mu.queue[1:]
		}
		it := s.mu.items[key]
		if it == nil || it.busy || s.mu.deleting[key] {
			// Done already, being done, or being deleted (a failed
			// Delete queues it again).
			if it != nil && !it.busy {
				it.queued = false
			}
			s.mu.Unlock()
			continue
		}
		it.queued, it.busy, it.uploading = false, true, true
		gen, size := it.gen, it.size
		s.mu.Unlock()

		data, n, err := s.upload(key, size)
		s.finish(key, it, gen, data, n, err)
	}
}

// smallValue is the size up to which an upload reads the value into memory
// (from a NoSync outbox's write buffer, often) rather than streaming its
// file, and then moves it to the local store from memory.
const smallValue = 1 << 20

// upload copies key's value from the outbox to the bucket, with its
// checksum as metadata. size is the value's size if known, else -1. It
// returns the value if it read it into memory.
func (s *Store) upload(key string, size int64) ([]byte, int64, error) {
	name, err := objectName("upload", key)
	if err != nil {
		return nil, 0, err
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.Timeout)
	defer cancel()
	if size >= 0 && size <= smallValue {
		data, err := s.pendingStore().Get(key)
		if err != nil {
			return nil, 0, err
		}
		if err := s.bucket.WriteAll(ctx, name, data, writerOptions(crc32.Checksum(data, castagnoli))); err != nil {
			return nil, 0, s.unavailable("upload", key, err)
		}
		return data, int64(len(data)), nil
	}
	st, err := s.pendingStore().Open(key)
	if err != nil {
		return nil, 0, err
	}
	defer st.Close()
	info, err := st.Stat()
	if err != nil {
		return nil, 0, err
	}
	size = info.Size()
	crc := crc32.New(castagnoli)
	if _, err := io.Copy(crc, io.NewSectionReader(st, 0, size)); err != nil {
		return nil, 0, err
	}
	if err := s.bucket.Upload(ctx, name, io.NewSectionReader(st, 0, size), writerOptions(crc.Sum32())); err != nil {
		return nil, 0, s.unavailable("upload", key, err)
	}
	return nil, size, nil
}

func writerOptions(crc uint32) *blob.WriterOptions {
	return &blob.WriterOptions{
		ContentType: "application/octet-stream",
		Metadata:    map[string]string{metaCRC: fmt.Sprintf("%08x", crc)},
	}
}

// finish ends an upload of generation gen of key: on success the value
// moves from the outbox to the local store, unless a Set replaced it
// meanwhile (then it is uploaded again); on failure it is retried after a
// backoff.
func (s *Store) finish(key string, it *item, gen uint64, data []byte, n int64, err error) {
	s.mu.Lock()
	it.uploading = false
	s.mu.cond.Broadcast()
	if err != nil {
		s.fail(key, it, err)
		return
	}
	s.stats.uploads.Add(1)
	s.stats.uploadedBytes.Add(n)
	s.mu.uploadErr = nil
	if s.mu.items[key] != it {
		// Deleted meanwhile (and maybe set again: that is a new item,
		// with its own upload).
		s.mu.Unlock()
		return
	}
	it.fails = 0
	if it.gen != gen || s.mu.writing[key] > 0 || s.mu.deleting[key] {
		// Set again while it was uploading: upload the new value. A Set
		// writing now queues the key when it ends; a Delete removes it,
		// or queues it again if it fails.
		it.busy = false
		if it.gen != gen && s.mu.writing[key] == 0 && !s.mu.deleting[key] {
			s.enqueueLocked(key, it, false)
		}
		s.mu.Unlock()
		return
	}
	// Sets and Deletes of the key wait until the value has left the
	// outbox.
	it.moving = true
	// A download of the key that began before it was set would overwrite
	// the local copy made below with the old value: let it end first. No
	// new one begins while the key is in the outbox.
	for s.mu.flights[key] != nil {
		s.mu.cond.Wait()
	}
	s.mu.Unlock()

	if err := s.moveLocal(key, data); err != nil {
		// The local store may hold an older value of the key, which must
		// not be read once the outbox lets go: keep it in the outbox, and
		// try again later.
		s.mu.Lock()
		it.moving = false
		s.fail(key, it, fmt.Errorf("uploaded, but not moved to the local store: %w", err))
		return
	}
	if err := s.outbox.Delete(key); err != nil {
		// Reads find the same value locally; the next Open uploads it
		// again, which is harmless.
		s.opts.Logger.Warn("remote: uploaded value not removed from the outbox", "key", key, "err", err)
	}
	s.mu.Lock()
	it.moving = false
	delete(s.mu.items, key)
	s.pendingN.Add(-1)
	s.mu.outboxBytes -= max(it.size, 0)
	s.mu.cond.Broadcast()
	s.mu.Unlock()
}

// fail records a failed upload of it and retries it after a backoff. It
// is called with s.mu held, and releases it.
func (s *Store) fail(key string, it *item, err error) {
	s.stats.uploadFailures.Add(1)
	s.mu.lastErr = err
	s.mu.uploadErr = err
	it.busy = false
	it.fails++
	it.failTotal++
	it.err = err
	wait, attempt := s.backoff(it.fails), it.fails
	closed := s.mu.closed
	s.mu.cond.Broadcast()
	s.mu.Unlock()
	if closed && errors.Is(err, context.Canceled) {
		return // Close stopped it; the next Open resumes it
	}
	s.opts.Logger.Warn("remote: upload failed", "key", key, "attempt", attempt, "retry_in", wait, "err", err)
	time.AfterFunc(wait, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.mu.items[key] == it && !it.busy && !it.queued && !s.mu.deleting[key] {
			s.enqueueLocked(key, it, false)
		}
	})
}

// moveLocal copies key's value (data, or else the outbox's) into the local store, where
// it may be evicted now that the bucket has it. A value the local store
// refuses (too large for its budget, a full disk) is not kept locally:
// then any older local value is removed.
func (s *Store) moveLocal(key string, data []byte) error {
	if mutated(mutLocalPending) {
		return nil
	}
	s.addedLocal(key)
	var err error
	if data != nil {
		err = s.local.Set(key, data)
	} else {
		var st *dirstore.Stream
		if st, err = s.outbox.Open(key); err != nil {
			return err
		}
		_, err = s.local.SetFrom(key, st)
		st.Close()
	}
	if err == nil {
		return nil
	}
	s.opts.Logger.Info("remote: the local store did not take an uploaded value", "key", key, "err", err)
	if err := s.local.Delete(key); err != nil && !errors.Is(err, dirstore.ErrNotFound) {
		return err
	}
	return nil
}

// backoff returns the wait before retry number fails, with jitter.
func (s *Store) backoff(fails int) time.Duration {
	d := s.opts.MinBackoff
	for i := 1; i < fails && d < s.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.opts.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// waitUploaded waits until generation gen of key is uploaded (or replaced
// or deleted), or has failed Options.Attempts times since failTotal.
func (s *Store) waitUploaded(op, key string, it *item, gen uint64, failTotal int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.mu.items[key] != it || it.gen != gen {
			return nil
		}
		if s.mu.closed {
			return &dirstore.KeyError{Op: op, Key: key, Err: dirstore.ErrClosed}
		}
		if it.failTotal-failTotal >= s.opts.Attempts {
			return &dirstore.KeyError{Op: op, Key: key, Err: fmt.Errorf(
				"not uploaded after %d attempts (the value is kept in the outbox and uploaded later): %w", s.opts.Attempts, it.err)}
		}
		s.mu.cond.Wait()
	}
}

// Sync waits until every value set before it is in the bucket. (The local
// store keeps its own durability: call its Sync to make local copies
// durable.) Values that fail to upload
// Options.Attempts times each make it return an error wrapping
// ErrUnavailable; they stay in the outbox and are retried later.
func (s *Store) Sync() error {
	if err := s.begin("sync", ""); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	type want struct {
		key   string
		it    *item
		gen   uint64
		fails int
	}
	s.mu.Lock()
	wants := make([]want, 0, len(s.mu.items))
	for k, it := range s.mu.items {
		wants = append(wants, want{k, it, it.gen, it.failTotal})
		if !it.busy && !it.queued {
			s.enqueueLocked(k, it, true)
		}
	}
	// Wait for each in turn: every upload's end wakes Sync, which checks
	// only the one it waits for (checking them all at each wake-up made
	// a Sync of n pending values cost n squared).
	var failed []error
	for _, w := range wants {
		for !s.mu.closed {
			it := w.it
			if s.mu.items[w.key] != it || it.gen != w.gen {
				break
			}
			if it.failTotal-w.fails >= s.opts.Attempts {
				failed = append(failed, &dirstore.KeyError{Op: "sync", Key: w.key, Err: it.err})
				break
			}
			s.mu.cond.Wait()
		}
	}
	closed := s.mu.closed
	s.mu.Unlock()
	if closed {
		return fmt.Errorf("remote: sync: %w", dirstore.ErrClosed)
	}
	if len(failed) > 0 {
		// Make the record of what is still pending durable, whatever the
		// outbox's mode.
		_ = s.outbox.Sync()
		return fmt.Errorf("remote: sync: %d values not uploaded after %d attempts each (kept in the outbox), the first: %w: %w",
			len(failed), s.opts.Attempts, ErrUnavailable, failed[0])
	}
	return nil
}

func parseCRC(s string) (uint32, bool) {
	if len(s) != 8 {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 16, 32)
	return uint32(v), err == nil
}
