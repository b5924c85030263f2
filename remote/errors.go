package remote

import "errors"

// ErrUnavailable means the bucket could not be reached or answered with a
// failure: a Get of a key that only the bucket holds, a Has or Keys that
// must ask it, a Delete, a WriteThrough Set or a Sync. The error also wraps
// the driver's, so gcerrors.Code and errors.As still find it. Keys held
// locally keep working while the bucket is down.
var ErrUnavailable = errors.New("remote: bucket unavailable")
