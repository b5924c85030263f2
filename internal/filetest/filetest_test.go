package filetest_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/dirstore/dirstore/internal/filetest"
)

// The suite must pass on the readers it imitates.

func TestBytesReader(t *testing.T) {
	filetest.Run(t, func(t *testing.T, content []byte) filetest.Opener {
		return func() (any, error) { return bytes.NewReader(content), nil }
	})
}

func TestOSFile(t *testing.T) {
	filetest.Run(t, func(t *testing.T, content []byte) filetest.Opener {
		name := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(name, content, 0o600); err != nil {
			t.Fatal(err)
		}
		return func() (any, error) { return os.Open(name) }
	})
}

// lenientReaderAt breaks the io.ReaderAt contract: a short read at the end
// comes without io.EOF.
type lenientReaderAt struct{ *bytes.Reader }

func (r lenientReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.Reader.ReadAt(p, off)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// The suite must fail on a reader that breaks a contract.
func TestCatchesShortReadAtWithoutError(t *testing.T) {
	content := filetest.Contents()[5]
	err := filetest.TestReaders(func() (any, error) {
		return lenientReaderAt{bytes.NewReader(content)}, nil
	}, content)
	if err == nil {
		t.Fatal("TestReaders accepted a ReadAt that returns a short count with a nil error")
	}
	t.Log(err)
}

func TestRejectsNonReader(t *testing.T) {
	if err := filetest.TestReaders(func() (any, error) { return 42, nil }, nil); err == nil {
		t.Fatal("TestReaders accepted an int")
	}
}
