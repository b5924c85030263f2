package dirstore_test

import (
	"encoding/json"
	"fmt"
	"log"
	"os"

	"github.com/dirstore/dirstore"
)

type examplePoint struct{ X, Y int }

// exampleJSON is a Codec that stores values as JSON.
type exampleJSON[V any] struct{}

func (exampleJSON[V]) Marshal(v V) ([]byte, error) { return json.Marshal(v) }

func (exampleJSON[V]) Unmarshal(data []byte) (V, error) {
	var v V
	err := json.Unmarshal(data, &v)
	return v, err
}

// A Buffer keeps the most recently used values in memory and spills the
// others to a Store.
func ExampleBuffer() {
	dir, err := os.MkdirTemp("", "buffer-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := dirstore.Open(dir, &dirstore.Options{NoSync: true})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close() // the Buffer does not close its Store

	b, err := dirstore.NewBuffer(s, dirstore.BufferOptions[examplePoint]{
		MaxWeight: 2, // two points in memory (each weighs 1 by default)
		Codec:     exampleJSON[examplePoint]{},
		OnSpill: func(key string, p examplePoint) error {
			fmt.Println("spilled", key, p)
			return nil
		},
		OnUnspill: func(key string, p examplePoint) {
			fmt.Println("read back", key, p)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	b.Set("a", examplePoint{1, 2})
	b.Set("b", examplePoint{3, 4})
	b.Set("c", examplePoint{5, 6}) // a is the least recently used

	p, err := b.Get("a") // reads a back; b spills to make room
	fmt.Println(p, err)
	fmt.Println(b.Len(), "keys,", b.Weight(), "in memory,", s.Len(), "in the store")

	// Flush spills everything, so that Close loses nothing.
	if err := b.Flush(); err != nil {
		log.Fatal(err)
	}
	if err := b.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Len(), "in the store")
	// Output:
	// spilled a {1 2}
	// spilled b {3 4}
	// read back a {1 2}
	// {1 2} <nil>
	// 3 keys, 2 in memory, 1 in the store
	// spilled c {5 6}
	// spilled a {1 2}
	// 3 in the store
}
