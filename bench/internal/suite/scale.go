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
//     directory at random, in interleaved rounds.
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
	// with the default manifest cache and then with a large one.
	names, err := valueFiles(big)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	gr, rr, heap, err := getVsRead(s, big, names, n, rounds, rng)
	if err != nil {
		return err
	}
	if err := s.Close(); err != nil {
		return err
	}
	const bigCache = 64 << 20
	s, err = dirstore.Open(big, &dirstore.Options{NoSync: true, ManifestCache: bigCache})
	if err != nil {
		return err
	}
	defer s.Close()
	grBig, rrBig, heapBig2, err := getVsRead(s, big, names, n, rounds, rng)
	if err != nil {
		return err
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
	fmt.Fprintf(w, "| Get at random vs os.ReadFile of a random file of the directory, default ManifestCache (8 MiB) | %.1f k/s | %.1f k/s | %.2fx | ≥ 1.0x: %s |\n",
		gr/1e3, rr/1e3, gr/rr, verdict(gr/rr >= 1))
	fmt.Fprintf(w, "| the same, ManifestCache %d MiB | %.1f k/s | %.1f k/s | %.2fx | ≥ 1.0x: %s |\n",
		bigCache>>20, grBig/1e3, rrBig/1e3, grBig/rrBig, verdict(grBig/rrBig >= 1))
	fmt.Fprintf(w, "\nThe Get rows' memory: the Go heap in use grew by %+.1f MiB and %+.1f MiB over them (the entry cache filling, 8,192 entries),"+
		" on top of the store's heap after Open above; the manifest's blocks and memtables share a cache of ManifestCache (8 MiB, then %d MiB)"+
		" plus 8 MiB for two memtables, outside the Go heap where cgo is on (%v here).\n", heap/(1<<20), heapBig2/(1<<20), bigCache>>20, cgoEnabled())
	return nil
}

// getVsRead measures, in interleaved rounds, Gets of keys at random
// against os.ReadFile of value files at random, and returns the median
// rates and how much the Go heap in use grew over them.
func getVsRead(s *dirstore.Store, dir string, names []string, n, rounds int, rng *rand.Rand) (get, read, heap float64, err error) {
	const gets = 20_000
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	var getRates, readRates []float64
	for range rounds {
		t0 := time.Now()
		for range gets {
			k := key(1 + rng.IntN(n))
			got, err := s.Get(k)
			if err := checkValue(k, got, err); err != nil {
				return 0, 0, 0, err
			}
		}
		getRates = append(getRates, gets/time.Since(t0).Seconds())
		t0 = time.Now()
		for range gets {
			name := names[rng.IntN(len(names))]
			got, err := os.ReadFile(filepath.Join(dir, name))
			if err := checkValue(name, got, err); err != nil {
				return 0, 0, 0, err
			}
		}
		readRates = append(readRates, gets/time.Since(t0).Seconds())
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	runtime.KeepAlive(names) // the caller's list, not the store's, whichever round is last
	return median(getRates), median(readRates), float64(ms.HeapAlloc) - float64(before), nil
}

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
