package backends_test

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/dirstore/dirstore/backends"
	"golang.org/x/sys/unix"
)

// forEngine runs f once per engine available here, with a fresh engine.
func forEngine(t *testing.T, f func(t *testing.T, b backends.Backend)) {
	for _, e := range engines(t) {
		t.Run("engine="+e.name, func(t *testing.T) {
			b, err := e.new()
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			f(t, b)
		})
	}
}

func openT(t *testing.T, b backends.Backend, name string, flag int) *backends.File {
	t.Helper()
	f, err := backends.OpenFile(name, flag, 0o644, &backends.FileOptions{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// fileWith creates a file holding content in a temporary directory.
func fileWith(t *testing.T, content string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

func wantPathErr(t *testing.T, err error, op, path string, target error) {
	t.Helper()
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v (%T), want *fs.PathError", err, err)
	}
	if pe.Op != op || pe.Path != path || !errors.Is(err, target) {
		t.Fatalf("err = %v, want op %q path %q matching %v", err, op, path, target)
	}
}

func TestOpenMissing(t *testing.T) {
	name := filepath.Join(t.TempDir(), "missing")
	_, err := backends.Open(name, os.O_RDONLY, 0)
	wantPathErr(t, err, "open", name, fs.ErrNotExist)
	if !errors.Is(err, unix.ENOENT) {
		t.Errorf("err = %v, want unix.ENOENT inside", err)
	}
}

func TestFileReadWriteSeek(t *testing.T) {
	forEngine(t, func(t *testing.T, b backends.Backend) {
		name := filepath.Join(t.TempDir(), "f")
		f := openT(t, b, name, os.O_RDWR|os.O_CREATE|os.O_EXCL)
		if n, err := f.Write([]byte("hello, world")); n != 12 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		if pos, err := f.Seek(0, io.SeekCurrent); pos != 12 || err != nil {
			t.Fatalf("Seek(0, Current) = %d, %v", pos, err)
		}
		if pos, err := f.Seek(-5, io.SeekEnd); pos != 7 || err != nil {
			t.Fatalf("Seek(-5, End) = %d, %v", pos, err)
		}
		p := make([]byte, 10)
		if n, err := f.Read(p); n != 5 || err != nil || string(p[:n]) != "world" {
			t.Fatalf("Read = %d, %v, %q", n, err, p[:n])
		}
		if n, err := f.Read(p); n != 0 || err != io.EOF {
			t.Fatalf("Read at the end = %d, %v", n, err)
		}
		if _, err := f.Seek(-1, io.SeekStart); err == nil {
			t.Fatal("Seek to -1 succeeded")
		}
		if _, err := f.Seek(0, 7); err == nil {
			t.Fatal("Seek with whence 7 succeeded")
		}
		// Past the end: writes zero-fill.
		if _, err := f.Seek(20, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte("!")); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(name)
		if want := "hello, world\x00\x00\x00\x00\x00\x00\x00\x00!"; string(got) != want {
			t.Fatalf("content %q, want %q", got, want)
		}
		// The descriptor's own offset is not used.
		if off, _ := unix.Seek(int(f.Fd()), 0, io.SeekCurrent); off != 0 {
			t.Errorf("descriptor offset moved to %d", off)
		}
	})
}

func TestFileTruncateStat(t *testing.T) {
	forEngine(t, func(t *testing.T, b backends.Backend) {
		name := fileWith(t, "0123456789")
		f := openT(t, b, name, os.O_RDWR)
		if err := f.Truncate(4); err != nil {
			t.Fatal(err)
		}
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		osfi, _ := os.Stat(name)
		if fi.Name() != "f" || fi.Size() != 4 || fi.Mode() != osfi.Mode() || fi.IsDir() || !fi.ModTime().Equal(osfi.ModTime()) {
			t.Errorf("Stat = %s %d %v %v, os.Stat = %s %d %v %v", fi.Name(), fi.Size(), fi.Mode(), fi.ModTime(), osfi.Name(), osfi.Size(), osfi.Mode(), osfi.ModTime())
		}
		if _, ok := fi.Sys().(*syscall.Stat_t); !ok {
			t.Errorf("Sys() is %T, want *syscall.Stat_t", fi.Sys())
		}
		if err := f.Truncate(8); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(name)
		if string(got) != "0123\x00\x00\x00\x00" {
			t.Errorf("content after growing %q", got)
		}
		if err := f.Sync(); err != nil {
			t.Error(err)
		}
		if err := f.Datasync(); err != nil {
			t.Error(err)
		}
		if err := f.Truncate(-1); !errors.Is(err, unix.EINVAL) {
			t.Errorf("Truncate(-1) = %v, want EINVAL", err)
		}
	})
}

func TestFileClosed(t *testing.T) {
	forEngine(t, func(t *testing.T, b backends.Backend) {
		name := fileWith(t, "abc")
		f, err := backends.OpenFile(name, os.O_RDWR, 0, &backends.FileOptions{Backend: b})
		if err != nil {
			t.Fatal(err)
		}
		fd := int(f.Fd())
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); !errors.Is(err, unix.EBADF) {
			t.Errorf("descriptor still open after Close: %v", err)
		}
		p := make([]byte, 1)
		for _, c := range []struct {
			op  string
			err error
		}{
			{"read", second(f.ReadAt(p, 0))},
			{"write", second(f.WriteAt(p, 0))},
			{"read", second(f.Read(p))},
			{"write", second(f.Write(p))},
			{"seek", second(f.Seek(0, io.SeekStart))},
			{"sync", f.Sync()},
			{"datasync", f.Datasync()},
			{"truncate", f.Truncate(0)},
			{"stat", second(f.Stat())},
			{"read", f.ReadMany([]backends.Op{{Buf: p}})},
			{"write", f.WriteMany([]backends.Op{{Buf: p}})},
			{"close", f.Close()},
		} {
			wantPathErr(t, c.err, c.op, name, fs.ErrClosed)
		}
		for _, err := range f.Chunks(1) {
			wantPathErr(t, err, "read", name, fs.ErrClosed)
		}
		for _, err := range f.Lines() {
			wantPathErr(t, err, "read", name, fs.ErrClosed)
		}
		if f.Fd() != ^uintptr(0) {
			t.Errorf("Fd after Close = %d", f.Fd())
		}
	})
}

func second[T any](_ T, err error) error { return err }

// TestFileCloseWaits closes a File under concurrent readers: every call
// returns data or fs.ErrClosed, and Close returns after them.
func TestFileCloseWaits(t *testing.T) {
	forEngine(t, func(t *testing.T, b backends.Backend) {
		name := fileWith(t, strings.Repeat("x", 1<<20))
		f, err := backends.OpenFile(name, os.O_RDONLY, 0, &backends.FileOptions{Backend: b})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errc := make(chan error, 32)
		for range 32 {
			wg.Go(func() {
				p := make([]byte, 64<<10)
				for {
					n, err := f.ReadAt(p, 4096)
					if errors.Is(err, fs.ErrClosed) {
						return
					}
					if err != nil || n != len(p) {
						errc <- fmt.Errorf("ReadAt = %d, %v", n, err)
						return
					}
				}
			})
		}
		if err := f.Close(); err != nil {
			t.Error(err)
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Error(err)
		}
	})
}

func TestFileErrno(t *testing.T) {
	forEngine(t, func(t *testing.T, b backends.Backend) {
		f, err := backends.OpenFile("/dev/full", os.O_WRONLY, 0, &backends.FileOptions{Backend: b})
		if err != nil {
			t.Skip(err)
		}
		defer f.Close()
		_, err = f.WriteAt([]byte("x"), 0)
		wantPathErr(t, err, "write", "/dev/full", unix.ENOSPC)
		_, err = f.Write([]byte("x"))
		wantPathErr(t, err, "write", "/dev/full", unix.ENOSPC)
		_, err = f.ReadAt(make([]byte, 1), -1)
		wantPathErr(t, err, "readat", "/dev/full", err) // negative offset
	})
}

func TestFileMany(t *testing.T) {
	forEngine(t, func(t *testing.T, b backends.Backend) {
		name := fileWith(t, "")
		f := openT(t, b, name, os.O_RDWR)
		w := []backends.Op{{Off: 0, Buf: []byte("aaaa")}, {Off: 8, Buf: []byte("bbbb")}, {Off: 4, Buf: []byte("cccc")}}
		if err := f.WriteMany(w); err != nil {
			t.Fatal(err)
		}
		for _, op := range w {
			if op.Kind != backends.OpWrite || op.N != 4 || op.Err != nil {
				t.Errorf("write op %+v", op)
			}
		}
		r := []backends.Op{{Off: 8, Buf: make([]byte, 4)}, {Off: 10, Buf: make([]byte, 4)}, {Off: 0, Buf: make([]byte, 8)}, {Off: -1, Buf: make([]byte, 1)}}
		err := f.ReadMany(r)
		if err != io.EOF {
			t.Errorf("ReadMany = %v, want io.EOF (the first error)", err)
		}
		if string(r[0].Buf) != "bbbb" || string(r[2].Buf) != "aaaacccc" || r[1].N != 2 || r[1].Err != io.EOF {
			t.Errorf("ReadMany results %q %q %q (%d, %v)", r[0].Buf, r[2].Buf, r[1].Buf[:r[1].N], r[1].N, r[1].Err)
		}
		wantPathErr(t, r[3].Err, "read", name, r[3].Err)
	})
}

func TestFileAppend(t *testing.T) {
	forEngine(t, func(t *testing.T, b backends.Backend) {
		name := fileWith(t, "abc")
		f := openT(t, b, name, os.O_RDWR|os.O_APPEND)
		if _, err := f.Write([]byte("def")); err != nil {
			t.Fatal(err)
		}
		if pos, _ := f.Seek(0, io.SeekCurrent); pos != 6 {
			t.Errorf("position after an append %d, want 6", pos)
		}
		if _, err := f.WriteAt([]byte("x"), 0); err == nil {
			t.Error("WriteAt on an O_APPEND file succeeded")
		}
		got, _ := os.ReadFile(name)
		if string(got) != "abcdef" {
			t.Errorf("content %q", got)
		}
	})
}

func TestWrap(t *testing.T) {
	forEngine(t, func(t *testing.T, b backends.Backend) {
		name := fileWith(t, "0123456789")
		osf, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		osf.Read(make([]byte, 4))
		f, err := backends.WrapFile(osf, &backends.FileOptions{Backend: b})
		if err != nil {
			t.Fatal(err)
		}
		if f.Name() != name {
			t.Errorf("Name = %q", f.Name())
		}
		got, err := io.ReadAll(f)
		if string(got) != "456789" || err != nil {
			t.Errorf("ReadAll after Wrap = %q, %v; want the rest after the os.File's offset", got, err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := osf.Close(); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("the wrapped os.File is still open: %v", err)
		}

		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		defer w.Close()
		if _, err := backends.WrapFile(r, &backends.FileOptions{Backend: b}); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("Wrap(pipe) = %v, want ErrUnsupported", err)
		}
	})
}

func collect(t *testing.T, seq func(func([]byte, error) bool)) []string {
	t.Helper()
	var out []string
	for item, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(item))
	}
	return out
}

func TestFileChunks(t *testing.T) {
	forEngine(t, func(t *testing.T, b backends.Backend) {
		f := openT(t, b, fileWith(t, "0123456789abcdefghij"), os.O_RDONLY)
		f.Seek(3, io.SeekStart)
		if got, want := collect(t, f.Chunks(5)), []string{"34567", "89abc", "defgh", "ij"}; !slices.Equal(got, want) {
			t.Errorf("Chunks(5) from 3 = %q, want %q", got, want)
		}
		f.Seek(0, io.SeekStart)
		for chunk := range f.Chunks(4) {
			if string(chunk) != "0123" {
				t.Errorf("first chunk %q", chunk)
			}
			break
		}
		if pos, _ := f.Seek(0, io.SeekCurrent); pos != 4 {
			t.Errorf("position after a break %d, want 4", pos)
		}
		var got []string
		for chunk := range f.Chunks(4) {
			got = append(got, string(chunk))
			if len(got) == 1 {
				f.Seek(16, io.SeekStart) // the next step reads there
			}
		}
		if want := []string{"4567", "ghij"}; !slices.Equal(got, want) {
			t.Errorf("Chunks with a Seek in the body = %q, want %q", got, want)
		}
		for _, err := range f.Chunks(0) {
			if err == nil {
				t.Error("Chunks(0) yielded no error")
			}
		}
	})
}

func TestFileLines(t *testing.T) {
	long := strings.Repeat("L", 200<<10)
	forEngine(t, func(t *testing.T, b backends.Backend) {
		for _, tc := range []struct {
			name, content string
			start         int64
			want          []string
		}{
			{"empty", "", 0, nil},
			{"one", "a", 0, []string{"a"}},
			{"newline", "a\n", 0, []string{"a"}},
			{"blank lines", "\n\na\n\n", 0, []string{"", "", "a", ""}},
			{"crlf", "a\r\nb\r\nc\r", 0, []string{"a", "b", "c"}},
			{"no final newline", "a\nbc", 0, []string{"a", "bc"}},
			{"from the position", "first\nsecond\nthird\n", 8, []string{"cond", "third"}},
			{"long", "x\n" + long + "\ny", 0, []string{"x", long, "y"}},
			{"many", strings.Repeat("line\n", 30000), 0, slices.Repeat([]string{"line"}, 30000)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := openT(t, b, fileWith(t, tc.content), os.O_RDONLY)
				f.Seek(tc.start, io.SeekStart)
				got := collect(t, f.Lines())
				if !slices.Equal(got, tc.want) {
					t.Errorf("Lines = %d lines %.60q, want %d lines %.60q", len(got), got, len(tc.want), tc.want)
				}
			})
		}

		f := openT(t, b, fileWith(t, "one\ntwo\nthree\nfour\n"), os.O_RDONLY)
		for line := range f.Lines() {
			if string(line) == "two" {
				break
			}
		}
		if pos, _ := f.Seek(0, io.SeekCurrent); pos != 8 {
			t.Errorf("position after a break at line two %d, want 8 (start of three)", pos)
		}
		if got := collect(t, f.Lines()); !slices.Equal(got, []string{"three", "four"}) {
			t.Errorf("Lines resumed = %q", got)
		}
		f.Seek(0, io.SeekStart)
		var got []string
		for line := range f.Lines() {
			got = append(got, string(line))
			if len(got) == 1 {
				f.Seek(14, io.SeekStart)
			}
		}
		if want := []string{"one", "four"}; !slices.Equal(got, want) {
			t.Errorf("Lines with a Seek in the body = %q, want %q", got, want)
		}
	})
}
