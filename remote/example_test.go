package remote_test

import (
	"fmt"
	"log"
	"os"

	"gocloud.dev/blob/memblob"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/remote"
)

// Two machines share values through one bucket: what the first sets, the
// second reads after the first's Sync. (Use s3blob, gcsblob or azureblob,
// or blob.OpenBucket with a URL, for a real bucket.)
func Example() {
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()

	top, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(top)
	open := func() (*dirstore.Store, *remote.Store) {
		dir, err := os.MkdirTemp(top, "machine")
		if err != nil {
			log.Fatal(err)
		}
		local, err := dirstore.Open(dir, &dirstore.Options{NoSync: true})
		if err != nil {
			log.Fatal(err)
		}
		s, err := remote.Open(local, bucket, nil)
		if err != nil {
			log.Fatal(err)
		}
		return local, s
	}
	localA, a := open()
	defer localA.Close()
	defer a.Close()
	localB, b := open()
	defer localB.Close()
	defer b.Close()

	if err := a.Set("results/part-1", []byte("42")); err != nil {
		log.Fatal(err)
	}
	if err := a.Sync(); err != nil { // wait for the upload
		log.Fatal(err)
	}
	v, err := b.Get("results/part-1") // downloaded, checked, kept locally
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s, downloads: %d\n", v, b.Stats().Downloads)
	// Output: 42, downloads: 1
}
