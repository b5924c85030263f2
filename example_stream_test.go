package dirstore_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/dirstore/dirstore"
)

func ExampleOpenStream() {
	dir, _ := os.MkdirTemp("", "stream")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "data.bin")
	os.WriteFile(path, []byte("hello, stream"), 0o600)

	s, err := dirstore.OpenStream(path, os.O_RDONLY, 0, nil)
	if err != nil {
		panic(err)
	}
	defer s.Close()
	s.Hook(dirstore.OnRead, func(s *dirstore.Stream, data []byte, n int) {
		fmt.Printf("read %d bytes from %s\n", n, filepath.Base(s.Name()))
	})
	data, _ := io.ReadAll(s)
	fmt.Printf("%s\n", data)
	// Output:
	// read 13 bytes from data.bin
	// hello, stream
}

func ExampleStore_Open() {
	dir, _ := os.MkdirTemp("", "store")
	defer os.RemoveAll(dir)
	store, err := dirstore.Open(dir, nil)
	if err != nil {
		panic(err)
	}
	defer store.Close()
	store.Hook(dirstore.OnWrite, func(_ *dirstore.Stream, _ []byte, n int) {
		fmt.Printf("stored %d bytes\n", n)
	})

	store.Set("k", []byte("version 1"))
	old, _ := store.Open("k") // reads version 1 until closed
	defer old.Close()
	store.Set("k", []byte("version 2"))

	a, _ := io.ReadAll(old)
	b, _ := store.Get("k")
	fmt.Printf("%s, %s\n", a, b)
	// Output:
	// stored 9 bytes
	// stored 9 bytes
	// version 1, version 2
}
