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

// errPending means the key was set while a read looked for it in the
// bucket: read it from the outbox.
var errPending = errors.New("remote: key is pending")

// flight is one download of a key; concurrent readers of the key wait for
// it instead of downloading again.
type flight struct {
	done chan struct{}
	data []byte // the value, if the local store did not take it
	err  error
}

// fetch downloads key into the local store. It returns the value itself
// when the leader of the download asked for it (want) or when the local
// store refused it; nil data and nil error mean: read the local store.
func (s *Store) fetch(op, key string, want bool) ([]byte, error) {
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
		return nil, errPending
	}
	if f := s.mu.flights[key]; f != nil {
		s.mu.Unlock()
		<-f.done
		if f.err != nil {
			return nil, rekey(f.err, op)
		}
		return f.data, nil
	}
	f := &flight{done: make(chan struct{})}
	s.mu.flights[key] = f
	s.mu.Unlock()

	data, stored, err := s.download(op, key, name, want)
	f.err = err
	if !stored {
		f.data = data
	}
	s.mu.Lock()
	delete(s.mu.flights, key)
	s.mu.cond.Broadcast()
	s.mu.Unlock()
	close(f.done)
	return data, err
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

// download streams key's object into the local store, checking it against
// its checksum on the way; a value that fails the check is never stored.
// With want, the value is also returned. If the local store refuses the
// value (stored is false), it is downloaded again into memory.
func (s *Store) download(op, key, name string, want bool) (data []byte, stored bool, err error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.Timeout)
	defer cancel()
	local := true
	for try := 0; ; try++ {
		data, stored, err = s.downloadOnce(ctx, op, key, name, want, local)
		switch {
		case errors.Is(err, errRefused) && local:
			s.opts.Logger.Info("remote: the local store did not take a downloaded value; serving it from memory", "key", key, "err", err)
			local = false
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

func (s *Store) downloadOnce(ctx context.Context, op, key, name string, want, local bool) ([]byte, bool, error) {
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
	var buf *bytes.Buffer
	var src io.Reader = cr
	if want || !local {
		buf = bytes.NewBuffer(make([]byte, 0, max(r.Size(), 0)))
		src = io.TeeReader(cr, buf)
	}
	if !local {
		_, err = io.Copy(io.Discard, src)
	} else {
		_, err = s.local.SetFrom(key, src)
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
	if buf != nil {
		return buf.Bytes(), local, nil
	}
	return nil, local, nil
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
