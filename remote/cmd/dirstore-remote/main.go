// Command dirstore-remote works on a dirstore directory that shares its
// values through a bucket (package remote).
//
//	dirstore-remote sync -remote URL DIR
//
// uploads the values the directory's outbox still holds (those a process
// left pending when it stopped or crashed) and waits for them.
//
//	dirstore-remote gocache -remote URL [-max SIZE] [-sync] [-v] DIR
//
// is a GOCACHEPROG server whose cache is shared through the bucket (what
// "dirstore gocache -remote" runs): GOCACHEPROG="dirstore gocache -remote
// URL DIR" on every machine, each with its own DIR.
//
// URL is a gocloud.dev/blob URL: s3://bucket?region=...[&endpoint=http://host:port&use_path_style=true]
// (credentials from the usual AWS variables and files), file:///path.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/s3blob"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/remote"
)

const usage = `usage: dirstore-remote sync -remote URL DIR
       dirstore-remote gocache -remote URL [-max SIZE] [-sync] [-v] DIR

  sync     upload what DIR's outbox holds and wait for it
  gocache  serve the go command's build cache (GOCACHEPROG), shared
           through the bucket
`

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "gocache" {
		return gocache(args[1:], stdin, stdout, stderr)
	}
	if len(args) == 0 || args[0] != "sync" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	fl := flag.NewFlagSet("sync", flag.ContinueOnError)
	fl.SetOutput(stderr)
	url := fl.String("remote", "", "gocloud.dev/blob URL of the bucket")
	attempts := fl.Int("attempts", 5, "tries per value before giving up")
	verbose := fl.Bool("v", false, "log failed uploads as they happen")
	if err := fl.Parse(args[1:]); err != nil {
		return 2
	}
	if *url == "" || fl.NArg() != 1 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	dir := fl.Arg(0)
	if err := syncDir(*url, dir, *attempts, *verbose, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "dirstore-remote: %v\n", err)
		return 1
	}
	return 0
}

func syncDir(url, dir string, attempts int, verbose bool, stdout, stderr io.Writer) (err error) {
	if _, err := os.Stat(dir); err != nil {
		return err // never create a directory that is not there
	}
	ctx := context.Background()
	bucket, err := blob.OpenBucket(ctx, url)
	if err != nil {
		return fmt.Errorf("open %s: %w", url, err)
	}
	defer bucket.Close()
	local, err := dirstore.Open(dir, nil)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, local.Close()) }()
	logger := slog.New(slog.DiscardHandler)
	if verbose {
		logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	s, err := remote.Open(local, bucket, &remote.Options{Attempts: attempts, Logger: logger})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	start := time.Now()
	pending := s.Stats().Pending
	err = s.Sync()
	st := s.Stats()
	fmt.Fprintf(stdout, "%s: %d pending, %d uploaded (%d bytes) in %v, %d failed attempts, %d still pending\n",
		dir, pending, st.Uploads, st.UploadedBytes, time.Since(start).Round(time.Millisecond), st.UploadFailures, st.Pending)
	return err
}
