package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dirstore/dirstore"
)

// runWithin runs the tool and fails the test if it has not returned after
// d: a read that blocks (on a FIFO, say) must not hang the tool.
func runWithin(t *testing.T, d time.Duration, args ...string) result {
	t.Helper()
	done := make(chan result, 1)
	go func() { done <- dirstoreRun("", args...) }()
	select {
	case r := <-done:
		return r
	case <-time.After(d):
		t.Fatalf("dirstore %q still running after %v", args, d)
		return result{}
	}
}

// TestTamperValueFiles plants what is not a value's file under the values'
// names: every read of such a key, and verify, report corruption (exit 3)
// and never hang, follow a link, or return the planted bytes.
func TestTamperValueFiles(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "outside")
	tampers := []struct {
		key    string
		msg    string // in the reason on stderr
		tamper func(p, value string) error
	}{
		// A link to a file with the very bytes of the value: still not
		// the value's file.
		{"symlink", "symbolic link", func(p, v string) error {
			if err := os.WriteFile(outside, []byte(v), 0o600); err != nil {
				return err
			}
			return replace(p, func() error { return os.Symlink(outside, p) })
		}},
		// A FIFO with no writer: an open or read that blocks would hang.
		{"fifo", "FIFO", func(p, _ string) error {
			return replace(p, func() error { return syscall.Mkfifo(p, 0o600) })
		}},
		{"directory", "directory", func(p, _ string) error {
			return replace(p, func() error { return os.Mkdir(p, 0o700) })
		}},
		{"socket", "socket", func(p, _ string) error {
			return replace(p, func() error { return mksock(p) })
		}},
		{"longer", "size", func(p, v string) error { return os.WriteFile(p, []byte(v+"x"), 0o600) }},
		{"shorter", "size", func(p, v string) error { return os.WriteFile(p, []byte(v[1:]), 0o600) }},
		{"flipped", "checksum", func(p, v string) error {
			return os.WriteFile(p, []byte(strings.ToUpper(v[:1])+v[1:]), 0o600)
		}},
		{"missing", "no such file", func(p, _ string) error { return os.Remove(p) }},
	}
	value := func(key string) string { return "the value of " + key }
	for _, tc := range tampers {
		mustRun(t, value(tc.key), "put", dir, tc.key)
	}
	mustRun(t, value("sound"), "put", dir, "sound")
	for _, tc := range tampers {
		if err := tc.tamper(valueFile(t, dir, tc.key), value(tc.key)); err != nil {
			t.Fatalf("%s: %v", tc.key, err)
		}
	}

	for _, flags := range [][]string{nil, {"-mmap"}} {
		for _, tc := range tampers {
			args := append(append([]string(nil), flags...), "get", dir, tc.key)
			r := runWithin(t, 10*time.Second, args...)
			if r.code != exitCorrupt || !strings.Contains(r.stderr, "corrupt") || !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("dirstore %q: exit %d, stderr %q; want exit %d, corrupt: %s", args, r.code, r.stderr, exitCorrupt, tc.msg)
			}
			if r.stdout != "" {
				t.Errorf("dirstore %q printed %q", args, r.stdout)
			}
		}
		args := append(append([]string(nil), flags...), "get", dir, "sound")
		if r := runWithin(t, 10*time.Second, args...); r.code != 0 || r.stdout != value("sound") {
			t.Errorf("dirstore %q: exit %d, %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}

	r := runWithin(t, 10*time.Second, "verify", dir)
	if r.code != exitCorrupt {
		t.Errorf("verify: exit %d, want %d; stderr:\n%s", r.code, exitCorrupt, r.stderr)
	}
	var want []string
	for _, tc := range tampers {
		want = append(want, tc.key)
	}
	if got := strings.Fields(r.stdout); strings.Join(got, " ") != strings.Join(sortedCopy(want), " ") {
		t.Errorf("verify listed %q, want %q", got, sortedCopy(want))
	}
	if wantLine := fmt.Sprintf("verify: %d of %d values are corrupt\n", len(tampers), len(tampers)+1); !strings.HasSuffix(r.stderr, wantLine) {
		t.Errorf("verify's summary: stderr ends %q, want %q", lastLine(r.stderr), wantLine)
	}

	// The library says the same, for every way of reading.
	s, err := dirstore.Open(dir, &dirstore.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range tampers {
		if _, err := s.Get(tc.key); !errors.Is(err, dirstore.ErrCorrupt) {
			t.Errorf("Get(%q) = %v, want ErrCorrupt", tc.key, err)
		}
		if err := s.View(tc.key, func([]byte) error { return nil }); !errors.Is(err, dirstore.ErrCorrupt) {
			t.Errorf("View(%q) = %v, want ErrCorrupt", tc.key, err)
		}
		st, err := s.OpenStream(tc.key, nil)
		if err == nil {
			_, err = io.ReadAll(st)
			st.Close()
		}
		if !errors.Is(err, dirstore.ErrCorrupt) {
			t.Errorf("OpenStream(%q) and read = %v, want ErrCorrupt", tc.key, err)
		}
	}
}

// replace removes the file p and puts what plant makes in its place.
func replace(p string, plant func() error) error {
	if err := os.Remove(p); err != nil {
		return err
	}
	return plant()
}

// mksock leaves a bound Unix socket at p.
func mksock(p string) error {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	return syscall.Bind(fd, &syscall.SockaddrUnix{Name: p})
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

func lastLine(s string) string {
	s = strings.TrimSuffix(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// TestTamperManifest damages the manifest's files: every command then
// fails with one line that names the manifest's directory and exit 3, and
// the library's error matches ErrCorrupt.
func TestTamperManifest(t *testing.T) {
	src := t.TempDir()
	for i := range 20 {
		mustRun(t, fmt.Sprintf("value %d", i), "put", src, fmt.Sprintf("key%02d", i))
	}
	manDir := filepath.Join(src, ".dirstore", "manifest")
	names, err := filepath.Glob(filepath.Join(manDir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	// each applies damage to every file of the manifest matching pattern.
	each := func(dir, pattern string, damage func(p string) error) error {
		m, _ := filepath.Glob(filepath.Join(dir, ".dirstore", "manifest", pattern))
		if len(m) == 0 {
			t.Fatalf("no manifest file %q (the manifest holds %q)", pattern, names)
		}
		for _, p := range m {
			if err := damage(p); err != nil {
				return err
			}
		}
		return nil
	}
	for _, tc := range []struct {
		name   string
		damage func(dir string) error
	}{
		{"table-flipped", func(dir string) error {
			return each(dir, "*.sst", func(p string) error { return flip(p, 0.3) })
		}},
		{"table-footer", func(dir string) error {
			return each(dir, "*.sst", func(p string) error { return flip(p, 0.999) })
		}},
		{"table-truncated", func(dir string) error { return each(dir, "*.sst", truncateHalf) }},
		{"table-missing", func(dir string) error { return os.Remove(newest(t, dir, "*.sst")) }},
		{"manifest-truncated", func(dir string) error { return truncateHalf(newest(t, dir, "MANIFEST-*")) }},
		{"manifest-missing", func(dir string) error { return os.Remove(newest(t, dir, "MANIFEST-*")) }},
		{"options-garbage", func(dir string) error {
			return os.WriteFile(newest(t, dir, "OPTIONS-*"), []byte("garbage\n"), 0o600)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "store")
			if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
				t.Fatal(err)
			}
			if err := tc.damage(dir); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{
				{"get", dir, "key01"}, {"ls", dir}, {"verify", dir}, {"put", dir, "new"}, {"rm", dir, "key02"},
			} {
				r := runWithin(t, 30*time.Second, args...)
				if r.code != exitCorrupt || strings.Count(r.stderr, "\n") != 1 ||
					!strings.Contains(r.stderr, filepath.Join(dir, ".dirstore", "manifest")) {
					t.Errorf("dirstore %q: exit %d, stderr %q; want exit %d and one line naming the manifest", args, r.code, r.stderr, exitCorrupt)
				}
			}
			_, err := dirstore.Open(dir, nil)
			if !errors.Is(err, dirstore.ErrCorrupt) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Open = %q, want one line matching ErrCorrupt", err)
			}
		})
	}
}

// flip inverts a byte of p at the fraction at of its length.
func flip(p string, at float64) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	b[int(float64(len(b)-1)*at)] ^= 0xff
	return os.WriteFile(p, b, 0o600)
}

func truncateHalf(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	return os.Truncate(p, fi.Size()/2)
}

// newest returns the last, in name order, of the manifest's files matching
// pattern.
func newest(t *testing.T, dir, pattern string) string {
	m, _ := filepath.Glob(filepath.Join(dir, ".dirstore", "manifest", pattern))
	if len(m) == 0 {
		t.Fatalf("no manifest file %q", pattern)
	}
	return m[len(m)-1]
}
