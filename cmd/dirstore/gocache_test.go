package main

import (
	"strings"
	"testing"
)

// The server itself is tested in internal/gocacheprog; these test the
// command's arguments.
func TestGocacheFlags(t *testing.T) {
	dir := t.TempDir()
	wantExit(t, 2, []string{"gocache", "-max", "lots", dir}, "-max", "lots")
	wantExit(t, 2, []string{"gocache", "-max", "0", dir}, "-max", "positive")
	wantExit(t, 2, []string{"gocache"}, "usage: dirstore gocache")
	wantExit(t, 2, []string{"gocache", dir, "extra"}, "usage: dirstore gocache")
	wantExit(t, 2, []string{"gocache", "-frob", dir}, "-frob")
	if r := wantExit(t, 0, []string{"gocache", "-h"}); !strings.Contains(r.stdout, "GOCACHEPROG") {
		t.Errorf("gocache -h printed %q", r.stdout)
	}
	if r := wantExit(t, 0, []string{"help"}); !strings.Contains(r.stdout, "gocache") {
		t.Errorf("help does not mention gocache")
	}
	// -remote runs dirstore-remote, which is not beside the test binary
	// or in this PATH.
	t.Setenv("PATH", t.TempDir())
	wantExit(t, 1, []string{"gocache", "-remote", "file:///nowhere", dir}, "dirstore-remote is not installed")
	wantExit(t, 1, []string{"sync", "-remote", "file:///nowhere", dir}, "dirstore-remote is not installed")
	wantExit(t, 2, []string{"sync", dir, "a", "b"}, "usage: dirstore sync -remote URL DIR")
}
