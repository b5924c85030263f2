package dirstore

import (
	"errors"
	"io/fs"
	"sync"
)

// collector removes superseded value files on a few background goroutines,
// off the path of the Set or Delete that superseded them (an unlink costs
// tens of microseconds on a file system that discards synchronously). A
// crash before a removal leaves an orphan that the next Open removes.
type collector struct {
	s       *Store
	ch      chan string
	workers sync.WaitGroup

	mu      sync.Mutex
	idle    sync.Cond
	pending int
}

const (
	removeWorkers = 4
	removeQueue   = 4096
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
			c.s.opts.Logf("dirstore: %v", err)
		}
		c.mu.Lock()
		c.pending--
		if c.pending == 0 {
			c.idle.Broadcast()
		}
		c.mu.Unlock()
	}
}

// remove queues name for removal; it blocks while the queue is full.
func (c *collector) remove(name string) {
	c.mu.Lock()
	c.pending++
	c.mu.Unlock()
	c.ch <- name
}

// wait returns when every queued removal is done.
func (c *collector) wait() {
	c.mu.Lock()
	for c.pending > 0 {
		c.idle.Wait()
	}
	c.mu.Unlock()
}

// stop finishes the queued removals and ends the workers.
func (c *collector) stop() {
	if c.ch == nil {
		return
	}
	close(c.ch)
	c.workers.Wait()
}

// syncGroup shares one fsync among concurrent callers (group commit): a
// caller waits for a sync that started after it arrived, and whoever finds
// none running starts one on behalf of all waiting.
type syncGroup struct {
	mu       sync.Mutex
	done     sync.Cond
	started  uint64
	finished uint64
	running  bool
	err      error
}

func (g *syncGroup) sync(fn func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done.L == nil {
		g.done.L = &g.mu
	}
	want := g.started + 1
	for g.finished < want && g.err == nil {
		if g.running {
			g.done.Wait()
			continue
		}
		g.running = true
		g.started++
		gen := g.started
		g.mu.Unlock()
		err := fn()
		g.mu.Lock()
		g.running = false
		g.finished = gen
		if err != nil && g.err == nil {
			g.err = err
		}
		g.done.Broadcast()
	}
	return g.err
}
