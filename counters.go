package dirstore

import "sync/atomic"

// counters are a Store's activity counters since Open (see Stats).
type counters struct {
	gets, misses, sets, deletes, evictions atomic.Int64
	bytesRead, bytesWritten                atomic.Int64
}

// read counts a Get, View or Open that found a value of n bytes (n < 0:
// none).
func (c *counters) read(n int) {
	c.gets.Add(1)
	if n < 0 {
		c.misses.Add(1)
		return
	}
	c.bytesRead.Add(int64(n))
}

// wrote counts a Set of n bytes.
func (c *counters) wrote(n int64) {
	c.sets.Add(1)
	c.bytesWritten.Add(n)
}
