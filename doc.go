// Package dirstore keeps bytes on local disk and in RAM behind the
// interfaces Go programmers already know.
//
// A [Store] maps string keys to byte values, one file per value, in a
// directory: the Go successor of Python's zict.File. A [MemFile] is one block
// of RAM opened any number of times as real file handles. A [Stream] is a
// file stream with a shared range cache (optionally scan-resistant) and hooks;
// [Store.Open] streams a value, and [Store.FS] shows the keys as an io/fs
// file system (for http.FileServer, fs.WalkDir, templates). A [Buffer]
// keeps hot values in memory and spills the rest to a Store, compressed if
// its Codec is [S2Codec]. The backends subpackage does positional file I/O
// on a fixed, small set of threads.
//
// # Data model
//
// Each value lives in its own file, named as zict names it: the key escaped
// with Python's quote(key, safe="") and a version suffix, "a/b c" -> "a%2Fb%20c#7".
// A name longer than 255 bytes is cut inside the escaped part; the version,
// a store-wide counter that never repeats (not across restarts, not across
// crashes), keeps names unique. A Set never writes into, truncates or renames
// onto a live file: it writes a new file (or one that an earlier Set retired
// and no reader holds) and then switches the key to it.
//
// Which file holds which key is recorded in a manifest, a pebble database in
// the hidden subdirectory .dirstore, with each value's size and CRC-32C. The
// manifest, not the directory listing, is the truth: Len, Has and Keys come
// from it, so memory does not grow with the number of keys, and files the
// manifest does not know are never taken for keys. Entries also record when
// the value was written (Store.FS's ModTime). On Linux, reading a value does
// not update its file's access time (O_NOATIME, where the kernel allows it:
// files the reading user owns): on a relatime mount that saves a metadata
// update of the first read after each write. A bounded store keeps its own
// record of use in the manifest. What a store holds in memory is bounded by
// options, whatever its number of keys: Options.EntryCache entries in the
// Go heap, and the manifest's blocks (Options.ManifestCache, taken as they
// are read, so no more than the manifest's size) and memtables (two of up
// to 4 MiB) outside it where cgo is enabled.
//
// # Durability
//
// By default a Set, SetBuffers, SetFrom or Delete that returned nil survives a
// crash of the process or the machine. A Set writes the new file, then makes
// it durable (the file's fsync and the directory's) while, at the same
// time, the manifest commits the new entry with sync, together with an undo
// record; it returns once all are done (on btrfs, where overlapping fsyncs
// cost several times more, a Set with no other in flight runs the three
// one after another, the commit last), and only then is the replaced file
// retired, in the background: removed, or kept to be written over by a later
// Set (never while a mapped View or a Store.Open stream still reads it: such
// a file stays in place, under its name, until the reader is done). A
// crash between the two may leave an entry whose file did not reach the
// disk: the next Open finds it through its undo record, checks the file
// against the entry's checksum, and if it does not hold the value, gives the
// key back its previous value (that Set was never acknowledged). An
// interrupted write leaves the old value or the new one, never a torn one.
// Concurrent writers share the directory and manifest syncs (group commit).
//
// With [Options].NoSync nothing is synced as it is written. After a crash,
// of the machine or of the process alone (the manifest's log is written out
// in the background), the store holds a prefix of the acknowledged operations: never a torn value,
// never a key whose file is missing, never a deleted key back (unless the
// delete itself was lost along with everything after it). Background
// checkpoints (every [Options].CheckpointInterval) and [Store.Sync] and
// [Store.Close] make everything durable.
//
// A NoSync store also buffers writes ([Options].WriteBuffer, 4 MiB): a Set
// of a small value, or a Delete, returns once it is in memory, where every
// read sees it, and the buffer is applied in batches in the background
// (when half full, and at each checkpoint), each batch one manifest commit
// that recovery keeps or rolls back whole. A key overwritten while its
// value waits is written to a file once. Writes that bypass the buffer
// (larger values, SetFrom) apply it first, so the order of operations is
// kept. When the buffer is full, writers apply it themselves; if it cannot
// be applied (a full disk, say), it keeps its values, reads still see them,
// and writes return the error until it can.
//
// # Failures
//
// An error from a write leaves the store as it was (with the writes
// acknowledged before it, buffered ones included): the previous value, no
// stray file (one that could not be removed is left to the next Open's
// recovery). Errors wrap their cause, so errors.Is finds the errno
// (syscall.ENOSPC, syscall.EIO). If an fsync or a write of the manifest
// fails, the store cannot know what reached the disk: the error also wraps
// [ErrFailed], and the store refuses further writes with ErrFailed until it
// is reopened (reads go on). The operation that failed this way may turn out
// done or not, to reads at once and after the reopen, never half done; every operation
// acknowledged before it is there (in NoSync mode, if Close could not
// complete, a prefix of them). A manifest write that fails stops every later
// write of the manifest from reaching the disk, which then holds what a
// crash at that moment would have left, so the next Open recovers from it
// as from a crash. Reads keep working after such a failure, until Close,
// which returns the failure too (the store could not record a clean
// shutdown).
//
// A file system that turns read-only under an open store (EROFS) fails it
// the same way, whichever write meets it first. That is how ext4 mounted
// with errors=remount-ro, or btrfs, gives up after an error of its own
// (a remount read-only by hand is refused while the store holds files open
// for writing): it aborts its journal, so what reached the disk since the
// last fsync is unknown, and it stays read-only until it is mounted again.
// Every write then returns an error matching [fs.ErrPermission],
// syscall.EROFS and ErrFailed; reads return every acknowledged operation,
// from a NoSync store's write buffer too; once the file system is mounted
// writable, the store opens and recovers as from a crash at that moment. A
// write refused for want of permission (EACCES, EPERM) matches
// fs.ErrPermission too, but fails the store only if it was the manifest's:
// a value file that could not be created changed nothing.
//
// # A full disk
//
// A full disk is not a crash. Every store keeps an emergency reserve
// ([Options].Reserve): space preallocated in the hidden directory while
// there is room, given back the moment the manifest, or writing out the
// write buffer, meets ENOSPC. It is a base (by default the NoSync write
// buffer plus 2 MiB, at most a quarter of the file system) plus the size
// of the manifest's live data (up to 64 MiB), and grows with the
// manifest: the manifest needs that much to rewrite itself in a
// compaction, and to record Deletes whose tombstones are as long as their
// keys. So, on a full disk:
//   - the Set that found no room for its value returns an error wrapping
//     syscall.ENOSPC and changes nothing; so does a Set that finds no room
//     for the reserve to grow; once the reserve is given back, Sets of new
//     values return ENOSPC at once, until the reserve's size plus a
//     quarter of its base is free again (then it is made again);
//   - every value acknowledged before reads back; Deletes, checkpoints and
//     Close still commit, using the reserve, so Close followed by Open keeps
//     every acknowledged operation, NoSync and its write buffer included;
//   - Open of a full store works, writable (it gives the reserve back first
//     if the disk has less free space than its base), so Deletes can free
//     space; Open with ReadOnly works too, even after a NoSync store
//     failed, as long as the files written since its last checkpoint are
//     intact.
//
// What a full disk can cost: with keys as long as a block, the manifest
// and its reserve take more room than the values (on an 8 MiB file system,
// 100-300 keys of 4 KiB), and Deletes of such keys free little until the
// manifest compacts them away: each records a tombstone as long as its key,
// about what a small value's file gives back, so the store may keep
// refusing new values until space comes from elsewhere. If the reserve is
// off, or was not made (there was
// never room for it), or the manifest needs more than it holds (a
// manifest over 64 MiB rewriting more than that at once), a manifest write
// fails as above (ErrFailed): then the store keeps the operations
// acknowledged before the failure, in NoSync mode a prefix of them if
// Close could not complete, and a writable Open may fail with ENOSPC until
// space is freed by other means (a read-only Open still works).
//
// # Recovery
//
// Close records a clean shutdown. An Open that does not find one recovers: it
// rolls a NoSync store back to its last intact prefix, removes value files
// the manifest does not reference (only names of the store's own form; any
// other file in the directory is left alone), and reports keys whose files
// are missing or not of the recorded length through [Options].Logger (the
// bytes themselves are checked by every read and by [Store.Verify]);
// reading such a key returns ErrCorrupt.
// The first Open of a directory that holds zict.File files (zict 3's
// quote(key)#N or zict 2's quote(key)) adopts them as keys without copying.
//
// # Cache mode
//
// With [Options].MaxBytes a store is a bounded cache: a Set that would
// take the values past the budget first evicts the least recently used
// keys (never its own), so that [Stats].Bytes <= MaxBytes whenever a Set
// returns, with any number of writers; a larger value is refused with
// [ErrTooLarge]. [Options].MaxIdle evicts keys unused for longer, and
// [Store.Trim] evicts on demand; [Options].OnEvict hears of each eviction.
// Recency is kept in the manifest, not in memory: writes record it in
// their commit, reads note it in memory and a background goroutine
// writes it within a second, so the order is exact between uses more than
// a second apart and survives Close, a crash and a reopen. A store opened
// without a budget keeps no recency, which makes its writes cheaper; the
// next Open with one rebuilds it from the times the values were written,
// the order the store's writes left. An eviction is
// a Delete with the store's durability. [Store.Pin] keeps a key from
// eviction, durably, until [Store.Unpin]. A [Buffer] over a bounded Store
// forgets the spilled keys the Store evicts; [BufferOptions].MaxSpill
// bounds what a Buffer spills.
//
// # Integrity
//
// Every read checks the value's length and CRC-32C against the manifest. A
// value whose file was changed, truncated, extended or removed behind the
// store's back, or replaced by something other than a regular file (a
// symbolic link, a FIFO, a directory), returns an error matching
// [ErrCorrupt], never wrong bytes, and never blocks. [Store.Verify] checks
// every value. A damaged manifest fails Open with a one-line error naming
// it that matches ErrCorrupt too.
//
// # Format
//
// The on-disk format is versioned: the manifest records the version of the
// code that wrote it, and its pebble format is pinned, so a newer pebble
// does not rewrite it behind the user's back. A store written in a format
// newer than the code reads is refused with an error matching
// [errors.ErrUnsupported]; every version opens the stores of the older
// ones (testdata/format-v*).
//
// # Keys
//
// A key is any string of at most [MaxKeyLen] bytes: empty, ".", "..", "/",
// "#", NUL, invalid UTF-8. No key can name a path outside the directory, and
// value files are opened with O_NOFOLLOW, so a symbolic link planted under a
// value's name is not followed. Keys are listed in byte order.
//
// # Concurrency
//
// A Store's methods may be called concurrently. Operations on one key are
// linearizable: a Get that starts after a Set returned sees that Set or a
// later one, and a reader never sees a torn value, even if the key is
// overwritten while it reads. A directory is open in at most one Store at a
// time, in this process or another; a second Open returns [ErrLocked], which
// means only that: a lock file that cannot be had for another reason is
// that error (matching [fs.ErrPermission] on read-only media too). Where the
// lock file cannot be written (read-only media, another user's store), an
// Open with [Options].ReadOnly takes a shared lock instead, which excludes
// writers and is excluded by them.
//
// Callbacks (View's and Verify's, hooks, a Buffer's Codec, Weight, OnSpill
// and OnUnspill, SetFrom's reader) may panic: nothing stays locked or
// waiting, no file is left behind, and the panic reaches the caller.
//
// # Errors
//
// Errors about a key are [*KeyError] values naming the operation and the key;
// file-level errors inside are [*fs.PathError] with the raw errno, so
// errors.Is(err, syscall.ENOSPC) works. A missing key matches
// [fs.ErrNotExist], use after Close [fs.ErrClosed], a write to a read-only
// store or one the file system refused (EACCES, EPERM, EROFS)
// [fs.ErrPermission].
package dirstore
