package dirstore

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"runtime"
	"sync"
	"time"

	"github.com/dirstore/dirstore/internal/datadir"
	"github.com/dirstore/dirstore/internal/escape"
	"github.com/dirstore/dirstore/internal/manifest"
	"github.com/dirstore/dirstore/internal/rangecache"
)

// storeStreams is a Store's support for Streams over its values and for
// its hooks.
type storeStreams struct {
	// space names this Store's value files in the cache: their names are
	// unique within a Store (versions never repeat), not across Stores.
	spaceOnce sync.Once
	space     uint64

	hooks [numEvents]hookList
}

func (st *storeStreams) spaceID() uint64 {
	st.spaceOnce.Do(func() { st.space = rangecache.NewSpace() })
	return st.space
}

func (st *storeStreams) hooked(i int) bool { return len(st.hooks[i].load()) > 0 }

// fire runs the Store's hooks for a Get, View or Set: with a nil Stream.
func (st *storeStreams) fire(i int, data []byte, n int) {
	for _, h := range st.hooks[i].load() {
		h.fn(nil, data, n)
	}
}

// fireSet runs the write hooks for a SetBuffers of bufs.
func (st *storeStreams) fireSet(bufs [][]byte) {
	if !st.hooked(evWrite) {
		return
	}
	var data []byte
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	if len(bufs) == 1 {
		data = bufs[0]
	}
	st.fire(evWrite, data, n)
}

// Hook registers fn to run after every value read or written through the
// Store, in registration order, in the goroutine that made the call, after
// it is done and with no lock of the Store held (fn may use the Store):
//
//   - OnRead: after Get and View, with a nil *Stream, the value and its
//     length; after each Read and ReadAt on a Stream from Open, with that
//     Stream, the bytes read and their count (after the Stream's own
//     hooks).
//   - OnWrite: after Set, SetBuffers and SetFrom succeed, with a nil
//     *Stream and n the value's length; data is the value when the Store
//     had it as one slice (Set, and SetBuffers of one buffer), and nil
//     otherwise (SetFrom, and SetBuffers of several buffers, which are not
//     joined for the hook).
//
// data must not be modified or kept. Verify and Open's recovery do not run
// hooks. An unknown ev is an error that names it and matches fs.ErrInvalid.
func (s *Store) Hook(ev Event, fn HookFunc) error {
	i, err := eventIndex(ev)
	if err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("dirstore: nil hook for %q: %w", string(ev), fs.ErrInvalid)
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return fmt.Errorf("dirstore: hook %s: %w", s.dir, ErrClosed)
	}
	s.streams.hooks[i].add(hook{fn: fn})
	return nil
}

// Open returns a read-only Stream over key's current value, with the
// default StreamOptions. See OpenStream.
func (s *Store) Open(key string) (*Stream, error) { return s.OpenStream(key, nil) }

// OpenStream returns a read-only Stream over key's current value (the
// version at the time of the call), which the caller must Close. The Stream
// keeps reading that version after the key is overwritten or deleted, and
// after the Store is closed; a Stream opened later reads the new one. Its
// Name is the value file's path, which stays in place, holding the value,
// until the Stream is closed (or the Store, whichever comes first), though
// the key be overwritten, deleted or evicted meanwhile: another program may
// read the value by that path.
//
// The value's file never changes, so the Stream is immutable
// (StreamOptions.Immutable is implied): its cached reads take no system
// call. Its length is checked when it is opened, and its checksum when it
// is read from start to end by Read (or whole by one ReadAt): a mismatch is
// an error matching ErrCorrupt, returned instead of io.EOF. Bytes returned
// before the end cannot be taken back; Get checks before it returns.
//
// On a file system other than the operating system's (Options.FS), the
// Stream reads through it rather than through StreamOptions.Backend.
//
// A value that waits in a NoSync store's write buffer is written to its
// file first. A store that failed (ErrFailed) cannot do that: the Stream
// then reads the value from memory (its name is the value file's path with
// "buffered" for the version).
func (s *Store) OpenStream(key string, opts *StreamOptions) (*Stream, error) {
	st, _, err := s.openStream(key, opts)
	return st, err
}

// openStream is OpenStream, also returning the entry of the value opened.
func (s *Store) openStream(key string, opts *StreamOptions) (*Stream, manifest.Entry, error) {
	var entry manifest.Entry
	o, err := opts.withDefaults()
	if err != nil {
		return nil, entry, keyErr("open", key, err)
	}
	if err := s.begin("open", key, false); err != nil {
		return nil, entry, err
	}
	defer s.closeMu.RUnlock()
	if _, ok := s.wb.get(key); ok {
		// A stream reads the value's file: write it first.
		if err := s.applyBuffered(); err != nil {
			op, ok := s.wb.get(key)
			switch {
			case s.failed.Load() == nil:
				return nil, entry, keyErr("open", key, fmt.Errorf("applying buffered writes: %w", err))
			case ok && op.del:
				return nil, entry, keyErr("open", key, ErrNotFound)
			case ok:
				// A failed store cannot write it: read it from memory,
				// as Get and View do.
				st, entry := s.bufferedStream(key, op, o)
				s.noteRead(key, 0, nil)
				return st, entry, nil
			}
			// Applied by another caller before the failure: in its file.
		}
	}
	// The stream reads the file for as long as it is open: resolve pins it,
	// and the pin passes to the stream's file, released by its Close.
	var st *Stream
	err = s.resolve("open", key, true, func(name string, e manifest.Entry) error {
		rf, err := s.files.OpenRead(name)
		if err != nil {
			return err
		}
		if rf.Size() != e.Size {
			rf.Close()
			return &fs.PathError{Op: "open", Path: s.files.Path(name),
				Err: fmt.Errorf("%w: %d bytes, want %d", datadir.ErrSize, rf.Size(), e.Size)}
		}
		pf := &pinnedFile{ReadFile: rf, unpin: func() { s.gc.unpin(name) }}
		st, entry = s.valueStream(name, pf, e.Size, e.CRC, o), e
		return nil
	})
	s.noteRead(key, 0, err) // a use; the stream's reads are not counted as BytesRead
	if err != nil {
		return nil, entry, err
	}
	return st, entry, nil
}

func (s *Store) valueStream(name string, rf datadir.ReadFile, size int64, crc uint32, o StreamOptions) *Stream {
	st := &Stream{
		name:      s.files.Path(name),
		fd:        rf.Fd(),
		rf:        rf,
		eng:       o.Backend,
		immutable: true,
		// The checksum stands in for the modification time: should a name
		// ever hold other content, the cached entries would not match.
		fixed: rangecache.Snapshot{Size: size, Mtime: int64(crc)},
		chunk: o.ChunkSize,
		cache: o.Cache.c,
		id:    rangecache.Acquire(rangecache.IdentKey{Space: s.streams.spaceID(), Name: name}),
		store: &s.streams,
	}
	// Every stream checks what it reads: the file may have been damaged
	// since another stream checked it.
	st.verify = &verifier{want: crc}
	st.cleanup = runtime.AddCleanup(st, func(r streamRes) { r.release() }, streamRes{fd: st.fd, rf: rf})
	return st
}

// bufferedStream returns a Stream over op's value, which waits in the
// write buffer of a store that can no longer write it to its file, and the
// entry the value would have had.
func (s *Store) bufferedStream(key string, op pendingOp, o StreamOptions) (*Stream, manifest.Entry) {
	e := manifest.Entry{Size: int64(len(op.value)), CRC: crc32.Checksum(op.value, datadir.Castagnoli), ModTime: op.modTime}
	// No value file has this name (a file's ends in its version, and long
	// ones are cut): in the stream cache, it is this key's alone, and
	// a failed store's buffered value for the key does not change.
	name := escape.Quote(key) + "#buffered"
	return s.valueStream(name, &memValue{Reader: bytes.NewReader(op.value), name: name, modTime: op.modTime}, e.Size, e.CRC, o), e
}

// memValue is a value in memory, as a Stream reads a value file.
type memValue struct {
	*bytes.Reader // ReadAt and Size
	name          string
	modTime       int64
}

func (m *memValue) Close() error { return nil }
func (m *memValue) Fd() int      { return -1 }

func (m *memValue) Stat() (fs.FileInfo, error) { return m, nil }

// memValue is its own fs.FileInfo: a read-only regular file.
func (m *memValue) Name() string       { return m.name }
func (m *memValue) Mode() fs.FileMode  { return 0o444 }
func (m *memValue) ModTime() time.Time { return time.Unix(0, m.modTime) }
func (m *memValue) IsDir() bool        { return false }
func (m *memValue) Sys() any           { return nil }

// pinnedFile is a value file that is pinned against reuse until closed.
type pinnedFile struct {
	datadir.ReadFile
	once  sync.Once
	unpin func()
}

func (f *pinnedFile) Close() error {
	err := f.ReadFile.Close()
	f.once.Do(f.unpin)
	return err
}

// Stat passes on the Stat of a file of a vfs.FS, which has no descriptor.
func (f *pinnedFile) Stat() (fs.FileInfo, error) {
	if st, ok := f.ReadFile.(interface{ Stat() (fs.FileInfo, error) }); ok {
		return st.Stat()
	}
	return nil, &fs.PathError{Op: "stat", Err: errors.ErrUnsupported}
}
