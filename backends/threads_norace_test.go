//go:build linux && !race

package backends_test

// threadsReaders is the thread test's goroutine count.
const threadsReaders = 100_000
