//go:build linux && race

package backends_test

// threadsReaders is smaller under the race detector, which slows goroutine
// creation and multiplies their memory.
const threadsReaders = 10_000
