package backends

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
)

// Chunks returns an iterator over the File's content in chunks of size
// bytes, from the File's current position. Every chunk but the last is size
// bytes long. The position advances past each chunk before it is yielded, so
// after a break it points just past the last chunk seen; each step reads at
// the position, so a Seek in the loop body moves the iteration. A failure is
// yielded once, with a nil chunk, and ends the iteration; the end of the file
// just ends it.
//
// The chunk's memory is reused by the next step: copy what must outlive it.
// On a Direct File, size must be a multiple of the file system's block size.
func (f *File) Chunks(size int) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		if size <= 0 {
			yield(nil, &fs.PathError{Op: "read", Path: f.name, Err: fmt.Errorf("backends: chunk size %d is not positive", size)})
			return
		}
		var buf []byte
		if f.flags&Direct != 0 {
			buf = AlignedBuffer(size)
		} else {
			buf = make([]byte, size)
		}
		for {
			f.mu.Lock()
			ok := f.refs.acquire()
			if !ok {
				f.mu.Unlock()
				yield(nil, f.closedErr("read"))
				return
			}
			n, err := f.b.ReadAt(f.fd, buf, f.mu.pos, f.flags)
			f.refs.release()
			f.mu.pos += int64(n)
			f.mu.Unlock()
			if n > 0 && !yield(buf[:n], nil) {
				return
			}
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(nil, f.wrapErr("read", err))
				return
			}
		}
	}
}

// linesBlock is how much Lines reads at a time.
const linesBlock = 64 << 10

// Lines returns an iterator over the lines of the File from its current
// position: one line per step, without its end-of-line marker (an optional
// "\r" and a mandatory "\n", as bufio.ScanLines). A last line without "\n"
// is yielded too. Lines may be of any length.
//
// Lines reads ahead in blocks, but the position only moves past lines
// already yielded: after a break it points at the start of the next line. A
// Seek in the loop body restarts the iteration at the new position.
// The line's memory is reused by the next step: copy what must outlive it.
// Lines does not work on a Direct File (offsets are not aligned).
func (f *File) Lines() iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		if f.flags&Direct != 0 {
			yield(nil, &fs.PathError{Op: "read", Path: f.name, Err: fmt.Errorf("backends: Lines on an O_DIRECT file: %w", errors.ErrUnsupported)})
			return
		}
		buf := make([]byte, 0, linesBlock)
		start := 0 // buf[start:] is not consumed yet
		f.mu.Lock()
		bufPos := f.mu.pos // file offset of buf[0]
		f.mu.Unlock()
		eof := false

		// emit moves the position past the line and yields it. When the loop
		// body moved the position, the read-ahead is dropped.
		emit := func(line []byte) bool {
			next := bufPos + int64(start)
			f.mu.Lock()
			f.mu.pos = next
			f.mu.Unlock()
			if len(line) > 0 && line[len(line)-1] == '\r' {
				line = line[:len(line)-1]
			}
			if !yield(line, nil) {
				return false
			}
			f.mu.Lock()
			if pos := f.mu.pos; pos != next {
				buf, start, bufPos, eof = buf[:0], 0, pos, false
			}
			f.mu.Unlock()
			return true
		}

		for {
			if i := bytes.IndexByte(buf[start:], '\n'); i >= 0 {
				line := buf[start : start+i]
				start += i + 1
				if !emit(line) {
					return
				}
				continue
			}
			if eof {
				if start < len(buf) {
					line := buf[start:]
					start = len(buf)
					emit(line)
				}
				return
			}
			// Keep the unconsumed tail, growing the buffer for a long line.
			bufPos += int64(start)
			buf = buf[:copy(buf, buf[start:])]
			start = 0
			if cap(buf)-len(buf) < linesBlock/2 {
				buf = append(buf, make([]byte, cap(buf))...)[:len(buf)]
			}
			ok := f.refs.acquire()
			if !ok {
				yield(nil, f.closedErr("read"))
				return
			}
			n, err := f.b.ReadAt(f.fd, buf[len(buf):cap(buf)], bufPos+int64(len(buf)), f.flags)
			f.refs.release()
			buf = buf[:len(buf)+n]
			switch {
			case err == io.EOF:
				eof = true
			case err != nil:
				yield(nil, f.wrapErr("read", err))
				return
			}
		}
	}
}
