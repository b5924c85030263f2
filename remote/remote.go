package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"iter"
	"sync"
	"sync/atomic"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/dirstore/dirstore"
)

// Store is a local dirstore.Store in front of a bucket: read-through,
// write-back (see the package doc). Its methods may be called
// concurrently. Close must be called.
type Store struct {
	local  *dirstore.Store
	outbox *dirstore.Store
	bucket *blob.Bucket
	opts   Options

	ctx    context.Context // cancelled by Close: stops uploads and downloads
	cancel context.CancelFunc

	// closeMu is held for reading by every operation, for writing by Close.
	closeMu sync.RWMutex

	// stripes order the Sets and Deletes of one key. (The end of an
	// upload does not take them: a Set waiting for room in the outbox
	// holds its stripe, and an upload of another key of the stripe may be
	// what makes the room. It marks its item moving instead.)
	stripes [256]sync.Mutex

	// pendingN counts mu.items, so reads skip mu while nothing waits.
	pendingN atomic.Int64
	closed   atomic.Bool // mu.closed, for reads
	// fills counts the downloads stored locally, so that a read that
	// missed the local store while one was being stored tries it again
	// rather than download again.
	filled atomic.Uint64

	mu struct {
		sync.RWMutex
		cond     *sync.Cond         // on the write lock; broadcast on every change below
		work     *sync.Cond         // on the write lock; signalled when the queue grows
		items    map[string]*item   // keys whose value waits in the outbox
		queue    []string           // keys for the uploaders, oldest first
		urgent   []string           // keys for the uploaders before those of queue (WriteThrough, Sync)
		flights  map[string]*flight // downloads running, one per key
		deleting map[string]bool    // keys a Delete is removing
		writing  map[string]int     // keys a Set is writing into the outbox, and how many
		listers  map[*lister]struct{}
		closed   bool
		lastErr  error
		// outboxBytes is the sum of the sizes of the items' values, plus
		// the room reserved by Sets writing (what Options.OutboxBytes
		// bounds).
		outboxBytes int64
		uploadErr   error // the last upload's error, nil after a success
	}
	workers sync.WaitGroup
	fills   sync.WaitGroup // downloaded values being stored locally

	stats struct {
		hits, misses                                atomic.Int64
		uploads, uploadedBytes, uploadFailures      atomic.Int64
		downloads, downloadedBytes, downloadFailure atomic.Int64
		corrupt                                     atomic.Int64
	}
}

// item is a key with an upload to do. Fields are guarded by Store.mu.
type item struct {
	gen       uint64 // bumped by every Set of the key
	size      int64  // the value's size (counted in Store.mu.outboxBytes), -1 if unknown
	queued    bool   // in Store.mu.queue or Store.mu.urgent
	busy      bool   // claimed by an uploader, until its upload is finished
	uploading bool   // the upload request is running
	moving    bool   // uploaded, moving to the local store: Sets and Deletes of the key wait
	fails     int    // failed uploads in a row
	failTotal int    // failed uploads ever
	err       error  // the last failure
}

// Open returns a Store that keeps values in local and shares them through
// bucket (nil opts means the defaults). The caller keeps ownership of both:
// close them after the Store. Open opens the outbox and resumes the uploads
// a previous Store left pending, in the background.
func Open(local *dirstore.Store, bucket *blob.Bucket, opts *Options) (*Store, error) {
	o, err := opts.withDefaults(local)
	if err != nil {
		return nil, err
	}
	outbox, err := dirstore.Open(o.OutboxDir, o.Outbox)
	if err != nil {
		return nil, fmt.Errorf("remote: open the outbox: %w", err)
	}
	s := &Store{local: local, outbox: outbox, bucket: bucket, opts: o}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mu.cond = sync.NewCond(&s.mu)
	s.mu.work = sync.NewCond(&s.mu)
	s.mu.items = map[string]*item{}
	s.mu.flights = map[string]*flight{}
	s.mu.deleting = map[string]bool{}
	s.mu.writing = map[string]int{}
	s.mu.listers = map[*lister]struct{}{}
	for k, err := range outbox.Keys() {
		if err != nil {
			outbox.Close()
			return nil, fmt.Errorf("remote: open the outbox: %w", err)
		}
		it := &item{gen: 1, size: outboxSize(outbox, k), queued: true}
		s.mu.items[k] = it
		s.mu.outboxBytes += max(it.size, 0)
		s.mu.queue = append(s.mu.queue, k)
	}
	s.pendingN.Store(int64(len(s.mu.items)))
	if n := len(s.mu.items); n > 0 {
		o.Logger.Info("remote: resuming uploads", "dir", o.OutboxDir, "keys", n)
	}
	for range o.Uploaders {
		s.workers.Add(1)
		go s.uploader()
	}
	return s, nil
}

// outboxSize returns the size of key's value in the outbox, -1 if it
// cannot tell (the upload will find out).
func outboxSize(outbox *dirstore.Store, key string) int64 {
	st, err := outbox.Open(key)
	if err != nil {
		return -1
	}
	defer st.Close()
	info, err := st.Stat()
	if err != nil {
		return -1
	}
	return info.Size()
}

// Close stops the uploads (those not finished resume at the next Open:
// call Sync first to finish them) and closes the outbox. It does not close
// the local store or the bucket.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return fmt.Errorf("remote: close: %w", dirstore.ErrClosed)
	}
	s.mu.closed = true
	s.closed.Store(true)
	s.cancel()
	s.mu.cond.Broadcast()
	s.mu.work.Broadcast()
	s.mu.Unlock()
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	s.workers.Wait()
	s.fills.Wait()
	if err := s.outbox.Close(); err != nil {
		return fmt.Errorf("remote: close: %w", err)
	}
	return nil
}

// begin starts an operation; the caller must call s.closeMu.RUnlock after.
func (s *Store) begin(op, key string) error {
	s.closeMu.RLock()
	if s.closed.Load() {
		s.closeMu.RUnlock()
		return &dirstore.KeyError{Op: op, Key: key, Err: dirstore.ErrClosed}
	}
	return nil
}

func (s *Store) stripe(key string) *sync.Mutex {
	h := fnv.New32a()
	io.WriteString(h, key)
	return &s.stripes[h.Sum32()%uint32(len(s.stripes))]
}

// pending reports whether key's value waits in the outbox.
func (s *Store) pending(key string) bool {
	if s.pendingN.Load() == 0 {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mu.items[key] != nil
}

// pendingStore is where values wait for their upload: the outbox.
func (s *Store) pendingStore() *dirstore.Store {
	if mutated(mutLocalPending) {
		return s.local
	}
	return s.outbox
}

func notFound(err error) bool { return errors.Is(err, dirstore.ErrNotFound) }

// Get returns key's value: from the outbox or the local store, else from
// the bucket, storing it locally on the way (concurrent Gets of one key
// share one download). A key the bucket does not have either is
// dirstore.ErrNotFound; a bucket that cannot be reached ErrUnavailable; an
// object that does not match its checksum dirstore.ErrCorrupt.
func (s *Store) Get(key string) ([]byte, error) {
	if err := s.begin("get", key); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	for try := 0; ; try++ {
		if s.pending(key) {
			if v, err := s.outbox.Get(key); !notFound(err) {
				s.stats.hits.Add(1)
				return v, err
			}
		}
		seq := s.filled.Load()
		if v, err := s.local.Get(key); !notFound(err) {
			s.stats.hits.Add(1)
			return v, err
		}
		v, err := s.fetch("get", key, true, seq, try)
		if errors.Is(err, errRetry) {
			continue // set meanwhile (it is in the outbox), or just stored locally
		}
		if err != nil {
			return nil, err
		}
		if v != nil {
			return bytes.Clone(v), nil // shared with other readers
		}
		// Stored locally; a Delete or an eviction may come first.
		if v, err := s.local.Get(key); !notFound(err) || try >= 3 {
			return v, err
		}
	}
}

// View calls fn with key's value, found as Get finds it. The slice is valid
// only until fn returns and must not be modified.
func (s *Store) View(key string, fn func(value []byte) error) error {
	if err := s.begin("view", key); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	for try := 0; ; try++ {
		if s.pending(key) {
			if err := s.outbox.View(key, fn); !notFound(err) {
				s.stats.hits.Add(1)
				return err
			}
		}
		seq := s.filled.Load()
		if err := s.local.View(key, fn); !notFound(err) {
			s.stats.hits.Add(1)
			return err
		}
		v, err := s.fetch("view", key, true, seq, try)
		if errors.Is(err, errRetry) {
			continue
		}
		if err != nil {
			return err
		}
		if v != nil {
			return fn(v)
		}
		if err := s.local.View(key, fn); !notFound(err) || try >= 3 {
			return err
		}
	}
}

// Open returns a stream of key's value, found as Get finds it; a value
// only the bucket has is downloaded into the local store first. The caller
// must close the stream.
func (s *Store) Open(key string) (*dirstore.Stream, error) {
	if err := s.begin("open", key); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	for try := 0; ; try++ {
		if s.pending(key) {
			if st, err := s.outbox.Open(key); !notFound(err) {
				s.stats.hits.Add(1)
				return st, err
			}
		}
		seq := s.filled.Load()
		if st, err := s.local.Open(key); !notFound(err) {
			s.stats.hits.Add(1)
			return st, err
		}
		v, err := s.fetch("open", key, false, seq, try)
		if errors.Is(err, errRetry) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if v != nil {
			return nil, &dirstore.KeyError{Op: "open", Key: key,
				Err: fmt.Errorf("the local store refused the value (%d bytes), so it cannot be streamed: %w", len(v), errLocalRefused)}
		}
		if st, err := s.local.Open(key); !notFound(err) || try >= 3 {
			return st, err
		}
	}
}

var errLocalRefused = errors.New("remote: value not stored locally")

// Has reports whether key has a value here or in the bucket.
func (s *Store) Has(key string) (bool, error) {
	if err := s.begin("has", key); err != nil {
		return false, err
	}
	defer s.closeMu.RUnlock()
	if s.pending(key) {
		return true, nil
	}
	if ok, err := s.local.Has(key); ok || err != nil {
		return ok, err
	}
	name, err := objectName("has", key)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.Timeout)
	defer cancel()
	ok, err := s.bucket.Exists(ctx, name)
	if err != nil {
		return false, s.unavailable("has", key, err)
	}
	return ok, nil
}

// Set stores value under key: in the outbox, as durably as the local
// store's Sets, then uploads it in the background (with
// Options.WriteThrough, before it returns). Once uploaded, the value moves
// to the local store. With Options.OutboxBytes, a full outbox makes Set
// wait for room, then fail with ErrOutboxFull.
func (s *Store) Set(key string, value []byte) error {
	n := int64(len(value))
	_, err := s.set("set", key, n, func(*reservation) (int64, error) { return n, s.pendingStore().Set(key, value) })
	return err
}

// SetFrom stores what r yields, until io.EOF, under key, as Set does. If r
// fails, key keeps its previous value. With Options.OutboxBytes, the room
// is reserved as r yields its bytes (waiting as Set does), so a stream
// larger than the room left fails with ErrOutboxFull, before anything
// beyond the bound is written.
func (s *Store) SetFrom(key string, r io.Reader) (int64, error) {
	return s.set("set", key, -1, func(res *reservation) (int64, error) {
		n, err := s.pendingStore().SetFrom(key, &reservingReader{r: r, res: res})
		if res.err != nil {
			err = res.err // the outbox store wraps it in its own words
		}
		return n, err
	})
}

// set writes a value of size n (-1: unknown, write reserves the room as
// it goes) into the outbox with write, and queues its upload.
func (s *Store) set(op, key string, n int64, write func(*reservation) (int64, error)) (int64, error) {
	if err := s.begin(op, key); err != nil {
		return 0, err
	}
	defer s.closeMu.RUnlock()
	if _, err := objectName(op, key); err != nil {
		return 0, err
	}
	res := s.newReservation(op, key)
	defer res.release()
	if n >= 0 {
		// Before the stripe: the room may come from an upload of a key
		// of the same stripe.
		if err := res.grow(n); err != nil {
			return 0, err
		}
	}
	mu := s.stripe(key)
	mu.Lock()
	s.mu.Lock()
	for {
		// An upload that ended is moving the key's previous value out of
		// the outbox: let it finish before writing the new one.
		if it := s.mu.items[key]; it == nil || !it.moving {
			break
		}
		s.mu.cond.Wait()
	}
	s.mu.writing[key]++
	s.mu.Unlock()

	n, err := write(res)

	s.mu.Lock()
	if s.mu.writing[key]--; s.mu.writing[key] == 0 {
		delete(s.mu.writing, key)
	}
	it := s.mu.items[key]
	if err != nil {
		// An upload that ended during the write left the key's previous
		// value in the outbox (see finish): upload it again.
		if it != nil && !it.busy && !it.queued {
			s.enqueueLocked(key, it, false)
		}
		s.mu.Unlock()
		mu.Unlock()
		return n, err
	}
	if it == nil {
		it = &item{}
		s.mu.items[key] = it
		s.pendingN.Add(1)
	} else if it.size > 0 {
		s.mu.outboxBytes -= it.size // replaced
		s.mu.cond.Broadcast()
	}
	it.gen++
	it.size = n
	res.keep(n)
	gen, fails := it.gen, it.failTotal
	if !it.busy && !it.queued {
		s.enqueueLocked(key, it, s.opts.WriteThrough)
	}
	s.mu.Unlock()
	mu.Unlock()
	if !s.opts.WriteThrough {
		return n, nil
	}
	return n, s.waitUploaded(op, key, it, gen, fails)
}

// Delete removes key from the local store, the outbox and the bucket,
// before it returns: a bucket that cannot be reached makes it fail, and
// then nothing is removed.
func (s *Store) Delete(key string) error {
	if err := s.begin("delete", key); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	name, err := objectName("delete", key)
	if err != nil {
		return err
	}
	mu := s.stripe(key)
	mu.Lock()
	defer mu.Unlock()
	s.mu.Lock()
	s.mu.deleting[key] = true
	// An upload or a download of the key that is running would put back
	// what is removed here: wait for them. No new one starts meanwhile.
	for {
		it := s.mu.items[key]
		if (it == nil || !it.uploading && !it.moving) && s.mu.flights[key] == nil {
			break
		}
		s.mu.cond.Wait()
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.mu.deleting, key)
		if it := s.mu.items[key]; it != nil && !it.busy && !it.queued {
			s.enqueueLocked(key, it, false)
		}
		s.mu.cond.Broadcast()
		s.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.Timeout)
	defer cancel()
	if err := s.bucket.Delete(ctx, name); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return s.unavailable("delete", key, err)
	}
	if err := s.outbox.Delete(key); err != nil && !notFound(err) {
		return err
	}
	s.mu.Lock()
	if it := s.mu.items[key]; it != nil {
		delete(s.mu.items, key)
		s.pendingN.Add(-1)
		s.mu.outboxBytes -= max(it.size, 0)
	}
	s.mu.Unlock()
	if err := s.local.Delete(key); err != nil && !notFound(err) {
		return err
	}
	return nil
}

// Keys yields every key once: those waiting in the outbox, then the
// local store's, then those only the bucket has (listed page by page). It
// is not a snapshot, and not in any order: a key set or deleted meanwhile
// may or may not be there. A bucket that cannot be listed yields
// ErrUnavailable after the local keys.
func (s *Store) Keys() iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		if err := s.begin("keys", ""); err != nil {
			yield("", err)
			return
		}
		defer s.closeMu.RUnlock()
		// Keys that enter the local store during the listing (downloads,
		// finished uploads) may have been passed already: remember them,
		// so that the bucket's listing yields them.
		l := &lister{added: map[string]bool{}}
		s.mu.Lock()
		s.mu.listers[l] = struct{}{}
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			delete(s.mu.listers, l)
			s.mu.Unlock()
		}()
		fromOutbox := map[string]bool{} // as many as the pending uploads
		for k, err := range s.outbox.Keys() {
			if !yield(k, err) || err != nil {
				return
			}
			fromOutbox[k] = true
		}
		seenAdded := map[string]bool{} // keys of l.added listed here
		for k, err := range s.local.Keys() {
			if err == nil && fromOutbox[k] {
				continue
			}
			if !yield(k, err) || err != nil {
				return
			}
			if l.has(s, k) {
				seenAdded[k] = true
			}
		}
		it := s.bucket.List(nil)
		for {
			ctx, cancel := context.WithTimeout(s.ctx, s.opts.Timeout)
			obj, err := it.Next(ctx)
			cancel()
			if err == io.EOF {
				return
			}
			if err != nil {
				yield("", s.unavailable("keys", "", err))
				return
			}
			k, ok := keyOf(obj.Key)
			if !ok || obj.IsDir || fromOutbox[k] {
				continue
			}
			if ok, err := s.local.Has(k); err != nil || ok && (!l.has(s, k) || seenAdded[k]) {
				continue // listed with the local keys
			}
			if !yield(k, nil) {
				return
			}
		}
	}
}

// lister records the keys that enter the local store while Keys runs.
type lister struct {
	added map[string]bool // guarded by Store.mu
}

func (l *lister) has(s *Store, key string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return l.added[key]
}

// addedLocal tells the running Keys listings that key is entering the
// local store, if it is not there already.
func (s *Store) addedLocal(key string) {
	s.mu.RLock()
	n := len(s.mu.listers)
	s.mu.RUnlock()
	if n == 0 {
		return
	}
	if ok, _ := s.local.Has(key); ok {
		return
	}
	s.mu.Lock()
	for l := range s.mu.listers {
		l.added[key] = true
	}
	s.mu.Unlock()
}

// Stats describes a Store.
type Stats struct {
	Local  dirstore.Stats // the local store
	Outbox dirstore.Stats // the values waiting for upload
	// Pending is the number of keys waiting for upload (Outbox.Keys, once
	// Open has resumed them), PendingBytes the sum of their values' sizes
	// and of the room reserved by Sets being written: what
	// Options.OutboxBytes bounds.
	Pending      int
	PendingBytes int64

	Hits   int64 // reads served locally (the local store or the outbox), since Open
	Misses int64 // reads of keys found nowhere, since Open

	Uploads, UploadedBytes, UploadFailures       int64 // since Open
	Downloads, DownloadedBytes, DownloadFailures int64 // since Open; a failure is a bucket error, not a missing key
	Corrupt                                      int64 // downloads refused: the object did not match its checksum

	// LastError is the last failed upload's or download's error, or nil.
	LastError error
}

// Stats returns the Store's counters.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	pending, pendingBytes, last := len(s.mu.items), s.mu.outboxBytes, s.mu.lastErr
	s.mu.RUnlock()
	return Stats{
		Local: s.local.Stats(), Outbox: s.outbox.Stats(), Pending: pending, PendingBytes: pendingBytes,
		Hits: s.stats.hits.Load(), Misses: s.stats.misses.Load(),
		Uploads: s.stats.uploads.Load(), UploadedBytes: s.stats.uploadedBytes.Load(), UploadFailures: s.stats.uploadFailures.Load(),
		Downloads: s.stats.downloads.Load(), DownloadedBytes: s.stats.downloadedBytes.Load(), DownloadFailures: s.stats.downloadFailure.Load(),
		Corrupt: s.stats.corrupt.Load(), LastError: last,
	}
}

// unavailable wraps a bucket's error in ErrUnavailable, with the key.
func (s *Store) unavailable(op, key string, err error) error {
	return &dirstore.KeyError{Op: op, Key: key, Err: fmt.Errorf("%w: %w", ErrUnavailable, err)}
}

func (s *Store) recordErr(err error) {
	s.mu.Lock()
	s.mu.lastErr = err
	s.mu.Unlock()
}
