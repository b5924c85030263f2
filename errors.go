package dirstore

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/dirstore/dirstore/internal/corrupt"
	"github.com/dirstore/dirstore/internal/flock"
)

// Errors returned by a Store. Each is wrapped with the operation and the key
// (a *KeyError) or the path; test them with errors.Is. A write that the file
// system refused matches fs.ErrPermission, a read-only file system's (EROFS)
// included, with the errno kept: errors.Is(err, syscall.EROFS) holds too.
var (
	// ErrNotFound means the key has no value. It matches fs.ErrNotExist.
	ErrNotFound error = &sentinel{"dirstore: key not found", fs.ErrNotExist}
	// ErrClosed means the Store was used after Close. It matches fs.ErrClosed.
	ErrClosed error = &sentinel{"dirstore: store is closed", fs.ErrClosed}
	// ErrReadOnly means a write to a store opened with Options.ReadOnly. It
	// matches fs.ErrPermission.
	ErrReadOnly error = &sentinel{"dirstore: store is read-only", fs.ErrPermission}
	// ErrCorrupt means a value's file does not hold what the manifest
	// recorded (missing, not a regular file, wrong length or wrong
	// checksum), or that the manifest itself is damaged. The bytes are
	// never returned.
	ErrCorrupt = corrupt.Err
	// ErrLocked means the directory is already open, in this process or
	// another.
	ErrLocked = errors.New("dirstore: store is already open")
	// ErrInvalidKey means a key longer than MaxKeyLen. It matches
	// fs.ErrInvalid.
	ErrInvalidKey error = &sentinel{"dirstore: key too long", fs.ErrInvalid}
	// ErrFailed means an fsync or a manifest write failed, or the file
	// system turned read-only under the store (EROFS), so the store can no
	// longer promise durability and refuses writes until it is reopened.
	// Reads keep working: they return the acknowledged bytes or an error
	// wrapping ErrCorrupt or the errno. The call that hit the failure returns an error
	// wrapping both its cause and ErrFailed; its outcome is unknown: its
	// change may or may not be there, to reads at once and after the
	// reopen, whole or not at all. Later writes return ErrFailed and change
	// nothing.
	ErrFailed = errors.New("dirstore: store failed and refuses writes")
	// ErrTooLarge means a value larger than Options.MaxBytes: no eviction
	// could make room for it, and nothing changed. It matches fs.ErrInvalid.
	ErrTooLarge error = &sentinel{"dirstore: value larger than MaxBytes", fs.ErrInvalid}
)

// MaxKeyLen is the longest key a Store accepts, in bytes.
const MaxKeyLen = 1 << 20

// sentinel is an error that also matches a standard io/fs error.
type sentinel struct {
	msg  string
	also error
}

func (e *sentinel) Error() string        { return e.msg }
func (e *sentinel) Is(target error) bool { return target == e.also }

// KeyError records an error and the operation and key that caused it.
type KeyError struct {
	Op  string // "get", "set", "delete", ...
	Key string
	Err error
}

// Error reads like "dirstore: get "k": key not found": the package prefix
// of a wrapped sentinel is not repeated.
func (e *KeyError) Error() string {
	return "dirstore: " + e.Op + " " + quoteKey(e.Key) + ": " + strings.TrimPrefix(e.Err.Error(), "dirstore: ")
}

func (e *KeyError) Unwrap() error { return e.Err }

// quoteKey quotes a key for a message, shortening a long one.
func quoteKey(k string) string {
	if len(k) > 120 {
		return strconv.Quote(k[:100]) + fmt.Sprintf("...(%d bytes)", len(k))
	}
	return strconv.Quote(k)
}

func keyErr(op, key string, err error) error {
	return &KeyError{Op: op, Key: key, Err: readOnlyErr(err)}
}

// readOnlyErr returns err so that errors.Is also finds fs.ErrPermission in
// it if it is a write the file system refused because it is read-only:
// syscall.Errno counts EACCES and EPERM as permission errors, not EROFS. The
// errno stays in the chain and the message is unchanged.
func readOnlyErr(err error) error {
	if mutated(mutReadOnlyNotPermission) {
		return err
	}
	return flock.Perm(err)
}

// corruptErr wraps a file-level cause of corruption in ErrCorrupt.
func corruptErr(op, key string, cause error) error {
	return keyErr(op, key, fmt.Errorf("%w: %w", ErrCorrupt, cause))
}
