// Package remote puts a bucket of object storage (S3, GCS, Azure Blob, or
// any other gocloud.dev/blob driver) behind a local dirstore.Store: a
// read-through, write-back two-tier store for spill caches and build
// caches that outgrow one disk, or that several machines share.
//
// It lives in its own module, so that the dirstore library's go.mod
// carries no cloud SDK.
//
// # Reads
//
// Get, View and Open look for a key in the outbox (values not yet
// uploaded, see below), then in the local store, then in the bucket. A
// value found only in the bucket streams into the local store
// (dirstore.Store.SetFrom) and is served from there; concurrent reads of
// one missing key share one download. Each object carries its value's
// CRC-32C as metadata ("crc32c"), and every download is checked against it
// and against the object's length before the local store commits it: an
// object changed in the bucket is dirstore.ErrCorrupt, never wrong bytes.
// (The portable blob API gives a reader no metadata, so the metadata is
// fetched by a second request that runs while the bytes stream.)
//
// A bucket that is down makes reads of keys found only there fail with
// ErrUnavailable; keys held locally keep working.
//
// # Writes and the outbox
//
// Set and SetFrom write the value into the outbox, a second
// dirstore.Store (by default in the subdirectory ".dirstore+outbox" of the
// local store's directory: a name the local store never takes for one of
// its files, so it leaves it alone), and return. Uploaders (Options.Uploaders
// of them) copy outbox values to the bucket, retrying failures with
// exponential backoff; once a value is in the bucket it moves from the
// outbox to the local store, where it may be evicted like any cached
// value, since the bucket now has it. Options.WriteThrough makes Set wait
// for its upload. Sync waits for every upload pending when it began.
//
// The outbox is the durable record of pending uploads: a Set is as
// durable as a Set of the outbox store (by default, as the local store's),
// and Open resumes the uploads of every key the outbox holds, after a
// Close or a crash. Nothing acknowledged is lost.
//
// Why an outbox rather than marks on the local store's entries: the local
// store may be bounded (a cache that evicts the least recently used keys
// to stay within a byte budget), and a value must never be evicted before
// the bucket has it. Keeping pending values in a store that never evicts
// gives that guarantee with any local store, bounded or not and whatever
// API it has for pinning entries, and makes resuming a listing of the
// outbox. The price is one local copy per Set (outbox to local store)
// after its upload, off the Set's path; and the outbox is not counted
// against the local store's budget.
//
// # The outbox's bound
//
// By default the outbox is unbounded: a bucket that stays down lets it
// grow until the disk is full (Stats.PendingBytes says how much waits).
// Options.OutboxBytes bounds it: a Set or SetFrom that finds no room waits
// for uploads to make some (back-pressure, when the bucket is slower than
// the Sets), for at most Options.OutboxWait, then fails with an error
// wrapping ErrOutboxFull and, when the last upload failed, its error
// (ErrUnavailable for a bucket that is down); the key keeps its previous
// value. The bound is hard: room is reserved before a value is written
// (by SetFrom, as its reader yields bytes), and a value being replaced
// counts until its replacement is written.
//
// # Deletes
//
// Delete removes a key from the bucket, the outbox and the local store
// before it returns (it waits for an upload or a download of the key that
// is running). If the bucket cannot be reached it fails and removes
// nothing.
//
// # Keys
//
// Keys are escaped into object names that S3, GCS and Azure all accept:
// ASCII letters, digits, '-', '_' and '.' stay, every other byte becomes
// %XX; a '.' at either end is escaped too, names are flat (no '/'), and the
// empty key is "%". A key whose name would be longer than 1,024 bytes is
// refused with dirstore.ErrInvalidKey. To share a bucket with other data,
// give Open a blob.PrefixedBucket. Objects whose names are not of this form
// are ignored by Keys.
//
// # Concurrency
//
// A Store's methods may be called concurrently. Several Stores, on
// several machines, may share one bucket; the last upload of a key wins.
// A local store and an outbox directory belong to one Store at a time.
//
// # Failures
//
// Failed uploads and downloads are counted in Stats (with the last error)
// and reported to Options.Logger. Errors about a key are
// *dirstore.KeyError values; bucket failures wrap ErrUnavailable and the
// driver's error (gcerrors.Code works on them).
package remote
