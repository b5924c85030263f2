//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package main

// isTerminal reports false: verify's progress line is only shown where
// terminals can be recognized.
func isTerminal(fd uintptr) bool { return false }
