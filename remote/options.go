package remote

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/dirstore/dirstore"
)

// Options configure Open. The zero value (or nil) gives the defaults.
type Options struct {
	// WriteThrough makes Set, SetFrom and Delete return only once the
	// bucket has the change. Default false: write-back, the upload runs in
	// the background and Sync waits for it.
	WriteThrough bool

	// Uploaders is how many uploads run at once. Default 8.
	Uploaders int

	// OutboxDir is the directory of the outbox, the store that holds values
	// written but not yet uploaded (see the package doc). Default: the
	// subdirectory ".dirstore+outbox" of the local store's directory, a
	// name the local store never takes for one of its own files.
	OutboxDir string

	// OutboxBytes, if positive, bounds the outbox: the sum of the sizes of
	// the values waiting for upload (Stats.PendingBytes), so that a bucket
	// that stays down cannot fill the disk. A Set or SetFrom that would
	// pass it waits for uploads to make room, for at most OutboxWait, then
	// fails with an error wrapping ErrOutboxFull, and the key keeps its
	// previous value; waiting is the back-pressure a bucket slower than
	// the Sets needs. A value larger than the bound by itself fails at
	// once with dirstore.ErrTooLarge. (A value being replaced counts until
	// its replacement is written.) Default 0: unbounded.
	OutboxBytes int64

	// OutboxWait is how long a Set waits for room in a full outbox (see
	// OutboxBytes). Default 1 minute; negative: no wait, a full outbox
	// fails the Set at once.
	OutboxWait time.Duration

	// Outbox configures the outbox store. Default: NoSync if and only if
	// the local store is NoSync, so a Set is as durable as the local
	// store's own. It must not evict (MaxBytes and MaxIdle 0): a pending
	// value evicted would be lost. Bound the outbox with OutboxBytes.
	Outbox *dirstore.Options

	// Timeout bounds each request to the bucket (an upload or download
	// included). Default 1 minute.
	Timeout time.Duration

	// Attempts is how many times a WriteThrough Set or a Sync tries one
	// upload before returning its error (the value stays in the outbox and
	// the background keeps trying). Default 3.
	Attempts int

	// MinBackoff and MaxBackoff bound the wait before an upload is retried:
	// it doubles from MinBackoff after each failure, up to MaxBackoff, with
	// jitter. Defaults 100ms and 30s.
	MinBackoff, MaxBackoff time.Duration

	// Logger receives failed uploads and downloads, corrupt objects and
	// what Open resumed. Default: nothing is logged.
	Logger *slog.Logger
}

func (o *Options) withDefaults(local *dirstore.Store) (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Uploaders == 0 {
		c.Uploaders = 8
	}
	if c.OutboxDir == "" {
		c.OutboxDir = filepath.Join(local.Dir(), ".dirstore+outbox")
	}
	if c.Outbox == nil {
		c.Outbox = &dirstore.Options{NoSync: local.Stats().NoSync}
	}
	if c.OutboxWait == 0 {
		c.OutboxWait = time.Minute
	}
	if c.Timeout == 0 {
		c.Timeout = time.Minute
	}
	if c.Attempts == 0 {
		c.Attempts = 3
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if c.Uploaders < 0 {
		errs = append(errs, fmt.Errorf("Uploaders %d is negative", c.Uploaders))
	}
	if c.OutboxBytes < 0 {
		errs = append(errs, fmt.Errorf("OutboxBytes %d is negative", c.OutboxBytes))
	}
	if c.Outbox.MaxBytes != 0 {
		errs = append(errs, fmt.Errorf("Outbox.MaxBytes %d would evict values not yet uploaded (bound the outbox with OutboxBytes)", c.Outbox.MaxBytes))
	}
	if c.Outbox.MaxIdle != 0 {
		errs = append(errs, fmt.Errorf("Outbox.MaxIdle %v would evict values not yet uploaded", c.Outbox.MaxIdle))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("Timeout %v is negative", c.Timeout))
	}
	if c.Attempts < 0 {
		errs = append(errs, fmt.Errorf("Attempts %d is negative", c.Attempts))
	}
	if c.MinBackoff < 0 || c.MaxBackoff < c.MinBackoff {
		errs = append(errs, fmt.Errorf("backoff %v..%v is not a range", c.MinBackoff, c.MaxBackoff))
	}
	if local.Stats().ReadOnly {
		errs = append(errs, fmt.Errorf("the local store %s is read-only", local.Dir()))
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("remote: invalid options: %w: %w", fs.ErrInvalid, err)
	}
	return c, nil
}
