//go:build linux

package backends_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/dirstore/dirstore/backends"
	"golang.org/x/sys/unix"
)

func TestFileDirect(t *testing.T) {
	forEngine(t, func(t *testing.T, b backends.Backend) {
		content := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB
		name := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(name, content, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := backends.OpenFile(name, os.O_RDWR|unix.O_DIRECT, 0, &backends.FileOptions{Backend: b})
		if err != nil {
			t.Skipf("O_DIRECT: %v", err)
		}
		defer f.Close()
		if f.Flags()&backends.Direct == 0 {
			t.Fatal("Flags lacks Direct")
		}
		var got []byte
		for chunk, err := range f.Chunks(backends.Alignment) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, chunk...)
		}
		if !bytes.Equal(got, content) {
			t.Fatal("Chunks of an O_DIRECT file: wrong bytes")
		}
		for _, err := range f.Lines() {
			if !errors.Is(err, errors.ErrUnsupported) {
				t.Errorf("Lines on an O_DIRECT file: %v, want ErrUnsupported", err)
			}
		}
	})
}
