package dirstore_test

import (
	"bytes"
	"container/list"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

var evictVerbose = flag.Bool("evict.v", false, "log every operation of the eviction model test")

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func useFakeClock(t testing.TB) *fakeClock {
	c := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	t.Cleanup(dirstore.SetClock(c.Now))
	return c
}

// lruModel is an exact LRU over byte sizes: what a bounded store must do
// when its uses are more than a second apart.
type lruModel struct {
	max   int64
	bytes int64
	order *list.List // of *lruItem, most recently used first
	items map[string]*list.Element
}

type lruItem struct {
	key   string
	value []byte
}

func newLRUModel(max int64) *lruModel {
	return &lruModel{max: max, order: list.New(), items: map[string]*list.Element{}}
}

// evictTo evicts least recently used keys other than keep until the
// values take at most target bytes, and returns them in order.
func (m *lruModel) evictTo(target int64, keep string) []string {
	var out []string
	for e := m.order.Back(); e != nil && m.bytes > target; {
		prev := e.Prev()
		it := e.Value.(*lruItem)
		if it.key != keep {
			m.bytes -= int64(len(it.value))
			m.order.Remove(e)
			delete(m.items, it.key)
			out = append(out, it.key)
		}
		e = prev
	}
	return out
}

func (m *lruModel) set(key string, v []byte) (evicted []string, err error) {
	if int64(len(v)) > m.max {
		return nil, dirstore.ErrTooLarge
	}
	var old int64
	if e, ok := m.items[key]; ok {
		old = int64(len(e.Value.(*lruItem).value))
	}
	evicted = m.evictTo(m.max-(int64(len(v))-old), key)
	if e, ok := m.items[key]; ok {
		e.Value.(*lruItem).value = v
		m.order.MoveToFront(e)
	} else {
		m.items[key] = m.order.PushFront(&lruItem{key, v})
	}
	m.bytes += int64(len(v)) - old
	return evicted, nil
}

func (m *lruModel) get(key string) ([]byte, bool) {
	e, ok := m.items[key]
	if !ok {
		return nil, false
	}
	m.order.MoveToFront(e)
	return e.Value.(*lruItem).value, true
}

func (m *lruModel) delete(key string) bool {
	e, ok := m.items[key]
	if ok {
		m.bytes -= int64(len(e.Value.(*lruItem).value))
		m.order.Remove(e)
		delete(m.items, key)
	}
	return ok
}

func (m *lruModel) keys() []string {
	var out []string
	for k := range m.items {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// evictLog collects what OnEvict reports.
type evictLog struct {
	mu   sync.Mutex
	keys []string
	size int64
}

func (l *evictLog) onEvict(key string, size int64) {
	l.mu.Lock()
	l.keys = append(l.keys, key)
	l.size += size
	l.mu.Unlock()
}

func (l *evictLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.keys
	l.keys = nil
	return k
}

// storeModes are the durability modes the eviction tests run in.
var storeModes = []storeMode{{"sync", false, 0}, {"nosync", true, -1}, {"nosync,buffer", true, 64 << 10}}

type storeMode struct {
	name   string
	nosync bool
	buffer int64
}

// TestEvictModel runs random Sets, Gets, Deletes, Trims and reopens, each
// more than a second after the last on a fake clock, against an exact LRU:
// the store must evict the same keys in the same order.
func TestEvictModel(t *testing.T) {
	for _, mode := range storeModes {
		t.Run(mode.name, func(t *testing.T) { evictModel(t, mode, crashSeedFor(t), 1500) })
	}
}

func evictModel(t testing.TB, mode storeMode, seed uint64, nops int) {
	{
		{
			clock := useFakeClock(t)
			rng := rand.New(rand.NewPCG(seed, 3))
			const max = 8 << 10
			log := &evictLog{}
			mem := vfs.NewMem()
			opts := &dirstore.Options{FS: mem, MaxBytes: max, NoSync: mode.nosync, WriteBuffer: mode.buffer, OnEvict: log.onEvict}
			s, err := dirstore.Open("/s", opts)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { s.Close() }()
			m := newLRUModel(max)
			total := 0
			if underRace {
				nops = 400
			}
			for i := 0; i < nops; i++ {
				clock.Advance(1100 * time.Millisecond)
				key := fmt.Sprintf("k%02d", rng.IntN(40))
				var wantEvicted []string
				what := ""
				switch r := rng.IntN(100); {
				case r < 45:
					n := rng.IntN(1500)
					if rng.IntN(50) == 0 {
						n = max + 1 + rng.IntN(10)
					}
					v := bytes.Repeat([]byte{byte(i)}, n)
					what = fmt.Sprintf("set %q (%d bytes)", key, n)
					var merr error
					wantEvicted, merr = m.set(key, v)
					err := s.Set(key, v)
					if merr != nil {
						if !errors.Is(err, dirstore.ErrTooLarge) || !errors.Is(err, fs.ErrInvalid) {
							t.Fatalf("op %d: %s: %v, want ErrTooLarge", i, what, err)
						}
					} else if err != nil {
						t.Fatalf("op %d: %s: %v", i, what, err)
					}
					if mode.buffer > 0 {
						// A buffered write counts as used when it is written out.
						if err := s.ApplyBuffered(); err != nil {
							t.Fatal(err)
						}
					}
				case r < 80:
					what = fmt.Sprintf("get %q", key)
					want, ok := m.get(key)
					got, err := s.Get(key)
					if ok != (err == nil) || (ok && !bytes.Equal(got, want)) {
						t.Fatalf("op %d: %s = %d bytes, %v; want %d bytes, present %v", i, what, len(got), err, len(want), ok)
					}
				case r < 90:
					what = fmt.Sprintf("delete %q", key)
					ok := m.delete(key)
					if err := s.Delete(key); ok != (err == nil) {
						t.Fatalf("op %d: %s: %v, present %v", i, what, err, ok)
					}
				case r < 95:
					target := int64(rng.IntN(max))
					what = fmt.Sprintf("trim to %d", target)
					wantEvicted = m.evictTo(target, "")
					n, err := s.Trim(target)
					if err != nil || n != len(wantEvicted) {
						t.Fatalf("op %d: %s = %d, %v; want %d", i, what, n, err, len(wantEvicted))
					}
				default:
					what = "reopen"
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
					if s, err = dirstore.Open("/s", opts); err != nil {
						t.Fatal(err)
					}
				}
				if *evictVerbose {
					t.Logf("op %d: %s %q", i, what, s.AccessRecords())
				}
				got := log.take()
				if !slices.Equal(got, wantEvicted) {
					t.Fatalf("op %d: %s evicted %q, want %q (the exact LRU order)", i, what, got, wantEvicted)
				}
				total += len(got)
				if got, want := keys(t, s), m.keys(); !slices.Equal(got, want) {
					t.Fatalf("op %d: %s: keys %q, want %q", i, what, got, want)
				}
				if st := s.Stats(); st.Bytes != m.bytes || st.Bytes > max {
					t.Fatalf("op %d: %s: Bytes %d, want %d (max %d)", i, what, st.Bytes, m.bytes, max)
				}
			}
			if total < nops/20 {
				t.Fatalf("only %d evictions", total)
			}
			t.Logf("%d evictions", total)
		}
	}
}

// TestEvictBudgetConcurrent has 16 goroutines set new and old keys into a
// full store: after every Set returns, Bytes is within the budget.
func TestEvictBudgetConcurrent(t *testing.T) {
	for _, mode := range storeModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			evictBudget(t, mode)
		})
	}
}

func evictBudget(t testing.TB, mode storeMode) {
	{
		{
			const max = 64 << 10
			var evicted atomic.Int64
			s := storetest.Open(t, t.TempDir(), &dirstore.Options{MaxBytes: max, NoSync: mode.nosync, WriteBuffer: mode.buffer,
				OnEvict: func(string, int64) { evicted.Add(1) }})
			n := 150
			if mode.nosync {
				n = 600
			}
			if underRace {
				n /= 3
			}
			var wg sync.WaitGroup
			var over atomic.Int64
			for g := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(g), 9))
					for i := range n {
						key := fmt.Sprintf("k%d", rng.IntN(400))
						if err := s.Set(key, make([]byte, 512+rng.IntN(4096))); err != nil {
							t.Error(err)
							return
						}
						if b := s.Stats().Bytes; b > max {
							over.Store(b)
						}
						if i%7 == 0 {
							s.Get(fmt.Sprintf("k%d", rng.IntN(400)))
						}
					}
				}()
			}
			wg.Wait()
			if b := over.Load(); b != 0 {
				t.Fatalf("Bytes reached %d after a Set returned, over MaxBytes %d", b, max)
			}
			if r := s.Reserved(); r != 0 {
				t.Fatalf("%d bytes still reserved with no write running", r)
			}
			st := s.Stats()
			if st.Bytes > max || evicted.Load() == 0 || st.Evictions != evicted.Load() {
				t.Fatalf("Bytes %d (max %d), %d evictions reported, Stats.Evictions %d", st.Bytes, max, evicted.Load(), st.Evictions)
			}
			// Bytes matches the values there are.
			var sum int64
			for _, k := range keys(t, s) {
				sum += int64(len(mustGet(t, s, k)))
			}
			if sum != st.Bytes || int64(len(keys(t, s))) != st.Keys {
				t.Fatalf("values add up to %d bytes, Stats.Bytes %d", sum, st.Bytes)
			}
		}
	}
}

// TestEvictCatchesMutations seeds the bugs the eviction tests must catch.
func TestEvictCatchesMutations(t *testing.T) {
	for name, m := range dirstore.EvictMutations {
		t.Run(name, func(t *testing.T) {
			defer dirstore.SetMutation(m)()
			msg := catch(t, func(tb testing.TB) {
				switch name {
				case "room checked, not reserved":
					evictBudget(tb, storeModes[1])
				case "pins ignored":
					pinned(tb, storeModes[0])
				default:
					evictModel(tb, storeModes[0], 1, 300)
				}
			})
			if msg == "" {
				t.Fatalf("the eviction tests did not catch %q", name)
			}
			t.Logf("caught: %s", msg)
		})
	}
}

// caught is a testing.TB whose failures are recorded, for tests that
// must fail.
type caught struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (c *caught) Helper() {}

func (c *caught) Errorf(format string, args ...any) {
	c.mu.Lock()
	if c.msg == "" {
		c.msg = fmt.Sprintf(format, args...)
	}
	c.mu.Unlock()
}

func (c *caught) Error(args ...any) { c.Errorf("%s", fmt.Sprint(args...)) }

func (c *caught) Fatalf(format string, args ...any) {
	c.Errorf(format, args...)
	panic(c)
}

func (c *caught) Fatal(args ...any) { c.Fatalf("%s", fmt.Sprint(args...)) }

// catch runs fn and returns the first failure it reported ("" if none).
func catch(t testing.TB, fn func(testing.TB)) (msg string) {
	c := &caught{TB: t}
	defer func() {
		if r := recover(); r != nil && r != any(c) {
			panic(r)
		}
		c.mu.Lock()
		msg = c.msg
		c.mu.Unlock()
	}()
	fn(c)
	return ""
}

// TestEvictStreamKeepsReading: a Stream opened on a value reads it to the
// end after the key is evicted.
func TestEvictStreamKeepsReading(t *testing.T) {
	for _, mode := range storeModes {
		t.Run(mode.name, func(t *testing.T) {
			dir := t.TempDir()
			s := storetest.Open(t, dir, &dirstore.Options{MaxBytes: 100 << 10, NoSync: mode.nosync, WriteBuffer: mode.buffer})
			want := bytes.Repeat([]byte("old value "), 6<<10)
			mustSet(t, s, "a", want)
			st, err := s.Open("a")
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			head := make([]byte, 10)
			if _, err := io.ReadFull(st, head); err != nil {
				t.Fatal(err)
			}
			mustSet(t, s, "b", make([]byte, 90<<10)) // evicts a
			if ok, _ := s.Has("a"); ok {
				t.Fatal("a was not evicted")
			}
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			rest, err := io.ReadAll(st)
			if err != nil {
				t.Fatal(err)
			}
			if got := append(head, rest...); !bytes.Equal(got, want) {
				t.Fatalf("the stream read %d bytes, not the evicted value", len(got))
			}
		})
	}
}

func TestEvictErrors(t *testing.T) {
	log := &evictLog{}
	s := storetest.Open(t, t.TempDir(), &dirstore.Options{MaxBytes: 1000, OnEvict: log.onEvict})
	mustSet(t, s, "a", make([]byte, 600))
	err := s.Set("big", make([]byte, 1001))
	if !errors.Is(err, dirstore.ErrTooLarge) || !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("Set of a value over MaxBytes: %v", err)
	}
	if want := `dirstore: set "big": value larger than MaxBytes: 1001 bytes, MaxBytes 1000`; err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	if _, err := s.SetFrom("big", bytes.NewReader(make([]byte, 1001))); !errors.Is(err, dirstore.ErrTooLarge) {
		t.Fatalf("SetFrom of a value over MaxBytes: %v", err)
	}
	if got := keys(t, s); !slices.Equal(got, []string{"a"}) || len(log.take()) != 0 {
		t.Fatalf("a refused value changed the store: keys %q", got)
	}
	// A key is never evicted to make room for its own new value.
	mustSet(t, s, "a", make([]byte, 1000))
	if got := keys(t, s); !slices.Equal(got, []string{"a"}) || len(log.take()) != 0 {
		t.Fatalf("keys %q", got)
	}
	// SetFrom evicts like Set.
	if _, err := s.SetFrom("c", bytes.NewReader(make([]byte, 10))); err != nil {
		t.Fatal(err)
	}
	if got := log.take(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("SetFrom evicted %q", got)
	}
	for _, o := range []dirstore.Options{{MaxBytes: -1}, {MaxIdle: -time.Second}} {
		if _, err := dirstore.Open(t.TempDir(), &o); !errors.Is(err, fs.ErrInvalid) {
			t.Fatalf("Open with %+v: %v", o, err)
		}
	}
}

// TestEvictOpen: a store reopened with a smaller budget, or after its keys
// went idle, evicts at Open, least recently used first, with the order
// kept across the reopen.
func TestEvictOpen(t *testing.T) {
	clock := useFakeClock(t)
	dir := t.TempDir()
	s := storetest.Open(t, dir, nil) // unbounded: writes still record recency
	for _, k := range []string{"a", "b", "c", "d"} {
		clock.Advance(2 * time.Second)
		mustSet(t, s, k, make([]byte, 100))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	log := &evictLog{}
	s = storetest.Open(t, dir, &dirstore.Options{MaxBytes: 1000, OnEvict: log.onEvict})
	clock.Advance(2 * time.Second)
	mustGet(t, s, "a") // a is now the most recently used
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = storetest.Open(t, dir, &dirstore.Options{MaxBytes: 250, OnEvict: log.onEvict})
	if got := log.take(); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("Open evicted %q, want b and c", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	s = storetest.Open(t, dir, &dirstore.Options{MaxIdle: time.Minute, OnEvict: log.onEvict})
	if got := log.take(); !slices.Equal(got, []string{"d", "a"}) || s.Len() != 0 {
		t.Fatalf("Open with MaxIdle evicted %q, %d keys left", got, s.Len())
	}
}

// TestMaxIdle: keys not used for MaxIdle go; used ones stay.
func TestMaxIdle(t *testing.T) {
	for _, mode := range storeModes {
		t.Run(mode.name, func(t *testing.T) {
			clock := useFakeClock(t)
			log := &evictLog{}
			s := storetest.Open(t, t.TempDir(), &dirstore.Options{MaxIdle: time.Minute, NoSync: mode.nosync, WriteBuffer: mode.buffer, OnEvict: log.onEvict})
			for _, k := range []string{"a", "b", "c"} {
				mustSet(t, s, k, []byte(k))
			}
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			clock.Advance(50 * time.Second)
			mustGet(t, s, "b")
			clock.Advance(20 * time.Second)
			if n, err := s.EvictIdle(); err != nil || n != 2 {
				t.Fatalf("EvictIdle = %d, %v", n, err)
			}
			if got := keys(t, s); !slices.Equal(got, []string{"b"}) {
				t.Fatalf("keys %q after the others went idle", got)
			}
			if got := log.take(); !slices.Equal(got, []string{"a", "c"}) {
				t.Fatalf("OnEvict saw %q", got)
			}
			// The background loop does it too.
			clock.Advance(2 * time.Minute)
			deadline := time.Now().Add(10 * time.Second)
			for s.Len() > 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if s.Len() != 0 {
				t.Fatal("the background loop did not evict the idle key")
			}
		})
	}
}

// TestStatsCounters checks the counters against counted operations.
func TestStatsCounters(t *testing.T) {
	for _, mode := range storeModes {
		t.Run(mode.name, func(t *testing.T) {
			var evictions atomic.Int64
			s := storetest.Open(t, t.TempDir(), &dirstore.Options{MaxBytes: 10_000, NoSync: mode.nosync, WriteBuffer: mode.buffer,
				OnEvict: func(string, int64) { evictions.Add(1) }})
			rng := rand.New(rand.NewPCG(1, 2))
			var want dirstore.Stats
			want.MaxBytes, want.NoSync = 10_000, mode.nosync
			for range 600 {
				key := fmt.Sprintf("k%d", rng.IntN(30))
				switch rng.IntN(5) {
				case 0, 1:
					n := rng.IntN(2000)
					var err error
					if rng.IntN(2) == 0 {
						err = s.Set(key, make([]byte, n))
					} else {
						_, err = s.SetFrom(key, bytes.NewReader(make([]byte, n)))
					}
					if err != nil {
						t.Fatal(err)
					}
					want.Sets++
					want.BytesWritten += int64(n)
				case 2:
					want.Gets++
					if v, err := s.Get(key); err == nil {
						want.BytesRead += int64(len(v))
					} else if errors.Is(err, dirstore.ErrNotFound) {
						want.Misses++
					} else {
						t.Fatal(err)
					}
				case 3:
					want.Gets++
					err := s.View(key, func(v []byte) error { want.BytesRead += int64(len(v)); return nil })
					if errors.Is(err, dirstore.ErrNotFound) {
						want.Misses++
					} else if err != nil {
						t.Fatal(err)
					}
				case 4:
					if err := s.Delete(key); err == nil {
						want.Deletes++
					} else if !errors.Is(err, dirstore.ErrNotFound) {
						t.Fatal(err)
					}
				}
			}
			want.Gets++
			want.Misses++
			if _, err := s.Open("no such key"); !errors.Is(err, dirstore.ErrNotFound) {
				t.Fatal(err)
			}
			ks := keys(t, s)
			got := s.Stats()
			want.Keys, want.Bytes = int64(len(ks)), got.Bytes
			var sum int64
			for _, k := range ks {
				n := len(mustGet(t, s, k))
				sum += int64(n)
				want.Gets++
				want.BytesRead += int64(n)
			}
			want.Evictions = evictions.Load() // as OnEvict saw them
			got = s.Stats()
			if got != want || sum != got.Bytes || got.Bytes > got.MaxBytes {
				t.Fatalf("Stats = %+v\nwant    %+v (values add up to %d bytes)", got, want, sum)
			}
			if got.Evictions == 0 {
				t.Fatalf("no eviction in the run: %+v", got)
			}
		})
	}
}

// TestEvictLogged: the Logger gets a summary of evictions, with the
// store's directory, not a record per key.
func TestEvictLogged(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	dir := t.TempDir()
	s := storetest.Open(t, dir, &dirstore.Options{MaxBytes: 1000, Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))})
	for i := range 10 {
		mustSet(t, s, fmt.Sprint("k", i), make([]byte, 300))
	}
	if _, err := s.Trim(0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		report := logs.String()
		mu.Unlock()
		n := 0
		for _, line := range strings.Split(report, "\n") {
			var c int
			if i := strings.Index(line, `msg="dirstore: evicted keys" dir=`+dir+" count="); i >= 0 {
				fmt.Sscan(line[i+len(`msg="dirstore: evicted keys" dir=`+dir+" count="):], &c)
			}
			n += c
		}
		if n == 10 && !strings.Contains(report, "key=") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Logger reported %d evictions:\n%s", n, report)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
