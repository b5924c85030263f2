package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/gocacheprog"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"gocloud.dev/blob"
)

// TestGocacheSharedBucket: two "dirstore gocache -remote" servers, with
// their own directories and GOCACHEs (two machines), share one bucket on
// an S3 server on 127.0.0.1: the second machine's first go test of a
// module the first one tested prints "(cached)", and a go build of what
// the first one built compiles nothing.
// It runs the real go command, through the dirstore command, which runs
// dirstore-remote.
func TestGocacheSharedBucket(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("this test runs the go command: %v", err)
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	for _, pkg := range []string{"github.com/dirstore/dirstore/cmd/dirstore", "github.com/dirstore/dirstore/remote/cmd/dirstore-remote"} {
		if out, err := exec.Command(goCmd, "build", "-o", bin+"/", pkg).CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", pkg, err, out)
		}
	}
	backend := s3mem.New()
	if err := backend.CreateBucket("gocache"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	defer srv.Close()
	url := "s3://gocache?region=us-east-1&use_path_style=true&endpoint=" + srv.URL

	mod := filepath.Join(tmp, "mod")
	for name, text := range map[string]string{
		"go.mod":      "module example.com/m\n\ngo 1.24\n",
		"p/p.go":      "package p\n\nimport \"strings\"\n\nfunc Shout(s string) string { return strings.ToUpper(s) + \"!\" }\n",
		"p/p_test.go": "package p\n\nimport \"testing\"\n\nfunc TestShout(t *testing.T) {\n\tif got := Shout(\"hi\"); got != \"HI!\" {\n\t\tt.Fatal(got)\n\t}\n}\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(mod, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mod, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// machine runs the go command as machine name would: its own cache
	// directory and GOCACHE, the shared bucket.
	machine := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(goCmd, args...)
		cmd.Dir = mod
		cmd.Env = []string{
			"GOCACHE=" + filepath.Join(tmp, name, "gocache"),
			"GOCACHEPROG=" + filepath.Join(bin, "dirstore") + " gocache -remote " + url + " " + filepath.Join(tmp, name, "store"),
			"GOFLAGS=", "GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local",
			"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
			"AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent",
		}
		for _, kv := range os.Environ() {
			switch k, _, _ := strings.Cut(kv, "="); k {
			case "HOME", "PATH", "TMPDIR", "GOROOT", "GOPATH", "GOMODCACHE":
				cmd.Env = append(cmd.Env, kv)
			}
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: go %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := machine("one", "test", "./..."); !strings.Contains(out, "ok  \texample.com/m/p") || strings.Contains(out, "(cached)") {
		t.Fatalf("the first machine's go test:\n%s", out)
	}
	machine("one", "build", "./p") // go test built p's test variant, not p
	objects := 0
	if list, err := backend.ListBucket("gocache", nil, gofakes3.ListBucketPage{}); err == nil {
		objects = len(list.Contents)
	}
	if objects == 0 {
		t.Fatal("the first machine uploaded nothing")
	}
	t.Logf("the first machine left %d objects in the bucket", objects)
	if out := machine("two", "test", "./..."); !strings.Contains(out, "(cached)") {
		t.Errorf("the second machine's first go test does not say (cached):\n%s", out)
	}
	if out := machine("two", "build", "-x", "./p"); strings.Contains(out, "/compile ") {
		t.Errorf("the second machine's go build -x compiled:\n%.2000s", out)
	}
	// "dirstore sync -remote" (which runs dirstore-remote sync) finds
	// nothing left to upload: each server's close waited for its uploads.
	cmd := exec.Command(filepath.Join(bin, "dirstore"), "sync", "-remote", url, filepath.Join(tmp, "one", "store"))
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "0 pending") {
		t.Errorf("dirstore sync -remote: %v\n%s", err, out)
	}
}

// TestGocacheCloseUploads: the server's close leaves every output and
// action in the bucket, so the next machine finds this build's entries;
// the seeded bug of closing without waiting for the uploads is caught.
func TestGocacheCloseUploads(t *testing.T) {
	if missing := closeUploads(t); missing != 0 {
		t.Fatalf("%d values were not in the bucket after close", missing)
	}
	closeWithoutSync = true
	defer func() { closeWithoutSync = false }()
	if missing := closeUploads(t); missing == 0 {
		t.Fatal("the seeded bug (close without waiting for the uploads) was not caught")
	}
}

func closeUploads(t *testing.T) (missing int) {
	bucketDir := t.TempDir()
	local, err := dirstore.Open(t.TempDir(), &dirstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := bucketTier(io.Discard)(local, gocacheprog.Options{Remote: "file://" + bucketDir})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := range n {
		if err := c.Set(fmt.Sprintf("o/%04d", i), bytes.Repeat([]byte{byte(i)}, 64<<10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	bucket, err := blob.OpenBucket(context.Background(), "file://"+bucketDir)
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	for i := range n {
		// remote escapes "/" in object names (names.go).
		if ok, err := bucket.Exists(context.Background(), fmt.Sprintf("o%%2F%04d", i)); err != nil || !ok {
			missing++
		}
	}
	return missing
}

// TestGocacheOutboxFull: with -max and the bucket gone, the outbox fills
// up to the budget; puts after that are cached on this machine only, and
// every entry put is served.
func TestGocacheOutboxFull(t *testing.T) {
	bucketDir := t.TempDir()
	local, err := dirstore.Open(t.TempDir(), &dirstore.Options{NoSync: true, MaxBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	c, err := bucketTier(&stderr)(local, gocacheprog.Options{Remote: "file://" + bucketDir, MaxBytes: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(bucketDir); err != nil { // every upload fails from now on
		t.Fatal(err)
	}
	value := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 64<<10) }
	for i := range 20 {
		if err := c.Set(fmt.Sprintf("o/%04d", i), value(i)); err != nil {
			t.Fatalf("put %d with the outbox full: %v", i, err)
		}
	}
	for i := range 20 {
		if got, err := c.Get(fmt.Sprintf("o/%04d", i)); err != nil || !bytes.Equal(got, value(i)) {
			t.Fatalf("get %d: %d bytes, %v", i, len(got), err)
		}
	}
	if !strings.Contains(stderr.String(), "cached on this machine only") {
		t.Errorf("stderr %q does not say puts are kept locally", stderr.String())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}
