package backends_test

import (
	"os"
	"testing"
)

// testMainHooks are set by platform-specific test files.
var testMainHooks struct {
	child   func() bool // runs a child process's work; true when this is one
	cleanup func()
}

func TestMain(m *testing.M) {
	if testMainHooks.child != nil && testMainHooks.child() {
		return
	}
	code := m.Run()
	if testMainHooks.cleanup != nil {
		testMainHooks.cleanup()
	}
	os.Exit(code)
}
