package dirstore_test

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"

	"github.com/dirstore/dirstore"
)

// An encoder writes through one handle while a parser reads the same bytes
// through another, without touching disk.
func ExampleMemFile() {
	m := dirstore.NewMemFile("report.csv")

	w, err := m.OpenFile(os.O_WRONLY | os.O_APPEND)
	if err != nil {
		log.Fatal(err)
	}
	r, err := m.Open()
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	fmt.Fprintln(w, "name,size")
	fmt.Fprintln(w, "a.txt,12")
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fmt.Println("parsed:", sc.Text())
	}
	fmt.Fprintln(w, "b.txt,7") // the reader picks up where it stopped
	w.Close()
	for sc = bufio.NewScanner(r); sc.Scan(); {
		fmt.Println("parsed:", sc.Text())
	}

	// Positional I/O on the MemFile itself, like pread and pwrite.
	p := make([]byte, 5)
	n, err := m.ReadAt(p, 10)
	fmt.Printf("%d bytes at offset 10: %q, %v\n", n, p[:n], err)
	n, err = m.ReadAt(p, m.Size()-3)
	fmt.Printf("%d bytes at the end: %q, %v\n", n, p[:n], err == io.EOF)
	// Output:
	// parsed: name,size
	// parsed: a.txt,12
	// parsed: b.txt,7
	// 5 bytes at offset 10: "a.txt", <nil>
	// 3 bytes at the end: ",7\n", true
}

// File hands the bytes to a child process as a real descriptor, and the
// MemFile sees what the child writes back. On Linux it prints:
//
//	the child read "hello from the parent\n"
//	the MemFile holds "hello from the parent\nhello from the child\n"
func ExampleMemFile_File() {
	m := dirstore.NewMemFile("input.txt")
	defer m.Close()
	m.WriteAt([]byte("hello from the parent\n"), 0)

	f, err := m.File()
	if err != nil {
		log.Fatal(err) // errors.Is(err, errors.ErrUnsupported) without memfd
	}
	defer f.Close()

	// The child sees the bytes on descriptor 3, and as /dev/fd/3.
	cmd := exec.Command("sh", "-c", "cat /dev/fd/3; echo 'hello from the child' >>/dev/fd/3")
	cmd.ExtraFiles = []*os.File{f}
	out, err := cmd.Output()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("the child read %q\n", out)

	all, _ := io.ReadAll(io.NewSectionReader(m, 0, m.Size()))
	fmt.Printf("the MemFile holds %q\n", all)
}
