package dirstore_test

import (
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/dirstore/dirstore"
)

// A Store's keys seen as a file system: walked with fs.WalkDir and served
// over HTTP, Range requests included.
func ExampleStore_FS() {
	dir, err := os.MkdirTemp("", "fs-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := dirstore.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	for k, v := range map[string]string{
		"site/index.html":    "<h1>hello</h1>",
		"site/css/main.css":  "h1 { color: teal }",
		"site/data/2026.csv": "day,visits\n1,10\n2,12\n",
		"site//not-a-path":   "hidden: not a valid path",
		"site/data":          "hidden: site/data is a directory",
		"notes/readme.txt":   "plain text",
	} {
		if err := s.Set(k, []byte(v)); err != nil {
			log.Fatal(err)
		}
	}

	fsys := s.FS()
	err = fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fmt.Println(path, d.IsDir())
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}

	// In a program: http.ListenAndServe(addr, http.FileServer(http.FS(sub))).
	sub, _ := fs.Sub(fsys, "site")
	srv := httptest.NewServer(http.FileServer(http.FS(sub)))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/data/2026.csv", nil)
	req.Header.Set("Range", "bytes=11-")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("%s %s %q\n", resp.Status, resp.Header.Get("Content-Range"), body)
	// Output:
	// . true
	// notes true
	// notes/readme.txt false
	// site true
	// site/css true
	// site/css/main.css false
	// site/data true
	// site/data/2026.csv false
	// site/index.html false
	// 206 Partial Content bytes 11-20/21 "1,10\n2,12\n"
}
