package remote

import "errors"

// ErrUnavailable means the bucket could not be reached or answered with a
// failure: a Get of a key that only the bucket holds, a Has or Keys that
// must ask it, a Delete, a WriteThrough Set or a Sync. The error also wraps
// the driver's, so gcerrors.Code and errors.As still find it. Keys held
// locally keep working while the bucket is down.
var ErrUnavailable = errors.New("remote: bucket unavailable")

// ErrOutboxFull means a Set found no room in the outbox within
// Options.OutboxWait: the values waiting for upload fill Options.OutboxBytes
// (the bucket is down, or slower than the Sets). The key keeps its previous
// value. The error also wraps the last upload's error, if the last upload
// failed (ErrUnavailable when the bucket cannot be reached).
var ErrOutboxFull = errors.New("remote: outbox full")
