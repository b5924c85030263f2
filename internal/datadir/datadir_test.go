package datadir_test

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dirstore/dirstore/internal/datadir"
)

// osWrapped is the operating system's file system behind a wrapper that
// is not vfs.Default, so that Open gives the vfs.FS implementation over
// real files.
type osWrapped struct{ vfs.FS }

// kinds are the implementations of Dir: the fast one on a directory
// descriptor (Linux; elsewhere Open gives the vfs one for the default file
// system too), the vfs one over real files and over pebble's MemFS.
var kinds = []struct {
	name string
	fs   func() vfs.FS
	fast bool // Map works and OpenRead gives a descriptor
}{
	{"fast", func() vfs.FS { return vfs.Default }, runtime.GOOS == "linux"},
	{"vfs-os", func() vfs.FS { return osWrapped{vfs.Default} }, false},
	{"vfs-mem", func() vfs.FS { return vfs.NewMem() }, false},
}

// env is one implementation's Dir on a new directory.
type env struct {
	d    datadir.Dir
	fs   vfs.FS
	dir  string
	fast bool
}

func (e *env) write(t *testing.T, name, content string) {
	t.Helper()
	if err := e.d.Write(name, "", [][]byte{[]byte(content)}, true); err != nil {
		t.Fatalf("Write(%s): %v", name, err)
	}
}

func (e *env) read(t *testing.T, name string, size int) string {
	t.Helper()
	b, err := e.d.Read(name, int64(size), nil)
	if err != nil {
		t.Fatalf("Read(%s): %v", name, err)
	}
	return string(b)
}

func (e *env) exists(t *testing.T, name string) bool {
	t.Helper()
	names, err := e.d.List()
	if err != nil {
		t.Fatal(err)
	}
	return slices.Contains(names, name)
}

// isPath checks that err is a *fs.PathError matching target.
func isPath(t *testing.T, what string, err, target error) {
	t.Helper()
	var pe *fs.PathError
	if !errors.As(err, &pe) || !errors.Is(err, target) {
		t.Fatalf("%s: %v (%T), want a *fs.PathError matching %v", what, err, err, target)
	}
}

// TestDir runs every check of the Dir contract (datadir.go) over every
// implementation.
func TestDir(t *testing.T) {
	checks := []struct {
		name string
		run  func(*testing.T, *env)
	}{
		{"WriteRead", testWriteRead},
		{"WriteExisting", testWriteExisting},
		{"WriteFrom", testWriteFrom},
		{"FailedWriteRemovesFile", testFailedWrite},
		{"Reuse", testReuse},
		{"ReuseGone", testReuseGone},
		{"ReadSize", testReadSize},
		{"ReadBuf", testReadBuf},
		{"Map", testMap},
		{"OpenRead", testOpenRead},
		{"RemoveListSync", testRemoveListSync},
		{"Missing", testMissing},
	}
	for _, k := range kinds {
		for _, c := range checks {
			t.Run(k.name+"/"+c.name, func(t *testing.T) {
				fsys := k.fs()
				dir := t.TempDir()
				if k.name == "vfs-mem" {
					dir = "/d"
					if err := fsys.MkdirAll(dir, 0o700); err != nil {
						t.Fatal(err)
					}
				}
				d, err := datadir.Open(fsys, dir, 0o600)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					if err := d.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
				})
				c.run(t, &env{d: d, fs: fsys, dir: dir, fast: k.fast})
			})
		}
	}
}

func testWriteRead(t *testing.T, e *env) {
	// Empty buffers, several buffers, and more than one writev's worth.
	var many [][]byte
	var want []byte
	for i := range 3000 {
		b := []byte(fmt.Sprint(i, ","))
		many = append(many, b, nil)
		want = append(want, b...)
	}
	for name, c := range map[string]struct {
		bufs [][]byte
		want string
	}{
		"empty":   {nil, ""},
		"one":     {[][]byte{[]byte("abc")}, "abc"},
		"several": {[][]byte{[]byte("12"), nil, {}, []byte("345")}, "12345"},
		"many":    {many, string(want)},
	} {
		if err := e.d.Write(name, "", c.bufs, false); err != nil {
			t.Fatalf("Write(%s): %v", name, err)
		}
		if got := e.read(t, name, len(c.want)); got != c.want {
			t.Fatalf("Read(%s) = %.40q, want %.40q", name, got, c.want)
		}
	}
	if got := e.d.Path("x"); got != e.fs.PathJoin(e.dir, "x") {
		t.Fatalf("Path = %q", got)
	}
}

// testWriteExisting: Write's name must not exist; the file there is kept.
func testWriteExisting(t *testing.T, e *env) {
	e.write(t, "a", "old")
	err := e.d.Write("a", "", [][]byte{[]byte("new")}, true)
	isPath(t, "Write over an existing file", err, fs.ErrExist)
	_, _, err = e.d.WriteFrom("a", "", strings.NewReader("new"), true)
	isPath(t, "WriteFrom over an existing file", err, fs.ErrExist)
	if got := e.read(t, "a", 3); got != "old" {
		t.Fatalf("the existing file holds %q", got)
	}
}

func testWriteFrom(t *testing.T, e *env) {
	data := bytes.Repeat([]byte("0123456789"), 100_000) // several copy buffers
	for _, r := range []io.Reader{
		bytes.NewReader(data),
		iotest.OneByteReader(bytes.NewReader(data[:1000])),
		iotest.DataErrReader(bytes.NewReader(data[:5000])),
		strings.NewReader(""),
	} {
		name := fmt.Sprintf("%T", r)
		n, crc, err := e.d.WriteFrom(name, "", r, true)
		if err != nil {
			t.Fatalf("WriteFrom(%s): %v", name, err)
		}
		want := data[:n]
		if crc != crc32.Checksum(want, datadir.Castagnoli) {
			t.Fatalf("WriteFrom(%s): CRC %#x, want CRC-32C of what it wrote", name, crc)
		}
		if got := e.read(t, name, int(n)); got != string(want) {
			t.Fatalf("Read(%s) after WriteFrom: %d bytes differ", name, n)
		}
	}
}

// testFailedWrite: on error the file is removed. A reader that fails
// part-way fails every implementation's WriteFrom, with or without a file
// to reuse.
func testFailedWrite(t *testing.T, e *env) {
	errRead := errors.New("read failed")
	for _, reuse := range []string{"", "spare"} {
		if reuse != "" {
			e.write(t, reuse, strings.Repeat("s", 10_000))
		}
		r := io.MultiReader(strings.NewReader(strings.Repeat("x", 300_000)), iotest.ErrReader(errRead))
		_, _, err := e.d.WriteFrom("v", reuse, r, true)
		if !errors.Is(err, errRead) {
			t.Fatalf("reuse=%q: WriteFrom = %v, want the reader's error", reuse, err)
		}
		if e.exists(t, "v") {
			t.Fatalf("reuse=%q: the file of a failed WriteFrom is left", reuse)
		}
	}
}

// testReuse: Write and WriteFrom over a spare give exactly the new bytes
// (the spare was longer), and the spare is gone.
func testReuse(t *testing.T, e *env) {
	e.write(t, "spare1", strings.Repeat("old", 10_000))
	if err := e.d.Write("new1", "spare1", [][]byte{[]byte("fresh"), []byte("!")}, true); err != nil {
		t.Fatal(err)
	}
	e.write(t, "spare2", strings.Repeat("old", 10_000))
	if _, _, err := e.d.WriteFrom("new2", "spare2", strings.NewReader("from a reader"), true); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"new1": "fresh!", "new2": "from a reader"} {
		if got := e.read(t, name, len(want)); got != want {
			t.Fatalf("Read(%s) = %.40q, want %q", name, got, want)
		}
	}
	for _, spare := range []string{"spare1", "spare2"} {
		if e.exists(t, spare) {
			t.Fatalf("%s still exists after it was reused", spare)
		}
	}
}

// testReuseGone: a spare that is not there is no error: Write creates.
func testReuseGone(t *testing.T, e *env) {
	if err := e.d.Write("v", "nothing", [][]byte{[]byte("value")}, false); err != nil {
		t.Fatal(err)
	}
	if got := e.read(t, "v", 5); got != "value" {
		t.Fatalf("Read = %q", got)
	}
	if e.exists(t, "nothing") {
		t.Fatal("a spare appeared")
	}
}

// testReadSize: a file of another length than expected is ErrSize, shorter
// or longer.
func testReadSize(t *testing.T, e *env) {
	e.write(t, "v", "12345")
	for _, size := range []int64{0, 4, 6, 100} {
		_, err := e.d.Read("v", size, nil)
		isPath(t, fmt.Sprintf("Read(size=%d) of 5 bytes", size), err, datadir.ErrSize)
	}
	// A large value is read into a buffer of its exact size, and a file
	// that grew past it is seen by a read of one byte more.
	const large = 64 << 10
	big := strings.Repeat("x", large+1)
	e.write(t, "big", big)
	for _, size := range []int64{large, large + 2} {
		_, err := e.d.Read("big", size, nil)
		isPath(t, fmt.Sprintf("Read(size=%d) of %d bytes", size, len(big)), err, datadir.ErrSize)
	}
	if got, err := e.d.Read("big", large+1, nil); err != nil || string(got) != big {
		t.Fatalf("Read of a large value: %d bytes, %v", len(got), err)
	}
}

// testReadBuf: Read uses buf where it is large enough (size+1, to see a
// file that grew).
func testReadBuf(t *testing.T, e *env) {
	e.write(t, "v", "12345")
	buf := make([]byte, 0, 6)
	got, err := e.d.Read("v", 5, buf)
	if err != nil || string(got) != "12345" {
		t.Fatalf("Read = %q, %v", got, err)
	}
	if &got[0] != &buf[:1][0] {
		t.Fatal("Read did not use a large enough buf")
	}
}

func testMap(t *testing.T, e *env) {
	e.write(t, "v", "mapped bytes")
	e.write(t, "empty", "")
	data, unmap, ok, err := e.d.Map("v", 12)
	if ok != e.fast {
		t.Fatalf("Map ok = %v, want %v", ok, e.fast)
	}
	if !ok {
		return
	}
	if err != nil || string(data) != "mapped bytes" {
		t.Fatalf("Map = %q, %v", data, err)
	}
	if err := unmap(); err != nil {
		t.Fatal(err)
	}
	data, unmap, _, err = e.d.Map("empty", 0)
	if err != nil || len(data) != 0 {
		t.Fatalf("Map(empty) = %q, %v", data, err)
	}
	unmap()
	_, _, _, err = e.d.Map("v", 11)
	isPath(t, "Map of another size", err, datadir.ErrSize)
}

func testOpenRead(t *testing.T, e *env) {
	content := strings.Repeat("readable ", 1000)
	e.write(t, "v", content)
	f, err := e.d.OpenRead("v")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Size() != int64(len(content)) {
		t.Fatalf("Size = %d", f.Size())
	}
	if fd := f.Fd(); (fd >= 0) != e.fast {
		t.Fatalf("Fd = %d on %s", fd, map[bool]string{true: "the fast Dir", false: "a vfs Dir"}[e.fast])
	}
	if err := iotest.TestReader(io.NewSectionReader(f, 0, f.Size()), []byte(content)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if n, err := f.ReadAt(buf, f.Size()-5); n != 5 || err != io.EOF {
		t.Fatalf("ReadAt across the end = %d, %v; want 5, io.EOF", n, err)
	}
}

func testRemoveListSync(t *testing.T, e *env) {
	e.write(t, "a", "1")
	e.write(t, "b", "2")
	if err := e.d.SyncFiles([]string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if err := e.d.SyncDir(); err != nil {
		t.Fatal(err)
	}
	if err := e.d.Remove("a"); err != nil {
		t.Fatal(err)
	}
	names, err := e.d.List()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Sort(names); !slices.Equal(names, []string{"b"}) {
		t.Fatalf("List = %q, want [b]", names)
	}
}

// testMissing: what names no file fails with a *fs.PathError matching
// fs.ErrNotExist.
func testMissing(t *testing.T, e *env) {
	_, err := e.d.Read("none", 1, nil)
	isPath(t, "Read", err, fs.ErrNotExist)
	_, err = e.d.OpenRead("none")
	isPath(t, "OpenRead", err, fs.ErrNotExist)
	isPath(t, "Remove", e.d.Remove("none"), fs.ErrNotExist)
	isPath(t, "SyncFiles", e.d.SyncFiles([]string{"none"}), fs.ErrNotExist)
	if e.fast {
		_, _, _, err = e.d.Map("none", 1)
		isPath(t, "Map", err, fs.ErrNotExist)
	}
}
