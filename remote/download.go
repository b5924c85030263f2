package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/dirstore/dirstore"
)

// errRetry means: look in the outbox and the local store again. The key was
// set while a read looked for it in the bucket, or a download was stored
// locally after the read missed the local store.
var errRetry = errors.New("remote: look again")

// maxRetry bounds the reads that look again; the last one downloads.
const maxRetry = 4

// flight is one download of a key; concurrent readers of the key wait for
// it instead of downloading again.
type flight struct {
	done   chan struct{} // closed when data and err are set
	data   []byte        // the value, when downloaded into memory; read-only
	err    error
	filled chan struct{} // closed when the local store has it (or refused it)
}

// fetch downloads key. With inMemory (Get, View) it returns the value,
// read-only, and stores it into the local store in the background;
// otherwise (Open) it streams it into the local store and returns nil data
// (read the local store), or the value if the local store refused it.
func (s *Store) fetch(op, key string, inMemory bool, seq uint64, try int) ([]byte, error) {
	name, err := objectName(op, key)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	for s.mu.deleting[key] {
		s.mu.cond.Wait()
	}
	if s.mu.items[key] != nil {
		s.mu.Unlock()
		if try >= 2*maxRetry {
			return nil, &dirstore.KeyError{Op: op, Key: key, Err: fmt.Errorf("%w: waiting for upload, but not in the outbox", dirstore.ErrNotFound)}
		}
		return nil, errRetry
	}
	if s.mu.flights[key] == nil && s.filled.Load() != seq && try < maxRetry {
		s.mu.Unlock()
		return nil, errRetry
	}
	if f := s.mu.flights[key]; f != nil {
		s.mu.Unlock()
		<-f.done
		if f.err != nil {
			return nil, rekey(f.err, op)
		}
		if f.data != nil && !inMemory {
			<-f.filled // a stream reads the local copy
			return nil, nil
		}
		return f.data, nil
	}
	f := &flight{done: make(chan struct{}), filled: make(chan struct{})}
	s.mu.flights[key] = f
	s.mu.Unlock()

	end := func() {
		s.filled.Add(1)
		s.mu.Lock()
		delete(s.mu.flights, key)
		s.mu.cond.Broadcast()
		s.mu.Unlock()
		close(f.filled)
	}
	data, stored, err := s.download(op, key, name, !inMemory)
	f.data, f.err = data, err
	close(f.done)
	if err != nil || stored {
		end()
		return data, err
	}
	// The value is in memory: store it locally without making the reader
	// wait. The flight stays registered until then, so that a Delete or
	// the end of an upload of the key waits for it.
	s.fills.Add(1)
	go func() {
		defer s.fills.Done()
		defer end()
		if !inMemory {
			return // the local store refused it already
		}
		s.addedLocal(key)
		if err := s.local.Set(key, data); err != nil {
			s.opts.Logger.Info("remote: the local store did not take a downloaded value", "key", key, "err", err)
		}
	}()
	return data, nil
}

// rekey returns err with op as its operation, for a reader that joined
// another's download.
func rekey(err error, op string) error {
	var ke *dirstore.KeyError
	if errors.As(err, &ke) && ke.Op != op {
		c := *ke
		c.Op = op
		return &c
	}
	return err
}

// download reads key's object, checking it against its checksum on the
// way: into the local store (toLocal; a value that fails the check is
// never stored) or into memory. If the local store refuses the value
// (stored is false), it is downloaded again into memory.
func (s *Store) download(op, key, name string, toLocal bool) (data []byte, stored bool, err error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.Timeout)
	defer cancel()
	for try := 0; ; try++ {
		data, stored, err = s.downloadOnce(ctx, op, key, name, toLocal)
		switch {
		case errors.Is(err, errRefused) && toLocal:
			s.opts.Logger.Info("remote: the local store did not take a downloaded value; serving it from memory", "key", key, "err", err)
			toLocal = false
			continue
		case errors.Is(err, errMismatch) && try == 0:
			// The object may have been replaced between the two
			// requests that fetch its metadata and its bytes.
			continue
		case errors.Is(err, errMismatch):
			s.stats.corrupt.Add(1)
			s.recordErr(err)
			s.opts.Logger.Error("remote: object does not match its checksum", "key", key, "object", name, "err", err)
			return nil, false, &dirstore.KeyError{Op: op, Key: key, Err: fmt.Errorf("%w: object %q: %w", dirstore.ErrCorrupt, name, err)}
		case errors.Is(err, dirstore.ErrNotFound):
			s.stats.misses.Add(1)
		case err != nil:
			s.stats.downloadFailure.Add(1)
			s.recordErr(err)
			s.opts.Logger.Warn("remote: download failed", "key", key, "err", err)
		default:
			s.stats.downloads.Add(1)
		}
		return data, stored, err
	}
}

var (
	errMismatch = errors.New("checksum mismatch")
	errRefused  = errors.New("the local store refused the value")
)

func (s *Store) downloadOnce(ctx context.Context, op, key, name string, toLocal bool) ([]byte, bool, error) {
	// The metadata comes from a second request, made while the bytes
	// stream: the portable API gives a reader no metadata.
	attrs := make(chan attrsResult, 1)
	actx, acancel := context.WithCancel(ctx)
	defer acancel()
	go func() {
		a, err := s.bucket.Attributes(actx, name)
		attrs <- attrsResult{a, err}
	}()
	r, err := s.bucket.NewReader(ctx, name, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, false, &dirstore.KeyError{Op: op, Key: key, Err: dirstore.ErrNotFound}
		}
		return nil, false, s.unavailable(op, key, err)
	}
	defer r.Close()
	cr := &checkedReader{r: r, crc: crc32.New(castagnoli), attrs: attrs}
	var data []byte
	if toLocal {
		s.addedLocal(key)
		_, err = s.local.SetFrom(key, cr)
	} else {
		buf := bytes.NewBuffer(make([]byte, 0, max(r.Size(), 0)+bytes.MinRead))
		_, err = buf.ReadFrom(cr)
		data = buf.Bytes()
	}
	switch {
	case cr.err != nil:
		// The object, not the local store, failed.
		if errors.Is(cr.err, errMismatch) || errors.Is(cr.err, dirstore.ErrNotFound) {
			return nil, false, cr.err
		}
		return nil, false, s.unavailable(op, key, cr.err)
	case err != nil:
		return nil, false, fmt.Errorf("%w: %w", errRefused, err)
	}
	s.stats.downloadedBytes.Add(cr.n)
	return data, toLocal, nil
}

type attrsResult struct {
	a   *blob.Attributes
	err error
}

// checkedReader reads an object and, at its end, checks its length and
// CRC-32C against the object's attributes; a mismatch is an error instead
// of io.EOF, so that dirstore.Store.SetFrom stores nothing.
type checkedReader struct {
	r     io.Reader
	crc   hash.Hash32
	n     int64
	attrs chan attrsResult
	err   error // the first error other than io.EOF
}

func (c *checkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	c.crc.Write(p[:n])
	c.n += int64(n)
	if err == io.EOF {
		err = c.check()
	}
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

func (c *checkedReader) check() error {
	res := <-c.attrs
	c.attrs <- res // a Read after the end checks again
	if res.err != nil {
		if gcerrors.Code(res.err) == gcerrors.NotFound {
			return dirstore.ErrNotFound
		}
		return res.err
	}
	sum, ok := parseCRC(res.a.Metadata[metaCRC])
	switch {
	case mutated(mutNoChecksum):
	case !ok:
		return fmt.Errorf("%w: no valid %s metadata (%q)", errMismatch, metaCRC, res.a.Metadata[metaCRC])
	case res.a.Size != c.n:
		return fmt.Errorf("%w: %d bytes read, the object has %d", errMismatch, c.n, res.a.Size)
	case sum != c.crc.Sum32():
		return fmt.Errorf("%w: CRC-32C %08x read, metadata says %08x", errMismatch, c.crc.Sum32(), sum)
	}
	return io.EOF
}
