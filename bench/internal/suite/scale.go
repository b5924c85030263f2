package suite

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dirstore/dirstore"
)

// scaleRun fills a NoSync store with n keys of 1 KiB in dir and measures what
// changes with the number of keys, each against the same measure at a small
// size or against the plain file system, in the same run:
//   - the Set rate over the last 10,000 keys against the first 10,000 and
//     against keys 10,001 to 20,000 (the first 10,000 include the write
//     buffer's first fill, which costs nothing), and the same ratios for
//     the file system's floor (n plain 1 KiB files created, written and
//     closed in one directory, just before);
//   - Open (and Len) of the full store against Open of a 1,000-key store;
//   - the heap after Open against the 1,000-key store's;
//   - the rate of listing every key;
//   - Get of a key at random against os.ReadFile of a file of the same
//     directory at random, and against a Get's two parts (the manifest's
//     lookup, and the file's open, pread and close), in interleaved rounds,
//     with the default ManifestCache and with 8 MiB.
func scaleRun(w io.Writer, dir string, n, rounds int) error {
	const window = 10_000
	if n < 3*window {
		return fmt.Errorf("-scale %d: at least %d keys", n, 3*window)
	}
	big, small := filepath.Join(dir, "scale-big"), filepath.Join(dir, "scale-small")
	defer os.RemoveAll(big)
	defer os.RemoveAll(small)
	opts := &dirstore.Options{NoSync: true}
	v := value(valueSize)

	// The file system's own floor first: the same number of 1 KiB files
	// created and written in one directory with plain os calls.
	floor := filepath.Join(dir, "scale-floor")
	defer os.RemoveAll(floor)
	if err := os.Mkdir(floor, 0o700); err != nil {
		return err
	}
	floorFirst, floorSecond, floorLast, err := fillRates(n, window, "floor", func(i int) error {
		f, err := os.OpenFile(filepath.Join(floor, key(i)+"#1"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = f.Write(v)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		return err
	}

	// The floor leaves gigabytes of dirty pages: written out now, they do
	// not slow the store's first Sets down.
	syscall.Sync()

	s, err := dirstore.Open(big, opts)
	if err != nil {
		return err
	}
	first, second, last, err := fillRates(n, window, "store", func(i int) error { return s.Set(key(i), v) })
	if err != nil {
		s.Close()
		return err
	}
	if err := s.Close(); err != nil {
		return err
	}
	t, err := dirstore.Open(small, opts)
	if err != nil {
		return err
	}
	for i := 1; i <= 1000; i++ {
		if err := t.Set(key(i), v); err != nil {
			t.Close()
			return err
		}
	}
	if err := t.Close(); err != nil {
		return err
	}

	// Open and heap, interleaved: small, big, small, big...
	var openBig, openSmall []float64
	var heapBig, heapSmall []float64
	for range rounds {
		for _, c := range []struct {
			dir        string
			open, heap *[]float64
		}{{small, &openSmall, &heapSmall}, {big, &openBig, &heapBig}} {
			runtime.GC()
			t0 := time.Now()
			st, err := dirstore.Open(c.dir, opts)
			if err != nil {
				return err
			}
			_ = st.Len()
			*c.open = append(*c.open, float64(time.Since(t0)))
			for i := 1; i <= 1000; i++ { // use it a little, as a program would
				if _, err := st.Get(key(1 + (i*7919)%1000)); err != nil {
					st.Close()
					return err
				}
			}
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			*c.heap = append(*c.heap, float64(ms.HeapAlloc))
			if err := st.Close(); err != nil {
				return err
			}
		}
	}

	s, err = dirstore.Open(big, opts)
	if err != nil {
		return err
	}
	var listRates []float64
	for range rounds {
		t0 := time.Now()
		count := 0
		for _, err := range s.Keys() {
			if err != nil {
				s.Close()
				return err
			}
			count++
		}
		if count != n {
			s.Close()
			return fmt.Errorf("Keys listed %d keys, want %d", count, n)
		}
		listRates = append(listRates, float64(count)/time.Since(t0).Seconds())
	}

	// Get at random against os.ReadFile of the same directory's files,
	// each run on the store reopened: with the default manifest cache,
	// with a small one (the default before it grew to hold a million
	// keys' manifest), and with the default again, as the first run
	// follows the fill (compactions) and may pay for it.
	names, err := valueFiles(big)
	if err != nil {
		return err
	}
	if err := s.Close(); err != nil {
		return err
	}
	// The fill left gigabytes of values to write back, which would slow
	// the first run's reads of inodes and directory blocks.
	syscall.Sync()
	rng := rand.New(rand.NewPCG(1, 2))
	const smallCache = 8 << 20
	type getRun struct {
		cache int64 // 0: the default
		getRates
		heap float64
		rss  int64 // the process's resident memory's growth
	}
	getRuns := []getRun{{cache: 0}, {cache: smallCache}, {cache: 0}}
	for i := range getRuns {
		r := &getRuns[i]
		s, err := dirstore.Open(big, &dirstore.Options{NoSync: true, ManifestCache: r.cache})
		if err != nil {
			return err
		}
		debug.FreeOSMemory()
		rss0 := rssBytes()
		r.getRates, r.heap, err = getVsRead(s, big, names, n, rounds, rng)
		debug.FreeOSMemory()
		r.rss = rssBytes() - rss0
		if err != nil {
			s.Close()
			return err
		}
		if err := s.Close(); err != nil {
			return err
		}
	}

	m := describeMachine(dir)
	rate := func(d time.Duration) float64 { return window / d.Seconds() }
	setFirst, setSecond, setLast := rate(first), rate(second), rate(last)
	fsFirst, fsSecond, fsLast := rate(floorFirst), rate(floorSecond), rate(floorLast)
	oB, oS := median(openBig), median(openSmall)
	hB, hS := median(heapBig), median(heapSmall)
	lr := median(listRates)
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	fmt.Fprintf(w, "\n### %s keys, NoSync, 1 KiB values (%s)\n\n", thousands(n), shortFS(m.FS))
	fmt.Fprintf(w, "    cd bench && go run . -scale %d -dir %s\n\n", n, dir)
	fmt.Fprintf(w, "- %s, %d rounds; load average %s at the end\n\n", m.Date.UTC().Format("2006-01-02 15:04 UTC"), rounds, loadAverage())
	fmt.Fprintf(w, "| measure | at %s keys | reference | ratio | goal |\n|---|--:|--:|--:|---|\n", thousands(n))
	for _, c := range []struct {
		what       string
		ref, fsRef float64
	}{
		{what: "first 10,000", ref: setFirst, fsRef: fsFirst},
		{what: "keys 10,001 to 20,000 (past the write buffer's first fill)", ref: setSecond, fsRef: fsSecond},
	} {
		fmt.Fprintf(w, "| Set rate, last 10,000 keys vs %s | %.1f k/s | %.1f k/s | %.2fx | ≥ 0.7x: %s |\n",
			c.what, setLast/1e3, c.ref/1e3, setLast/c.ref, verdict(setLast/c.ref >= 0.7))
		fmt.Fprintf(w, "| the file system's floor (create, write, close of a 1 KiB file in one directory), the same windows | %.1f k/s | %.1f k/s | %.2fx | |\n",
			fsLast/1e3, c.fsRef/1e3, fsLast/c.fsRef)
		fmt.Fprintf(w, "| Set's ratio against the floor's | | | %.2fx | |\n", (setLast/c.ref)/(fsLast/c.fsRef))
	}
	fmt.Fprintf(w, "| Open + Len vs a 1,000-key store | %s | %s | %.2fx the time | < 3x: %s |\n",
		time.Duration(oB).Round(time.Microsecond), time.Duration(oS).Round(time.Microsecond), oB/oS, verdict(oB/oS < 3))
	fmt.Fprintf(w, "| heap after Open + 1,000 Gets vs a 1,000-key store | %.1f MiB | %.1f MiB | %+.2f MiB | within 8 MiB: %s |\n",
		hB/(1<<20), hS/(1<<20), (hB-hS)/(1<<20), verdict(hB-hS <= 8<<20))
	fmt.Fprintf(w, "| Keys, listing every key | %.2f M keys/s | | | ≥ 5M keys/s: %s |\n", lr/1e6, verdict(lr >= 5e6))
	for i, r := range getRuns {
		what := "Get at random vs os.ReadFile of a random file of the directory, default ManifestCache (64 MiB)"
		goal := "≥ 1.0x: " + verdict(r.get/r.read >= 1)
		switch {
		case r.cache != 0:
			what, goal = fmt.Sprintf("the same, ManifestCache %d MiB", r.cache>>20), ""
		case i > 0:
			what = "the same, default again"
		}
		fmt.Fprintf(w, "| %s | %.1f k/s | %.1f k/s | %.2fx | %s |\n", what, r.get/1e3, r.read/1e3, r.get/r.read, goal)
		fmt.Fprintf(w, "| its floor: the manifest's lookup alone (Has, %.1f k/s) and a Get's system calls (open, pread, close: %.1f k/s), one after the other | %.1f k/s | %.1f k/s | %.2fx | |\n",
			r.lookup/1e3, r.raw/1e3, r.floor()/1e3, r.read/1e3, r.floor()/r.read)
	}
	fmt.Fprintf(w, "\nThe Get rows' memory, run by run: the Go heap in use grew by")
	for _, r := range getRuns {
		fmt.Fprintf(w, " %+.1f MiB", r.heap/(1<<20))
	}
	fmt.Fprintf(w, " (the entry cache filling, 8,192 entries), on top of the store's heap after Open above, and the process's resident memory by")
	for _, r := range getRuns {
		fmt.Fprintf(w, " %+.1f MiB", float64(r.rss)/(1<<20))
	}
	fmt.Fprintf(w, " (that heap, and the manifest's blocks as they were read: they and the memtables share a cache of ManifestCache"+
		" plus 8 MiB for two memtables, outside the Go heap where cgo is on, %v here).\n", cgoEnabled())
	return nil
}

// getVsRead measures, in interleaved rounds (the order rotating), Gets of
// keys at random against os.ReadFile of value files at random, and the two
// parts of a Get: the manifest's lookup alone (Has), and the system calls
// a Get makes to read a file it has found (open with O_NOATIME, one pread
// a byte longer than the value, close). It returns the median rates and
// how much the Go heap in use grew over them.
func getVsRead(s *dirstore.Store, dir string, names []string, n, rounds int, rng *rand.Rand) (r getRates, heap float64, err error) {
	const gets = 20_000
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	dfd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return r, 0, err
	}
	defer syscall.Close(dfd)
	buf := make([]byte, valueSize+1)
	ops := []func() error{
		func() error {
			k := key(1 + rng.IntN(n))
			got, err := s.Get(k)
			return checkValue(k, got, err)
		},
		func() error {
			name := names[rng.IntN(len(names))]
			got, err := os.ReadFile(filepath.Join(dir, name))
			return checkValue(name, got, err)
		},
		func() error {
			k := key(1 + rng.IntN(n))
			if ok, err := s.Has(k); err != nil || !ok {
				return fmt.Errorf("Has(%q) = %v, %v", k, ok, err)
			}
			return nil
		},
		func() error {
			name := names[rng.IntN(len(names))]
			fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOATIME|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			m, err := unix.Pread(fd, buf, 0)
			unix.Close(fd)
			if err == nil && m != valueSize {
				err = fmt.Errorf("%s: %d bytes", name, m)
			}
			return err
		},
	}
	rates := make([][]float64, len(ops))
	for round := range rounds {
		for j := range ops {
			c := (round + j) % len(ops)
			t0 := time.Now()
			for range gets {
				if err := ops[c](); err != nil {
					return r, 0, err
				}
			}
			rates[c] = append(rates[c], gets/time.Since(t0).Seconds())
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	runtime.KeepAlive(names) // the caller's list, not the store's, whichever round is last
	r = getRates{get: median(rates[0]), read: median(rates[1]), lookup: median(rates[2]), raw: median(rates[3])}
	return r, float64(ms.HeapAlloc) - float64(before), nil
}

// getRates are getVsRead's medians, in operations per second.
type getRates struct {
	get, read   float64 // Store.Get, os.ReadFile
	lookup, raw float64 // the parts of a Get: Has, and open, pread, close
}

// floor is the rate of a Get that cost no more than its two parts.
func (r getRates) floor() float64 { return 1 / (1/r.lookup + 1/r.raw) }

// fillRates calls set(i) for i from 1 to n and returns the time taken by the
// first window calls, by the next window calls and by the last window
// calls; it reports the rate of every 100,000 calls on standard error.
func fillRates(n, window int, what string, set func(i int) error) (first, second, last time.Duration, err error) {
	start := time.Now()
	lap := start
	for i := 1; i <= n; i++ {
		switch i {
		case window + 1:
			first = time.Since(start)
			start = time.Now()
		case 2*window + 1:
			second = time.Since(start)
		case n - window + 1:
			start = time.Now()
		}
		if err := set(i); err != nil {
			return 0, 0, 0, err
		}
		if i%100_000 == 0 {
			fmt.Fprintf(os.Stderr, "bench: scale: %s: %d keys, %.1f k/s over the last 100,000\n", what, i, 100/time.Since(lap).Seconds())
			lap = time.Now()
		}
	}
	return first, second, time.Since(start), nil
}

// valueFiles lists the store's value files (every regular file not hidden).
func valueFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: no value files", dir)
	}
	slices.Sort(names)
	return names, nil
}

// cgoEnabled reports whether the program was built with cgo, with which
// pebble allocates its block cache outside the Go heap.
func cgoEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "CGO_ENABLED" {
			return s.Value == "1"
		}
	}
	return false
}

// rssBytes returns the process's resident memory (VmRSS), or 0 where
// /proc does not say.
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err == nil {
				return kb << 10
			}
		}
	}
	return 0
}
