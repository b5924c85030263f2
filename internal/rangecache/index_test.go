package rangecache

import (
	"math/rand/v2"
	"testing"
)

// TestEntryIndexModel runs random puts, replacements and removals against a
// map, with hashes cut to a few bits so that runs are long (and, inverted,
// start at the table's end and wrap around it), and checks every key, the
// count and the table's load.
func TestEntryIndexModel(t *testing.T) {
	for _, bits := range []int{2, -2, 5, 64} {
		for seed := range uint64(8) {
			rng := rand.New(rand.NewPCG(seed, uint64(bits)))
			hash := func(k key) uint64 { return k.hash(seed) }
			switch {
			case bits < 0:
				hash = func(k key) uint64 { return ^(k.hash(seed) >> (64 + bits)) }
			case bits < 64:
				hash = func(k key) uint64 { return k.hash(seed) >> (64 - bits) }
			}
			var x entryIndex
			model := map[key]*entry{}
			universe := make([]key, 200)
			for i := range universe {
				universe[i] = key{uint64(rng.IntN(3)), int64(rng.IntN(1000)), 1}
			}
			for i := range 5000 {
				k := universe[rng.IntN(len(universe))]
				if rng.IntN(2) == 0 {
					e := &entry{key: k, hash: hash(k)}
					if got, want := x.put(e), model[k]; got != want {
						t.Fatalf("bits %d seed %d op %d: put(%v) replaced %p, want %p", bits, seed, i, k, got, want)
					}
					model[k] = e
				} else {
					e := model[k]
					if e == nil || rng.IntN(8) == 0 {
						x.remove(&entry{key: k, hash: hash(k)}) // not indexed: a no-op
					} else {
						x.remove(e)
						delete(model, k)
					}
				}
				if x.Len() != len(model) {
					t.Fatalf("bits %d seed %d op %d: Len %d, want %d", bits, seed, i, x.Len(), len(model))
				}
				if n := len(x.slots); n > 0 && (4*x.count > n || (n > minSlots && 16*x.count < n)) {
					t.Fatalf("bits %d seed %d op %d: %d entries in %d slots", bits, seed, i, x.count, n)
				}
				if i%5 != 0 {
					continue
				}
				for _, u := range universe {
					if got := x.get(u, hash(u)); got != model[u] {
						t.Fatalf("bits %d seed %d op %d: get(%v) = %p, want %p", bits, seed, i, u, got, model[u])
					}
				}
			}
		}
	}
}
