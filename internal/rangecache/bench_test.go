package rangecache

import (
	"fmt"
	"testing"
)

// BenchmarkGetMiss measures a Get that misses, with reads that cycle over
// far more ranges than the cache remembers, under each Admission; thrash
// copies 4 KiB of a 64 MiB buffer between Gets, as the read that follows a
// miss pulls the file's bytes through the processor's caches.
func BenchmarkGetMiss(b *testing.B) {
	big := make([]byte, 64<<20)
	for _, thrash := range []bool{false, true} {
		for _, a := range []Admission{AdmitReused, AdmitAll} {
			b.Run(fmt.Sprintf("admit=%d,thrash=%t", a, thrash), func(b *testing.B) {
				c := New(8<<20, a)
				id := Acquire(IdentKey{Space: NewSpace(), Name: b.Name()})
				p := make([]byte, 4096)
				for i := 0; b.Loop(); i++ {
					off := int64(i%16384) * 4096
					if _, hit, _ := c.Get(id, Snapshot{}, off, p); hit {
						b.Fatal("hit")
					}
					if thrash {
						copy(p, big[off:off+4096])
					}
				}
			})
		}
	}
}

// BenchmarkMissStore measures the cache's part of a miss that stores its
// result (Lookup, then PutBuffer of the buffer it gave), in a full cache
// whose every lookup misses; thrash copies 4 KiB of a 64 MiB buffer
// between misses, as the read would.
func BenchmarkMissStore(b *testing.B) {
	big := make([]byte, 64<<20)
	for _, thrash := range []bool{false, true} {
		b.Run(fmt.Sprintf("thrash=%t", thrash), func(b *testing.B) {
			c := New(8<<20, AdmitAll)
			id := Acquire(IdentKey{Space: NewSpace(), Name: b.Name()})
			p := make([]byte, 4096)
			for i := 0; b.Loop(); i++ {
				off := int64(i%16384) * 4096
				_, hit, buf := c.Lookup(id, Snapshot{}, off, p)
				if hit || buf == nil {
					b.Fatal("hit, or no buffer")
				}
				if thrash {
					copy(p, big[off:off+4096])
				}
				c.PutBuffer(id, Snapshot{}, id.Gen(), off, len(p), buf)
			}
		})
	}
}
