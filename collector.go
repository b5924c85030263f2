package dirstore

import (
	"errors"
	"io/fs"
	"sync"
	"sync/atomic"
)

// collector disposes of superseded value files off the path of the Set or
// Delete that superseded them. It keeps some as spares for later Sets to
// write over (see datadir.Dir.Write: creating and unlinking inodes is what
// makes small writes slow on some file systems) and removes the rest on a
// few background goroutines (an unlink costs tens of microseconds on a file
// system that discards synchronously). A crash leaves spares and unremoved
// files as orphans, which the next Open removes.
//
// A file that a reader keeps open for long (a memory-mapped View, a
// Store.Open stream) is pinned: a pinned file is never reused, so its
// reader keeps seeing the bytes it opened, and its removal waits for the
// last unpin, so its path keeps naming those bytes (Stream.Name, which a
// program may hand to another one, as the GOCACHEPROG server does) until
// the reader is done. Close removes such files even if readers remain:
// their descriptors keep working.
type collector struct {
	s       *Store
	ch      chan string
	workers sync.WaitGroup

	mu         sync.Mutex
	idle       sync.Cond
	pending    int
	spares     []string
	spareBytes int64
	pinned     map[string]int
	// doomed holds pinned files that were superseded: each is removed at
	// its last unpin (or by stop).
	doomed  map[string]struct{}
	stopped bool

	// leftover is set when a file of ours may have been left behind (a
	// removal or a write failed): it stays as an orphan for the next Open's
	// recovery scan.
	leftover atomic.Bool
}

const (
	removeWorkers = 4
	removeQueue   = 4096
	// maxSpares and maxSpareBytes bound the superseded files kept for
	// reuse; a file larger than maxSpareSize is never kept.
	maxSpares     = 4096
	maxSpareBytes = 64 << 20
	maxSpareSize  = 1 << 20
)

func (c *collector) start(s *Store) {
	c.s = s
	c.idle.L = &c.mu
	c.ch = make(chan string, removeQueue)
	for range removeWorkers {
		c.workers.Add(1)
		go c.work()
	}
}

func (c *collector) work() {
	defer c.workers.Done()
	for name := range c.ch {
		if err := c.s.files.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.leftover.Store(true)
			c.s.opts.Logger.Warn("dirstore: removing a superseded file failed", "dir", c.s.dir, "file", name, "err", err)
		}
		c.mu.Lock()
		c.pending--
		if c.pending == 0 {
			c.idle.Broadcast()
		}
		c.mu.Unlock()
	}
}

// remove disposes of name, a superseded file of size bytes: it keeps it as
// a spare, or queues it for removal (blocking while the queue is full).
func (c *collector) remove(name string, size int64) {
	c.mu.Lock()
	if c.pinned[name] > 0 && !c.stopped && !mutated(mutRemovePinned) {
		if c.doomed == nil {
			c.doomed = map[string]struct{}{}
		}
		c.doomed[name] = struct{}{}
		c.mu.Unlock()
		return
	}
	if c.pinned[name] == 0 && size <= maxSpareSize && len(c.spares) < maxSpares && c.spareBytes+size <= maxSpareBytes {
		c.spares = append(c.spares, name)
		c.spareBytes += size
		c.mu.Unlock()
		return
	}
	c.pending++
	c.mu.Unlock()
	c.ch <- name
}

// spare returns a superseded file to write over, or "".
func (c *collector) spare() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.spares) == 0 {
		return ""
	}
	name := c.spares[len(c.spares)-1]
	c.spares = c.spares[:len(c.spares)-1]
	if len(c.spares) == 0 {
		c.spareBytes = 0 // sizes change as spares are written over
	}
	return name
}

// pin keeps name from being reused until unpin.
func (c *collector) pin(name string) {
	c.mu.Lock()
	if c.pinned == nil {
		c.pinned = map[string]int{}
	}
	c.pinned[name]++
	c.mu.Unlock()
}

// unpin releases a pin of name; the last one removes it if it was
// superseded meanwhile.
func (c *collector) unpin(name string) {
	c.mu.Lock()
	if c.pinned[name]--; c.pinned[name] > 0 {
		c.mu.Unlock()
		return
	}
	delete(c.pinned, name)
	_, doomed := c.doomed[name]
	if !doomed || c.stopped {
		c.mu.Unlock()
		return
	}
	delete(c.doomed, name)
	c.pending++
	c.mu.Unlock()
	c.ch <- name
}

// wait removes the spares and returns when every queued removal is done.
func (c *collector) wait() {
	c.mu.Lock()
	spares := c.spares
	c.spares, c.spareBytes = nil, 0
	c.pending += len(spares)
	c.mu.Unlock()
	for _, name := range spares {
		c.ch <- name
	}
	c.mu.Lock()
	for c.pending > 0 {
		c.idle.Wait()
	}
	c.mu.Unlock()
}

// stop removes the spares and the superseded files that readers still
// pin, finishes the queued removals and ends the workers.
func (c *collector) stop() {
	if c.ch == nil {
		return
	}
	c.mu.Lock()
	c.stopped = true
	doomed := c.doomed
	c.doomed = nil
	c.pending += len(doomed)
	c.mu.Unlock()
	for name := range doomed {
		c.ch <- name
	}
	c.wait()
	close(c.ch)
	c.workers.Wait()
}
