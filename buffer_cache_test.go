package dirstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

// TestBufferMaxSpill: spills that would take the Buffer's values in the
// Store past MaxSpill are refused, the values stay in memory, nothing is
// lost, and Stats agrees with what happened.
func TestBufferMaxSpill(t *testing.T) {
	var logs strings.Builder
	var logMu sync.Mutex
	s := storetest.Open(t, t.TempDir(), &dirstore.Options{NoSync: true, Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))})
	b, err := dirstore.NewBuffer[[]byte](s, dirstore.BufferOptions[[]byte]{MaxWeight: 1000, MaxSpill: 3000})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	want := map[string][]byte{}
	for i := range 20 {
		k := fmt.Sprintf("k%02d", i)
		v := bytes.Repeat([]byte{byte(i)}, 400)
		if err := b.Set(k, v); err != nil {
			t.Fatalf("Set(%s): %v (a refused spill is not an error)", k, err)
		}
		want[k] = v
	}
	st := b.Stats()
	// 7 values spill (2800 bytes); an eighth would pass 3000.
	if st.Spills != 7 || st.SpilledKeys != 7 || st.SpilledBytes != 2800 || st.SpillsRefused == 0 || st.SpillFailures != 0 {
		t.Fatalf("Stats = %+v", st)
	}
	if st.MemoryKeys != 13 || st.MemoryWeight != 13*400 || st.MemoryWeight <= 1000 {
		t.Fatalf("the memory tier should hold the refused values, over MaxWeight: %+v", st)
	}
	if got := s.Stats().Bytes; got != st.SpilledBytes {
		t.Fatalf("the Store holds %d bytes, Stats says %d", got, st.SpilledBytes)
	}
	if st.SpillTime <= 0 {
		t.Fatalf("SpillTime %v", st.SpillTime)
	}
	// Nothing lost.
	for k, v := range want {
		got, err := b.Get(k)
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("Get(%s) = %d bytes, %v", k, len(got), err)
		}
	}
	// Each read-back made room for another spill.
	st = b.Stats()
	if st.Unspills == 0 || st.Spills-st.Unspills != int64(st.SpilledKeys) || st.SpilledBytes != 400*int64(st.SpilledKeys) ||
		st.SpilledBytes > 3000 || st.MemoryKeys+st.SpilledKeys != 20 {
		t.Fatalf("after reading everything back: %+v", st)
	}
	// Deleting spilled values makes room: spills go on.
	for k := range b.Keys() {
		if ok, _ := s.Has(k); ok {
			if err := b.Delete(k); err != nil {
				t.Fatal(err)
			}
			delete(want, k)
		}
	}
	if err := b.Set("more", make([]byte, 400)); err != nil {
		t.Fatal(err)
	}
	want["more"] = make([]byte, 400)
	if st2 := b.Stats(); st2.Spills <= st.Spills || st2.SpilledBytes > 3000 || st2.SpilledBytes == 0 {
		t.Fatalf("after room was made: %+v", st2)
	}
	// Evict reports the refusal; Flush spills what fits.
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.SpilledBytes > 3000 || st.SpilledBytes < 2600 || b.Len() != len(want) {
		t.Fatalf("after Flush: %+v, Len %d", st, b.Len())
	}
	if _, _, err := b.Evict(); err == nil || !strings.Contains(err.Error(), "MaxSpill") {
		t.Fatalf("Evict past MaxSpill: %v", err)
	}
	logMu.Lock()
	report := logs.String()
	logMu.Unlock()
	if strings.Count(report, "spill refused") != 1 || !strings.Contains(report, "max_spill=3000") {
		t.Fatalf("the Logger said (once a second at most):\n%s", report)
	}
	if _, err := dirstore.NewBuffer[[]byte](s, dirstore.BufferOptions[[]byte]{MaxSpill: -1}); err == nil {
		t.Fatal("a negative MaxSpill was accepted")
	}
}

type lockedWriter struct {
	w  *strings.Builder
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestBufferStatsRandom checks Stats against a random history: counts of
// spills and read-backs, and the tiers against Has, Len and the Store.
func TestBufferStatsRandom(t *testing.T) {
	s := storetest.Open(t, t.TempDir(), &dirstore.Options{NoSync: true})
	b, err := dirstore.NewBuffer[[]byte](s, dirstore.BufferOptions[[]byte]{MaxWeight: 2000, MaxSpill: 6000})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rng := rand.New(rand.NewPCG(4, 5))
	want := map[string][]byte{}
	for range 2000 {
		k := fmt.Sprintf("k%d", rng.IntN(40))
		switch rng.IntN(3) {
		case 0:
			v := bytes.Repeat([]byte{byte(rng.Uint32())}, rng.IntN(700))
			if err := b.Set(k, v); err != nil {
				t.Fatal(err)
			}
			want[k] = v
		case 1:
			got, err := b.Get(k)
			if v, ok := want[k]; ok != (err == nil) || !bytes.Equal(got, v) {
				t.Fatalf("Get(%s): %v", k, err)
			}
		case 2:
			err := b.Delete(k)
			if _, ok := want[k]; ok != (err == nil) {
				t.Fatalf("Delete(%s): %v", k, err)
			}
			delete(want, k)
		}
		st := b.Stats()
		if st.MemoryKeys+st.SpilledKeys != b.Len() || b.Len() != len(want) {
			t.Fatalf("Stats %+v, Len %d, want %d keys", st, b.Len(), len(want))
		}
		if int64(s.Len()) != int64(st.SpilledKeys) || s.Stats().Bytes != st.SpilledBytes || st.SpilledBytes > 6000 {
			t.Fatalf("Stats %+v; the Store holds %d keys, %d bytes", st, s.Len(), s.Stats().Bytes)
		}
		if st.MemoryWeight != b.Weight() {
			t.Fatalf("MemoryWeight %d, Weight %d", st.MemoryWeight, b.Weight())
		}
	}
	st := b.Stats()
	if st.Spills == 0 || st.Unspills == 0 || st.SpillsRefused == 0 {
		t.Fatalf("the history did not exercise the counters: %+v", st)
	}
}

// TestBufferOverBoundedStore: the Store evicts spilled values to stay
// within MaxBytes; the Buffer forgets them (Has, Len, Keys, Get), and the
// Store's OnEvict still reports them.
func TestBufferOverBoundedStore(t *testing.T) {
	for _, mode := range storeModes {
		t.Run(mode.name, func(t *testing.T) {
			log := &evictLog{}
			s := storetest.Open(t, t.TempDir(), &dirstore.Options{MaxBytes: 4000, NoSync: mode.nosync, WriteBuffer: mode.buffer, OnEvict: log.onEvict})
			b, err := dirstore.NewBuffer[[]byte](s, dirstore.BufferOptions[[]byte]{MaxWeight: 1000})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			for i := range 30 {
				if err := b.Set(fmt.Sprintf("k%02d", i), bytes.Repeat([]byte{byte(i)}, 500)); err != nil {
					t.Fatal(err)
				}
			}
			evicted := log.take()
			if len(evicted) == 0 {
				t.Fatal("the Store evicted nothing")
			}
			// The oldest spills went first.
			if evicted[0] != "k00" {
				t.Fatalf("evicted %q", evicted)
			}
			for _, k := range evicted {
				if ok, err := b.Has(k); err != nil || ok {
					t.Fatalf("Has(%s) = %v, %v after its eviction", k, ok, err)
				}
				if _, err := b.Get(k); !errors.Is(err, dirstore.ErrNotFound) {
					t.Fatalf("Get(%s) = %v after its eviction", k, err)
				}
			}
			var keys []string
			for k := range b.Keys() {
				keys = append(keys, k)
			}
			if len(keys) != 30-len(evicted) || b.Len() != len(keys) {
				t.Fatalf("Keys %q (Len %d) with %d evicted", keys, b.Len(), len(evicted))
			}
			for _, k := range keys {
				if slices.Contains(evicted, k) {
					t.Fatalf("Keys lists the evicted %s", k)
				}
				if v, err := b.Get(k); err != nil || len(v) != 500 {
					t.Fatalf("Get(%s) = %d bytes, %v", k, len(v), err)
				}
			}
			st := b.Stats()
			if s.Stats().Bytes > 4000 || st.SpilledBytes != s.Stats().Bytes || st.SpilledKeys != s.Len() {
				t.Fatalf("Buffer %+v, Store %+v", st, s.Stats())
			}
		})
	}
}
