package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dirstore/dirstore/internal/size"
)

// demoKeys is how many keys demo writes (tests lower it).
var demoKeys = 3000

// demoWorkers is how many goroutines demo's writes and reads use: concurrent
// writes share their fsyncs.
const demoWorkers = 8

const demoPrefix = "demo/"

func demoKey(i int) string { return fmt.Sprintf("%s%05d", demoPrefix, i) }

// demoValue returns generation gen of key i's value: a deterministic mix of
// sizes, mostly small, a few of about 1 MiB.
func demoValue(i, gen int) []byte {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(i))
	binary.LittleEndian.PutUint64(seed[8:], uint64(gen))
	r := rand.New(rand.NewChaCha8(seed))
	var n int
	switch p := r.IntN(100); {
	case i%600 == 7 && gen == 0:
		n = 1<<20 + r.IntN(4096)
	case p < 60:
		n = r.IntN(1024)
	case p < 95:
		n = 1024 + r.IntN(15*1024)
	default:
		n = 16*1024 + r.IntN(112*1024)
	}
	v := make([]byte, n)
	rand.NewChaCha8(seed).Read(v)
	return v
}

// The demo's plan: which keys it overwrites and deletes.
func demoOverwritten(i int) bool { return i%6 == 1 }
func demoDeleted(i int) bool     { return i%10 == 3 }

func (c *cli) demo(args []string) error {
	dir := args[0]
	n := demoKeys
	// The budget is for the cache run at the end; the checks before it
	// expect every key to stay.
	budget := c.opts.MaxBytes
	c.opts.MaxBytes = 0
	defer func() { c.opts.MaxBytes = budget }()
	// Only a new, empty or store directory: Open would adopt any other
	// directory's files as keys.
	switch err := isStore(dir); {
	case errors.Is(err, fs.ErrNotExist):
	case err == errNoStore:
		if ents, err := os.ReadDir(dir); err != nil {
			return err
		} else if len(ents) > 0 {
			return fmt.Errorf("demo: %s is neither empty nor a store; give it a new directory", dir)
		}
	case err != nil:
		return err
	}
	s, err := c.open(dir)
	if err != nil {
		return err
	}
	defer func() {
		if s != nil {
			s.Close()
		}
	}()

	mode := "sync mode: a write is durable when it returns"
	if c.opts.NoSync {
		mode = "nosync mode: writes are durable at close"
	}
	fmt.Fprintf(c.stdout, "dirstore demo: %s, %s, %d goroutines\n", dir, mode, demoWorkers)
	var old []string
	for k, err := range s.KeysWithPrefix(demoPrefix) {
		if err != nil {
			return err
		}
		old = append(old, k)
	}
	if len(old) > 0 {
		t := time.Now()
		if err := parallel(len(old), func(i int) error { return s.Delete(old[i]) }); err != nil {
			return err
		}
		c.demoRow("clear", len(old), -1, time.Since(t), "removed an earlier demo's keys")
	}

	// Reads are checked against a hash of what was written, which is
	// cheaper than generating the value again.
	seed := maphash.MakeSeed()
	sums := make([]uint64, n)
	var written atomic.Int64
	var mu sync.Mutex
	smallest, largest := int64(-1), int64(0)
	t := time.Now()
	err = parallel(n, func(i int) error {
		v := demoValue(i, 0)
		sums[i] = maphash.Bytes(seed, v)
		written.Add(int64(len(v)))
		mu.Lock()
		if smallest < 0 || int64(len(v)) < smallest {
			smallest = int64(len(v))
		}
		largest = max(largest, int64(len(v)))
		mu.Unlock()
		if len(v) >= 1<<20 {
			_, err := s.SetFrom(demoKey(i), bytes.NewReader(v)) // streamed
			return err
		}
		return s.Set(demoKey(i), v)
	})
	if err != nil {
		return err
	}
	c.demoRow("write", n, written.Load(), time.Since(t), fmt.Sprintf("values of %s to %s", size.Format(smallest), size.Format(largest)))

	var read atomic.Int64
	t = time.Now()
	if err := parallel(n, func(i int) error {
		return s.View(demoKey(i), func(v []byte) error {
			read.Add(int64(len(v)))
			if maphash.Bytes(seed, v) != sums[i] {
				return fmt.Errorf("demo: %q: read back wrong value", demoKey(i))
			}
			return nil
		})
	}); err != nil {
		return err
	}
	c.demoRow("read", n, read.Load(), time.Since(t), "all match")

	var ow, del []int
	for i := range n {
		if demoOverwritten(i) {
			ow = append(ow, i)
		}
		if demoDeleted(i) {
			del = append(del, i)
		}
	}
	var owBytes atomic.Int64
	t = time.Now()
	if err := parallel(len(ow), func(j int) error {
		v := demoValue(ow[j], 1)
		sums[ow[j]] = maphash.Bytes(seed, v)
		owBytes.Add(int64(len(v)))
		return s.Set(demoKey(ow[j]), v)
	}); err != nil {
		return err
	}
	c.demoRow("overwrite", len(ow), owBytes.Load(), time.Since(t), "")

	t = time.Now()
	if err := parallel(len(del), func(j int) error { return s.Delete(demoKey(del[j])) }); err != nil {
		return err
	}
	deleted := len(del)
	c.demoRow("delete", deleted, -1, time.Since(t), "")

	t = time.Now()
	err = s.Close()
	s = nil
	if err != nil {
		return err
	}
	if s, err = c.open(dir); err != nil {
		return err
	}
	c.demoRow("close+open", s.Len(), -1, -time.Since(t), "")

	var checked atomic.Int64
	t = time.Now()
	if err := parallel(n, func(i int) error {
		k := demoKey(i)
		if demoDeleted(i) {
			if ok, err := s.Has(k); err != nil || ok {
				return fmt.Errorf("demo: %q: deleted key is back after reopen (%v)", k, err)
			}
			return nil
		}
		return s.View(k, func(v []byte) error {
			checked.Add(int64(len(v)))
			if maphash.Bytes(seed, v) != sums[i] {
				return fmt.Errorf("demo: %q: wrong value after reopen", k)
			}
			return nil
		})
	}); err != nil {
		return err
	}
	listed := 0
	for _, err := range s.KeysWithPrefix(demoPrefix) {
		if err != nil {
			return err
		}
		listed++
	}
	if want := n - deleted; listed != want {
		return fmt.Errorf("demo: %d keys after reopen, want %d", listed, want)
	}
	c.demoRow("check", listed, checked.Load(), time.Since(t), "all match, deleted keys gone")

	err = s.Close()
	s = nil
	if err != nil {
		return err
	}
	if budget > 0 {
		c.opts.MaxBytes = budget
		if err := c.demoCache(dir, n, seed, sums); err != nil {
			return err
		}
	}
	fmt.Fprintf(c.stdout, "Try: dirstore ls %s | head; dirstore stat %s\n", dir, dir)
	return nil
}

// demoRow prints one step of the demo. bytes < 0 leaves out the size, and
// d < 0 means the step is not one operation per key: its time is -d and no
// rate is shown.
func (c *cli) demoRow(step string, keys int, bytes int64, d time.Duration, note string) {
	b, ops := "", ""
	if bytes >= 0 {
		b = size.Format(bytes)
	}
	if d >= 0 {
		ops = fmt.Sprintf("%.0f ops/s", float64(keys)/max(d.Seconds(), 1e-9))
	} else {
		d = -d
	}
	line := fmt.Sprintf("  %-10s %5d keys %10s %7s %12s   %s", step, keys, b, dur(d), ops, note)
	fmt.Fprintln(c.stdout, strings.TrimRight(line, " "))
}

// parallel calls fn(i) for i in [0, n) from demoWorkers goroutines and
// returns the first error, after which no new calls start.
func parallel(n int, fn func(i int) error) error {
	var next atomic.Int64
	var once sync.Once
	var first error
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range demoWorkers {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err; failed.Store(true) })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// demoCache reopens the store with the budget and runs a cache over the
// demo's keys: reads skewed towards a few keys (Zipf), a miss writes the
// value again, and writes evict the least recently used keys.
func (c *cli) demoCache(dir string, n int, seed maphash.Seed, sums []uint64) error {
	budget := c.opts.MaxBytes
	t := time.Now()
	s, err := c.open(dir) // evicts down to the budget
	if err != nil {
		return err
	}
	defer func() {
		if s != nil {
			s.Close()
		}
	}()
	st := s.Stats()
	c.demoRow("bound", int(st.Keys), st.Bytes, -time.Since(t), fmt.Sprintf("reopened with -max %s: %d keys evicted", size.Format(budget), st.Evictions))

	z := rand.NewZipf(rand.New(rand.NewPCG(1, 2)), 1.1, 1, uint64(n-1))
	reqs, served := 4*n, 0
	var hits int
	var moved int64
	t = time.Now()
	for range reqs {
		i := int(z.Uint64())
		if demoDeleted(i) {
			continue
		}
		served++
		k := demoKey(i)
		err := s.View(k, func(v []byte) error {
			if maphash.Bytes(seed, v) != sums[i] {
				return fmt.Errorf("demo: %q: read back wrong value", k)
			}
			moved += int64(len(v))
			return nil
		})
		switch {
		case err == nil:
			hits++
		case errors.Is(err, fs.ErrNotExist):
			gen := 0
			if demoOverwritten(i) {
				gen = 1
			}
			v := demoValue(i, gen)
			moved += int64(len(v))
			if err := s.Set(k, v); err != nil && !errors.Is(err, fs.ErrInvalid) { // a value over the budget is refused
				return err
			}
		default:
			return err
		}
		if b := s.Stats().Bytes; b > budget {
			return fmt.Errorf("demo: the store holds %d bytes, over its budget of %d", b, budget)
		}
	}
	st = s.Stats()
	c.demoRow("cache", served, moved, time.Since(t), fmt.Sprintf("Zipf reads, a miss writes: %.0f%% hits, %d evictions, %s of %s used",
		100*float64(hits)/float64(served), st.Evictions, size.Format(st.Bytes), size.Format(budget)))
	if err := c.printBudget(st); err != nil {
		return err
	}
	err = s.Close()
	s = nil
	return err
}
