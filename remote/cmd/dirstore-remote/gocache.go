package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"sync/atomic"

	"gocloud.dev/blob"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/gocacheprog"
	"github.com/dirstore/dirstore/remote"
)

// gocache is "dirstore-remote gocache -remote URL DIR" (which "dirstore
// gocache -remote URL DIR" runs): the GOCACHEPROG server of package
// gocacheprog over a remote.Store, so that machines with their own DIR
// share one build cache in the bucket.
func gocache(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := gocacheprog.ParseArgs(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, gocacheprog.Usage)
		return 0
	case err == nil && o.Remote == "":
		err = &gocacheprog.UsageError{Msg: "gocache: -remote URL is required (without it, run dirstore gocache)"}
	}
	if err != nil {
		fmt.Fprintf(stderr, "dirstore-remote: %v\n", err)
		if ue := (*gocacheprog.UsageError)(nil); errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	if err := gocacheprog.Run(o, bucketTier(stderr), stdin, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "dirstore-remote: %v\n", err)
		return 1
	}
	return 0
}

// bucketTier opens the bucket of o.Remote in front of the local store.
func bucketTier(stderr io.Writer) gocacheprog.Tier {
	return func(local *dirstore.Store, o gocacheprog.Options) (gocacheprog.Cache, error) {
		bucket, err := blob.OpenBucket(context.Background(), o.Remote)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", o.Remote, err)
		}
		logger := slog.New(slog.DiscardHandler)
		if o.Verbose {
			logger = slog.New(slog.NewTextHandler(stderr, nil))
		}
		// With -max, the outbox (values not uploaded yet) is bounded too,
		// and a put that finds it full is cached here only (see Set).
		s, err := remote.Open(local, bucket, &remote.Options{Logger: logger, OutboxBytes: o.MaxBytes, OutboxWait: -1})
		if err != nil {
			bucket.Close()
			return nil, err
		}
		return &bucketCache{Store: s, local: local, bucket: bucket, stderr: stderr}, nil
	}
}

// bucketCache is a remote.Store as the server's Cache. A bucket that
// cannot be reached makes a lookup a miss, not an error: the go command
// then builds what it needs, and its puts wait in the outbox.
type bucketCache struct {
	*remote.Store
	local  *dirstore.Store
	bucket *blob.Bucket
	stderr io.Writer
	warned atomic.Bool
}

func (c *bucketCache) Get(key string) ([]byte, error) {
	v, err := c.Store.Get(key)
	return v, c.missIfDown(err)
}

// Set writes through the remote store (to the outbox, uploaded in the
// background). When the outbox is full (a bucket down for long, with -max),
// the value is cached here only: the build goes on, and other machines
// miss it.
func (c *bucketCache) Set(key string, value []byte) error {
	err := c.Store.Set(key, value)
	if errors.Is(err, remote.ErrOutboxFull) {
		if !c.warned.Swap(true) {
			fmt.Fprintf(c.stderr, "dirstore gocache: %v; outputs are cached on this machine only until uploads catch up\n", err)
		}
		return c.local.Set(key, value)
	}
	return err
}

func (c *bucketCache) Open(key string) (*dirstore.Stream, error) {
	st, err := c.Store.Open(key)
	return st, c.missIfDown(err)
}

func (c *bucketCache) missIfDown(err error) error {
	if errors.Is(err, remote.ErrUnavailable) {
		return fmt.Errorf("%w (a miss: %v)", fs.ErrNotExist, err)
	}
	return err
}

// Close waits for the uploads (so that other machines find this build's
// outputs), then closes the remote store, the local one and the bucket.
// Uploads that fail stay in the outbox for the next server or
// "dirstore-remote sync"; they do not fail the go command.
func (c *bucketCache) Close() error {
	if err := c.sync(); err != nil {
		fmt.Fprintf(c.stderr, "dirstore gocache: %v; %d uploads stay pending until the next run (or dirstore-remote sync)\n", err, c.Store.Stats().Pending)
	}
	return errors.Join(c.Store.Close(), c.local.Close(), c.bucket.Close())
}

// sync is Store.Sync, unless a test seeded the bug of skipping it.
func (c *bucketCache) sync() error {
	if closeWithoutSync {
		return nil
	}
	return c.Store.Sync()
}

// closeWithoutSync seeds a bug the tests must catch: Close does not wait
// for the uploads. Only tests set it.
var closeWithoutSync bool
