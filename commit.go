package dirstore

import "sync"

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
