package dirstore_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

// TestOptionsInvalid: Open reports every bad option at once, as an error
// matching fs.ErrInvalid, and creates nothing.
func TestOptionsInvalid(t *testing.T) {
	if _, err := dirstore.Open(t.TempDir(), &dirstore.Options{FileMode: fs.ModeSymlink, EntryCache: -5}); !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("Open with bad options = %v", err)
	}
	dir := filepath.Join(t.TempDir(), "new")
	_, err := dirstore.Open(dir, &dirstore.Options{
		FileMode:           fs.ModeSymlink | 0o600,
		DirMode:            fs.ModeDir | 0o700,
		EntryCache:         -5,
		ManifestCache:      -1,
		WriteBuffer:        -2,
		CheckpointInterval: -1,
	})
	if !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("Open with bad options = %v, want fs.ErrInvalid", err)
	}
	for _, field := range []string{"FileMode", "DirMode", "EntryCache", "ManifestCache", "WriteBuffer", "CheckpointInterval"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("the error does not name %s: %v", field, err)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open with bad options created %s: %v", dir, err)
	}
}

// TestPermissions: value files and the directories Open creates get the
// default modes.
func TestPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	s := storetest.Open(t, dir, nil)
	mustSet(t, s, "k", []byte("v"))
	for name, want := range map[string]fs.FileMode{dir: 0o700, filepath.Join(dir, "k#0"): 0o600} {
		fi, err := os.Stat(name)
		if err != nil || fi.Mode().Perm() != want {
			t.Fatalf("%s: mode %v, %v; want %v", name, fi.Mode().Perm(), err, want)
		}
	}
}
