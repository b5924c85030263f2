package dirstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/escape"
	"github.com/dirstore/dirstore/internal/storetest"
)

// fsModel is what Store.FS should show of a set of keys: the visible files
// with their values, and the directories.
type fsModel struct {
	files map[string][]byte
	dirs  map[string]bool
}

func newFSModel(kv map[string][]byte) fsModel {
	m := fsModel{files: map[string][]byte{}, dirs: map[string]bool{}}
	for k := range kv {
		if k == "." || !fs.ValidPath(k) {
			continue
		}
		for d := path.Dir(k); d != "."; d = path.Dir(d) {
			m.dirs[d] = true
		}
	}
	for k, v := range kv {
		if k != "." && fs.ValidPath(k) && !m.dirs[k] {
			m.files[k] = v
		}
	}
	return m
}

// names returns every file and directory of the model, sorted.
func (m fsModel) names() []string {
	return slices.Sorted(func(yield func(string) bool) {
		for k := range m.files {
			if !yield(k) {
				return
			}
		}
		for k := range m.dirs {
			if !yield(k) {
				return
			}
		}
	})
}

// fsKeys returns several hundred keys in nested directories, with keys that
// are not valid paths and files that clash with directories mixed in.
func fsKeys() map[string][]byte {
	kv := map[string][]byte{}
	dirs := []string{"", "a/", "a/b/", "a/b/c/", "a/b/c/d/", "b/", "b c/", "ü/ñ/", "x.y/", "a/b2/", "a/b-/", "a/b!/"}
	for i := range 480 {
		d := dirs[i%len(dirs)]
		key := fmt.Sprintf("%sf%03d%s", d, i, []string{"", ".txt", ".html", " #%?", ".json"}[i%5])
		var v []byte
		if i%11 != 0 { // some empty values
			v = bytes.Repeat([]byte(fmt.Sprintf("value of %s, %d\n", key, i)), 1+i%13*7)
		}
		kv[key] = v
	}
	for _, k := range []string{
		// Not valid paths.
		"", ".", "..", "/abs", "a//b", "a/./x", "a/../x", "a/b/", "trail/", "a/b/c/..",
		"./x", "../x", "only//double", "a/b//c/d",
		// Files named as directories of other keys: hidden.
		"a", "a/b", "a/b/c", "b c", "x.y",
		// Beside directories, sorting between the directory's name and its
		// keys: visible.
		"a/b!", "a/b.txt", "a/b0", "a/b-",
	} {
		kv[k] = []byte("clash or invalid: " + k)
	}
	// A directory whose only keys are not valid paths does not exist.
	kv["ghost//x"] = []byte("hidden")
	return kv
}

func setAll(t testing.TB, s *dirstore.Store, kv map[string][]byte) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		if err := s.Set(k, kv[k]); err != nil {
			t.Fatal(err)
		}
	}
}

// checkFSModel checks that walking fsys finds exactly the model, with the
// right contents.
func checkFSModel(t *testing.T, fsys fs.FS, m fsModel) {
	t.Helper()
	var got []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		got = append(got, p)
		if d.IsDir() != m.dirs[p] {
			t.Errorf("%s: IsDir = %v", p, d.IsDir())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := m.names(); !slices.Equal(got, want) {
		t.Fatalf("walk found %d names, want %d:\ngot  %q\nwant %q", len(got), len(want), got, want)
	}
	for name, want := range m.files {
		data, err := fs.ReadFile(fsys, name)
		if err != nil || !bytes.Equal(data, want) {
			t.Fatalf("ReadFile(%q) = %q, %v; want %q", name, data, err, want)
		}
	}
}

func TestFSConformance(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts *dirstore.Options
	}{
		{"durable", nil},
		{"nosync", &dirstore.Options{NoSync: true, WriteBuffer: -1}},
		// Most values wait in the write buffer while the view reads them.
		{"nosync,buffered", &dirstore.Options{NoSync: true, WriteBuffer: 64 << 20, CheckpointInterval: time.Hour}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			s := storetest.Open(t, t.TempDir(), mode.opts)
			kv := fsKeys()
			setAll(t, s, kv)
			// Deletes, buffered in the last mode: the directory ü/ñ empties.
			for k := range kv {
				if strings.HasPrefix(k, "ü/") || k == "f000" {
					if err := s.Delete(k); err != nil {
						t.Fatal(err)
					}
					delete(kv, k)
				}
			}
			m := newFSModel(kv)
			if len(m.files) < 400 || len(m.dirs) < 8 {
				t.Fatalf("model has %d files, %d directories", len(m.files), len(m.dirs))
			}
			if ops, _ := s.Buffered(); mode.name == "nosync,buffered" && ops < 400 {
				t.Fatalf("only %d operations buffered", ops)
			}
			fsys := s.FS()
			if err := fstest.TestFS(fsys, m.names()...); err != nil {
				t.Fatal(err)
			}
			checkFSModel(t, fsys, m)
			sub, err := fs.Sub(fsys, "a/b")
			if err != nil {
				t.Fatal(err)
			}
			subModel := fsModel{files: map[string][]byte{}, dirs: map[string]bool{}}
			for k, v := range m.files {
				if rest, ok := strings.CutPrefix(k, "a/b/"); ok {
					subModel.files[rest] = v
				}
			}
			for k := range m.dirs {
				if rest, ok := strings.CutPrefix(k, "a/b/"); ok {
					subModel.dirs[rest] = true
				}
			}
			checkFSModel(t, sub, subModel)
		})
	}
}

// Hidden keys: names that are not valid paths are refused, and a file
// named as a directory opens as the directory.
func TestFSHiddenKeys(t *testing.T) {
	s := storetest.Open(t, t.TempDir(), nil)
	setAll(t, s, fsKeys())
	fsys := s.FS()
	for _, name := range []string{"", "/abs", "a//b", "a/./x", "a/../x", "a/b/", "..", "../x"} {
		_, err := fsys.Open(name)
		var pe *fs.PathError
		if !errors.As(err, &pe) || pe.Path != name || pe.Op != "open" || !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Open(%q) = %v, want a PathError matching fs.ErrInvalid", name, err)
		}
	}
	for _, name := range []string{"a", "a/b", "a/b/c", "b c", "x.y"} {
		fi, err := fs.Stat(fsys, name)
		if err != nil || !fi.IsDir() {
			t.Errorf("Stat(%q) = %v, %v; want the directory", name, fi, err)
		}
		if _, err := fs.ReadFile(fsys, name); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("ReadFile(%q) = %v, want an error matching fs.ErrInvalid", name, err)
		}
	}
	for _, name := range []string{"ghost", "ghost/x", "missing", "a/b/missing", "a/b!/x"} {
		for op, call := range map[string]func() error{
			"open":    func() error { _, err := fsys.Open(name); return err },
			"stat":    func() error { _, err := fs.Stat(fsys, name); return err },
			"read":    func() error { _, err := fs.ReadFile(fsys, name); return err },
			"readdir": func() error { _, err := fs.ReadDir(fsys, name); return err },
		} {
			err := call()
			var pe *fs.PathError
			if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) || pe.Path != name {
				t.Errorf("%s(%q) = %v, want a PathError naming it, matching fs.ErrNotExist", op, name, err)
			}
		}
	}
	if _, err := fs.ReadDir(fsys, "a/b.txt"); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadDir of a file = %v, want a not-a-directory error", err)
	}
}

// Listing a directory skips the keys of its subdirectories instead of
// reading them.
func TestFSReadDirSkipsSubdirectories(t *testing.T) {
	s := storetest.Open(t, t.TempDir(), &dirstore.Options{NoSync: true, WriteBuffer: -1})
	kv := map[string][]byte{"a": nil, "z": nil, "m/x": nil}
	for i := range 2000 {
		kv[fmt.Sprintf("big/%04d", i)] = nil
		kv[fmt.Sprintf("m/deep/%04d", i)] = nil
	}
	setAll(t, s, kv)
	for _, tc := range []struct {
		dir  string
		want []string
	}{
		{"", []string{"a", "big", "m", "z"}},
		{"m/", []string{"deep", "x"}},
	} {
		names, visited, err := s.ListFSDir(tc.dir)
		if err != nil || !slices.Equal(names, tc.want) {
			t.Fatalf("ListFSDir(%q) = %q, %v; want %q", tc.dir, names, err, tc.want)
		}
		// The subdirectories' 2,000 keys each are skipped: at most one
		// key per name is read.
		if visited > len(tc.want) {
			t.Errorf("ListFSDir(%q) looked at %d keys for %d names", tc.dir, visited, len(tc.want))
		}
	}
}

// ModTime is the value's write time, kept across reopening; files adopted
// from zict report their modification time.
func TestFSModTime(t *testing.T) {
	dir := t.TempDir()
	old := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
	// A zict file: adopted by the first Open, with no write time recorded.
	zict := filepath.Join(dir, escape.Quote("z/old"))
	if err := os.WriteFile(zict, []byte("from zict"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(zict, old, old); err != nil {
		t.Fatal(err)
	}
	s, err := dirstore.Open(dir, &dirstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	mustSet(t, s, "z/new", []byte("new"))       // buffered
	mustSet(t, s, "z/big", make([]byte, 1<<20)) // written at once
	if _, err := s.SetFrom("z/from", strings.NewReader("streamed")); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	check := func(when string) {
		t.Helper()
		fsys := s.FS()
		ents, err := fs.ReadDir(fsys, "z")
		if err != nil || len(ents) != 4 {
			t.Fatalf("%s: ReadDir = %v, %v", when, ents, err)
		}
		for _, d := range ents {
			name := "z/" + d.Name()
			info, err := d.Info()
			if err != nil {
				t.Fatal(err)
			}
			st, err := fs.Stat(fsys, name)
			if err != nil {
				t.Fatal(err)
			}
			f, err := fsys.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			fst, err := f.Stat()
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			mt := st.ModTime()
			if !info.ModTime().Equal(mt) || !fst.ModTime().Equal(mt) {
				t.Errorf("%s: %s: ModTime %v (ReadDir), %v (Stat), %v (file Stat) differ", when, name, info.ModTime(), mt, fst.ModTime())
			}
			if name == "z/old" {
				if !mt.Equal(old) {
					t.Errorf("%s: adopted file's ModTime = %v, want its mtime %v", when, mt, old)
				}
			} else if mt.Before(before) || mt.After(after) {
				t.Errorf("%s: %s: ModTime = %v, want between %v and %v", when, name, mt, before, after)
			}
		}
	}
	check("buffered")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = storetest.Open(t, dir, &dirstore.Options{ReadOnly: true})
	check("reopened read-only")
}

// The view is live: walks and reads while keys are set and deleted see
// whole values of the right keys, and at worst a name that went away.
func TestFSConcurrentWrites(t *testing.T) {
	s := storetest.Open(t, t.TempDir(), &dirstore.Options{NoSync: true})
	const n = 40
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			k := fmt.Sprintf("d%d/k%d", i%3, i%n)
			var err error
			if i%5 == 4 {
				err = s.Delete(k)
				if errors.Is(err, fs.ErrNotExist) {
					err = nil
				}
			} else {
				err = s.Set(k, bytes.Repeat([]byte(k+";"), 1+i%300))
			}
			if err != nil {
				errc <- err
				return
			}
		}
	}()
	fsys := s.FS()
	deadline := time.Now().Add(2 * time.Second)
	reads := 0
	for time.Now().Before(deadline) {
		err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a directory emptied meanwhile
			}
			if err != nil || d.IsDir() {
				return err
			}
			data, err := fs.ReadFile(fsys, p)
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			if len(data) == 0 || !bytes.Equal(data, bytes.Repeat([]byte(p+";"), len(data)/(len(p)+1))) {
				return fmt.Errorf("%s holds %q", p, data)
			}
			reads++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if reads < 100 {
		t.Fatalf("only %d reads", reads)
	}
}

func TestFSOpenIsStream(t *testing.T) {
	s := storetest.Open(t, t.TempDir(), nil)
	value := bytes.Repeat([]byte("0123456789"), 1000)
	mustSet(t, s, "d/v", value)
	f, err := s.FS().Open("d/v")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, ok := f.(*dirstore.Stream)
	if !ok {
		t.Fatalf("Open returned %T, want *dirstore.Stream", f)
	}
	p := make([]byte, 5)
	if _, err := st.ReadAt(p, 9995); err != nil || string(p) != "56789" {
		t.Fatalf("ReadAt = %q, %v", p, err)
	}
	// The Stream keeps reading the version it opened.
	mustSet(t, s, "d/v", []byte("new"))
	if _, err := st.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(st)
	if err != nil || !bytes.Equal(got, value) {
		t.Fatalf("ReadAll after overwrite = %d bytes, %v", len(got), err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Stat(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Stat after Close = %v, want fs.ErrClosed", err)
	}
}

func TestFSErrors(t *testing.T) {
	dir := t.TempDir()
	s, err := dirstore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "d/v", []byte("hello"))
	fsys := s.FS()

	// A value whose file was damaged: same length, other bytes.
	if err := os.WriteFile(filepath.Join(dir, valueFiles(t, dir)[0]), []byte("HELLO"), 0o600); err != nil {
		t.Fatalf("damaging the value file: %v", err)
	}
	if _, err := fs.ReadFile(fsys, "d/v"); !errors.Is(err, dirstore.ErrCorrupt) {
		t.Errorf("ReadFile of a damaged value = %v, want ErrCorrupt", err)
	}
	f, err := fsys.Open("d/v")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(f); !errors.Is(err, dirstore.ErrCorrupt) {
		t.Errorf("reading a damaged value to the end = %v, want ErrCorrupt", err)
	}
	f.Close()

	d, err := fsys.Open("d")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Read(make([]byte, 1)); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("Read of a directory = %v, want fs.ErrInvalid", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.(fs.ReadDirFile).ReadDir(-1); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("ReadDir after the Store closed = %v, want fs.ErrClosed", err)
	}
	d.Close()
	if err := d.Close(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("second Close = %v, want fs.ErrClosed", err)
	}
	for op, call := range map[string]func() error{
		"open":    func() error { _, err := fsys.Open("d/v"); return err },
		"stat":    func() error { _, err := fs.Stat(fsys, "d/v"); return err },
		"read":    func() error { _, err := fs.ReadFile(fsys, "d/v"); return err },
		"readdir": func() error { _, err := fs.ReadDir(fsys, "."); return err },
	} {
		err := call()
		var pe *fs.PathError
		if !errors.Is(err, fs.ErrClosed) || !errors.As(err, &pe) {
			t.Errorf("%s after Close = %v, want a PathError matching fs.ErrClosed", op, err)
		}
	}
}

// http.FileServer serves a Store: whole values, Range requests (206 with
// the right bytes), Last-Modified and conditional requests, directory
// listings without hidden keys, and 404 for hidden or missing names.
func TestFSHTTP(t *testing.T) {
	s := storetest.Open(t, t.TempDir(), &dirstore.Options{NoSync: true})
	value := make([]byte, 100_000)
	for i := range value {
		value[i] = byte(i * 7 % 251)
	}
	mustSet(t, s, "static/blob.bin", value)
	mustSet(t, s, "static/page.html", []byte("<html><body>hi</body></html>"))
	mustSet(t, s, "static/a//hidden", []byte("not a valid path"))
	mustSet(t, s, "static/sub", []byte("a file hidden by the directory"))
	mustSet(t, s, "static/sub/x.txt", []byte("x"))
	srv := httptest.NewServer(http.FileServer(http.FS(s.FS())))
	defer srv.Close()
	info, err := fs.Stat(s.FS(), "static/blob.bin")
	if err != nil {
		t.Fatal(err)
	}

	get := func(path string, header ...string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest("GET", srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}

	resp, body := get("/static/blob.bin")
	if resp.StatusCode != 200 || !bytes.Equal(body, value) {
		t.Fatalf("GET = %d, %d bytes", resp.StatusCode, len(body))
	}
	lm := resp.Header.Get("Last-Modified")
	if want := info.ModTime().UTC().Format(http.TimeFormat); lm != want {
		t.Errorf("Last-Modified = %q, want %q", lm, want)
	}
	for _, tc := range []struct {
		rng        string
		start, end int // inclusive
	}{
		{"bytes=0-0", 0, 0},
		{"bytes=1000-1999", 1000, 1999},
		{"bytes=99990-", 99990, 99999},
		{"bytes=-5", 99995, 99999},
		{"bytes=50000-200000", 50000, 99999},
	} {
		resp, body := get("/static/blob.bin", "Range", tc.rng)
		wantCR := fmt.Sprintf("bytes %d-%d/%d", tc.start, tc.end, len(value))
		if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != wantCR ||
			!bytes.Equal(body, value[tc.start:tc.end+1]) {
			t.Errorf("Range %s: %d, Content-Range %q, %d bytes; want 206, %q, %d bytes",
				tc.rng, resp.StatusCode, resp.Header.Get("Content-Range"), len(body), wantCR, tc.end+1-tc.start)
		}
	}
	// Two ranges: a multipart/byteranges body holding both.
	resp, body = get("/static/blob.bin", "Range", "bytes=10-19,500-509")
	if resp.StatusCode != http.StatusPartialContent || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") ||
		!bytes.Contains(body, value[10:20]) || !bytes.Contains(body, value[500:510]) {
		t.Errorf("two ranges: %d, %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp, _ := get("/static/blob.bin", "Range", "bytes=200000-"); resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("Range past the end: %d, want 416", resp.StatusCode)
	}
	if resp, body := get("/static/blob.bin", "If-Modified-Since", lm); resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Errorf("If-Modified-Since the Last-Modified: %d, %d bytes; want 304", resp.StatusCode, len(body))
	}
	resp, body = get("/static/page.html")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || string(body) != "<html><body>hi</body></html>" {
		t.Errorf("page.html: %d, %q, %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	resp, body = get("/static/")
	if resp.StatusCode != 200 {
		t.Fatalf("listing: %d", resp.StatusCode)
	}
	for _, want := range []string{`href="blob.bin"`, `href="page.html"`, `href="sub/"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("listing lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(string(body), "hidden") || strings.Count(string(body), `"sub`) != 1 {
		t.Errorf("listing shows hidden keys:\n%s", body)
	}
	if resp, body := get("/static/sub/x.txt"); resp.StatusCode != 200 || string(body) != "x" {
		t.Errorf("sub/x.txt: %d, %q", resp.StatusCode, body)
	}
	for _, p := range []string{"/static/missing", "/static/a//hidden", "/static/a/"} {
		if resp, _ := get(p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
}

// BenchmarkFSReadDir lists the root of a store whose keys sit in 4
// subdirectories: the cost should not grow with the keys under them.
func BenchmarkFSReadDir(b *testing.B) {
	for _, perDir := range []int{100, 10000} {
		b.Run(fmt.Sprintf("keys=%d", 4*perDir), func(b *testing.B) {
			s, err := dirstore.Open(b.TempDir(), &dirstore.Options{NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			for d := range 4 {
				for i := range perDir {
					if err := s.Set(fmt.Sprintf("dir%d/%05d", d, i), nil); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := s.Sync(); err != nil {
				b.Fatal(err)
			}
			fsys := s.FS()
			b.ResetTimer()
			for range b.N {
				if list, err := fs.ReadDir(fsys, "."); err != nil || len(list) != 4 {
					b.Fatal(list, err)
				}
			}
		})
	}
}
