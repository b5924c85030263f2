package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/remote"
)

// TestSync leaves values pending in a directory (its bucket was down),
// then uploads them with "dirstore-remote sync" to an S3 server on
// 127.0.0.1 (gofakes3), through the s3:// URL opener.
func TestSync(t *testing.T) {
	backend := s3mem.New()
	if err := backend.CreateBucket("b"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	url := "s3://b?region=us-east-1&use_path_style=true&endpoint=" + srv.URL

	// Pending uploads: a Store whose bucket refuses every write.
	dir := t.TempDir()
	local, err := dirstore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	down := memblob.OpenBucket(nil)
	down.Close() // every call now fails
	s, err := remote.Open(local, down, &remote.Options{Uploaders: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := range 20 {
		k := fmt.Sprintf("key/%d", i)
		want[k] = strings.Repeat(k, i+1)
		if err := s.Set(k, []byte(want[k])); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := local.Close(); err != nil {
		t.Fatal(err)
	}

	var out, errOut bytes.Buffer
	if code := run([]string{"sync", "-remote", url, dir}, nil, &out, &errOut); code != 0 {
		t.Fatalf("sync: exit %d: %s%s", code, out.Bytes(), errOut.Bytes())
	}
	t.Logf("%s", out.Bytes())
	if !strings.Contains(out.String(), "20 pending, 20 uploaded") || !strings.Contains(out.String(), "0 still pending") {
		t.Fatalf("sync said: %s", out.Bytes())
	}

	// A second machine over the same bucket reads them all.
	bucket, err := blob.OpenBucket(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	other, err := dirstore.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	r, err := remote.Open(other, bucket, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for k, v := range want {
		got, err := r.Get(k)
		if err != nil || string(got) != v {
			t.Fatalf("Get(%q) after sync: %q, %v", k, got, err)
		}
	}
	// Nothing left: a second sync uploads nothing.
	out.Reset()
	if code := run([]string{"sync", "-remote", url, dir}, nil, &out, &errOut); code != 0 || !strings.Contains(out.String(), "0 pending") {
		t.Fatalf("second sync: exit %d: %s%s", code, out.Bytes(), errOut.Bytes())
	}
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	for _, args := range [][]string{nil, {"sync"}, {"sync", "DIR"}, {"push", "-remote", "x", "DIR"}} {
		if code := run(args, nil, &out, &errOut); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	if code := run([]string{"sync", "-remote", "mem://", "/nonexistent/dir"}, nil, &out, &errOut); code != 1 {
		t.Errorf("missing dir: exit %d, want 1", code)
	}
}
