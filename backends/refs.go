package backends

import "sync/atomic"

// refs counts a File's calls in progress so that Close can wait for them
// before it closes the descriptor (closing earlier would let a new file reuse
// the number under a running call). It is os.File's scheme: one counter with
// a closed bit. (A counter sharded per P was tried: on the project's machine
// its sync.Pool lookups cost more than the shared cache line they avoid.)
type refs struct {
	state atomic.Int64  // closedBit | calls in progress
	wake  chan struct{} // capacity 1: the last call after close
}

const closedBit = 1 << 62

func newRefs() refs { return refs{wake: make(chan struct{}, 1)} }

// acquire registers a call; it fails once close has begun.
func (r *refs) acquire() bool {
	if r.state.Add(1)&closedBit != 0 {
		r.release()
		return false
	}
	return true
}

func (r *refs) release() {
	if r.state.Add(-1) == closedBit {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// close stops new calls and waits for those in progress. It reports false
// when close had already begun.
func (r *refs) close() bool {
	for {
		s := r.state.Load()
		if s&closedBit != 0 {
			return false
		}
		if r.state.CompareAndSwap(s, s|closedBit) {
			break
		}
	}
	for r.state.Load() != closedBit {
		<-r.wake
	}
	return true
}

func (r *refs) isClosed() bool { return r.state.Load()&closedBit != 0 }
