package backends_test

import (
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/dirstore/dirstore/backends"
)

func Example() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)

	// Open uses the Default engine: io_uring where it works, pread/pwrite
	// otherwise (backends.Info says which, and why).
	f, err := backends.Open(filepath.Join(dir, "data"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()

	if _, err := f.WriteAt([]byte("hello, world\n"), 0); err != nil {
		log.Fatal(err)
	}
	p := make([]byte, 5)
	if _, err := f.ReadAt(p, 7); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", p)

	// A short read says why.
	n, err := f.ReadAt(make([]byte, 100), 7)
	fmt.Println(n, err == io.EOF)
	// Output:
	// world
	// 6 true
}

func ExampleFile_Lines() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	name := filepath.Join(dir, "log")
	os.WriteFile(name, []byte("header\nfirst\nsecond\r\nthird"), 0o644)

	f, err := backends.Open(name, os.O_RDONLY, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	f.Seek(7, io.SeekStart) // skip the header: Lines starts at the position
	for line, err := range f.Lines() {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%q\n", line)
	}
	// Output:
	// "first"
	// "second"
	// "third"
}

func ExampleFile_ReadMany() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	name := filepath.Join(dir, "data")
	os.WriteFile(name, []byte("0123456789"), 0o644)

	f, err := backends.Open(name, os.O_RDONLY, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	// One batch: the uring engine submits all of them with one system call.
	ops := []backends.Op{
		{Off: 0, Buf: make([]byte, 2)},
		{Off: 5, Buf: make([]byte, 3)},
		{Off: 8, Buf: make([]byte, 4)}, // crosses the end
	}
	err = f.ReadMany(ops)
	for _, op := range ops {
		fmt.Printf("%q %v\n", op.Buf[:op.N], op.Err)
	}
	fmt.Println(err)
	// Output:
	// "01" <nil>
	// "567" <nil>
	// "89" EOF
	// EOF
}

func ExampleInfo() {
	info := backends.Info()
	fmt.Println(info.Name == "uring" || info.Reason != "")
	// Output: true
}
