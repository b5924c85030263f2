//go:build !unix

package gocacheprog

// openFileLimit returns the number of descriptors the process may open.
func openFileLimit() int { return 16384 }
