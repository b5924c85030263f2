package suite

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"time"

	"github.com/dirstore/dirstore"
)

const (
	cPread = "os.File ReadAt (pread)"

	streamFileSize = 256 << 20
	hotBlocks      = 1024 // 4 MiB
)

func streamRows() []*Row {
	const g = groupStream
	return []*Row{
		{Group: g, Op: "Cache hit, 4 KiB ReadAt", Short: "hit", Unit: Ops, Setup: streamRow(64<<20, hitOffsets, nil),
			Note: "A 256 MiB file in the page cache; reads at random among 1,024 blocks (4 MiB) that the Stream's Cache (64 MiB) already holds. The Stream is OpenStream's default, which takes one fstat per read to see whether the file changed. The contender reads the file directly, with pread through an *os.File, at the same offsets."},
		{Group: g, Op: "Cache hit, 4 KiB ReadAt, immutable Stream (as Store.Open gives)", Short: "hit, immutable", Unit: Ops, Setup: streamRow(64<<20, hitOffsets, &dirstore.StreamOptions{Immutable: true}),
			Note: "As above, with StreamOptions.Immutable, what every Stream over a Store value is: a hit makes no system call."},
		{Group: g, Op: "Cache miss, 4 KiB ReadAt", Short: "miss", Unit: Ops, Setup: streamRow(8<<20, missOffsets, nil),
			Note: "Every 4 KiB block of the file in a random order, again and again, through an 8 MiB Cache: each read misses (the page cache still holds the file), goes to the file and is stored in the Cache, evicting another entry."},
		{Group: g, Op: "90% hot / 10% cold, 4 KiB ReadAt", Short: "90/10 mix", Unit: Ops, Setup: streamRow(16<<20, mixOffsets, nil),
			Note: "90% of the reads among the 1,024 hot blocks, 10% anywhere in the file (misses), through a 16 MiB Cache."},
	}
}

func hitOffsets() []int64 {
	r := rand.New(rand.NewPCG(3, 3))
	out := make([]int64, 1<<16)
	for i := range out {
		out[i] = r.Int64N(hotBlocks) * memBlock
	}
	return out
}

func missOffsets() []int64 {
	p := perm(streamFileSize/memBlock, 4)
	out := make([]int64, len(p))
	for i, b := range p {
		out[i] = int64(b) * memBlock
	}
	return out
}

func mixOffsets() []int64 {
	r := rand.New(rand.NewPCG(5, 5))
	out := make([]int64, 1<<16)
	for i := range out {
		if r.IntN(10) == 0 {
			out[i] = r.Int64N(streamFileSize/memBlock) * memBlock
		} else {
			out[i] = r.Int64N(hotBlocks) * memBlock
		}
	}
	return out
}

func streamRow(cacheBytes int64, offsets func() []int64, opts *dirstore.StreamOptions) func(e *Env) (*Setup, error) {
	return func(e *Env) (*Setup, error) {
		name, err := e.patternFile(streamFileSize)
		if err != nil {
			return nil, err
		}
		if err := warm(name); err != nil {
			return nil, err
		}
		o := dirstore.StreamOptions{}
		if opts != nil {
			o = *opts
		}
		o.Cache = dirstore.NewCache(cacheBytes)
		s, err := dirstore.OpenStream(name, os.O_RDONLY, 0, &o)
		if err != nil {
			return nil, err
		}
		f, err := os.Open(name)
		if err != nil {
			s.Close()
			return nil, err
		}
		buf := make([]byte, memBlock)
		for b := range hotBlocks { // the hot set, in the Cache
			if _, err := s.ReadAt(buf, int64(b)*memBlock); err != nil {
				s.Close()
				f.Close()
				return nil, err
			}
		}
		offs := offsets()
		reader := func(name string, r io.ReaderAt) Contender {
			next := 0
			return Contender{Name: name, Batch: func(budget time.Duration) (Result, error) {
				return loop(budget, 0, func(int) error {
					next++
					off := offs[next%len(offs)]
					n, err := r.ReadAt(buf, off)
					if n != memBlock || err != nil || binary.LittleEndian.Uint64(buf) != uint64(off) {
						return fmt.Errorf("%s: ReadAt(%d) = %d, %v (or wrong bytes)", name, off, n, err)
					}
					return nil
				})
			}}
		}
		return &Setup{
			Ours:   reader("dirstore", s),
			Others: []Contender{reader(cPread, f)},
			Close:  func() { s.Close(); f.Close() },
			Report: func() string {
				st := o.Cache.Stats()
				return fmt.Sprintf("Cache: %d hits, %d misses (%.1f%% hits).", st.Hits, st.Misses, 100*float64(st.Hits)/float64(max(1, st.Hits+st.Misses)))
			},
		}, nil
	}
}
