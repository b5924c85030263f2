package dirstore_test

import (
	"fmt"
	"log"
	"os"

	"github.com/dirstore/dirstore"
)

func Example() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)

	s, err := dirstore.Open(dir, nil) // durable by default
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	if err := s.Set("a/b c", []byte("hello")); err != nil {
		log.Fatal(err)
	}
	if err := s.SetBuffers("parts", []byte("con"), []byte("cat")); err != nil {
		log.Fatal(err)
	}
	v, _ := s.Get("a/b c")
	fmt.Printf("%s\n", v)

	_ = s.View("parts", func(v []byte) error { // no copy; v is valid inside only
		fmt.Printf("%s\n", v)
		return nil
	})
	for k, err := range s.Keys() {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%q\n", k)
	}
	_, err = s.Get("missing")
	fmt.Println(err)
	fmt.Println(s.Len())
	// Output:
	// hello
	// concat
	// "a/b c"
	// "parts"
	// dirstore: get "missing": key not found
	// 2
}
