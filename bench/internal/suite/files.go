package suite

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// value returns n bytes of a fixed pattern.
func value(n int) []byte {
	v := make([]byte, n)
	for i := range v {
		v[i] = byte(i*7 + i>>8)
	}
	return v
}

// key is the i-th key; keys sort in the order of i and need no escaping in a
// file name, so every contender stores them under the same name.
func key(i int) string { return fmt.Sprintf("k%09d", i) }

// perm returns the numbers [0, n) in random order.
func perm(n int, seed uint64) []int {
	return rand.New(rand.NewPCG(seed, 0x5eed)).Perm(n)
}

// fsyncFile makes path's data durable, so that no page of it is dirty.
func fsyncFile(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Fsync(fd); err != nil {
		return &os.PathError{Op: "fsync", Path: path, Err: err}
	}
	return nil
}

// regularFiles returns the regular files directly in dir.
func regularFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}

// fsyncDir fsyncs every regular file directly in dir, and dir.
func fsyncDir(dir string) error {
	files, err := regularFiles(dir)
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := fsyncFile(f); err != nil {
			return err
		}
	}
	return fsyncFile(dir)
}

// dropCache evicts the data of every regular file directly in dir from the
// page cache with POSIX_FADV_DONTNEED (clean pages only: fsync first), and
// checks with mincore that the first file has no page left in memory.
func dropCache(dir string) error {
	files, err := regularFiles(dir)
	if err != nil {
		return err
	}
	for _, f := range files {
		fd, err := unix.Open(f, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: f, Err: err}
		}
		err = unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED)
		unix.Close(fd)
		if err != nil {
			return &os.PathError{Op: "fadvise", Path: f, Err: err}
		}
	}
	if len(files) > 0 {
		n, err := residentPages(files[0])
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%s: %d pages still in the page cache after POSIX_FADV_DONTNEED (dirty?)", files[0], n)
		}
	}
	return nil
}

// residentPages counts the pages of path that are in the page cache.
func residentPages(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return 0, err
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return 0, &os.PathError{Op: "mmap", Path: path, Err: err}
	}
	defer unix.Munmap(m)
	page := os.Getpagesize()
	vec := make([]byte, (len(m)+page-1)/page)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		return 0, &os.PathError{Op: "mincore", Path: path, Err: errno}
	}
	n := 0
	for _, b := range vec {
		n += int(b & 1)
	}
	return n, nil
}

// patternFile returns a file of size bytes under the scratch directory whose
// every 8-byte word holds its own offset, made once per run and fsynced.
func (e *Env) patternFile(size int64) (string, error) {
	v, err := e.Shared(fmt.Sprintf("pattern-%d", size), func() (any, error) {
		dir, err := e.Subdir("pattern")
		if err != nil {
			return nil, err
		}
		name := filepath.Join(dir, fmt.Sprintf("data-%d", size))
		f, err := os.Create(name)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, 1<<20)
		for off := int64(0); off < size; off += int64(len(buf)) {
			for i := 0; i+8 <= len(buf); i += 8 {
				binary.LittleEndian.PutUint64(buf[i:], uint64(off)+uint64(i))
			}
			if _, err := f.Write(buf[:min(int64(len(buf)), size-off)]); err != nil {
				f.Close()
				return nil, err
			}
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, err
		}
		return name, f.Close()
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// warm reads name whole, so that it sits in the page cache.
func warm(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		n, err := f.Read(buf)
		if n == 0 || err != nil {
			return nil
		}
	}
}
