package manifest

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// FormatMajorVersion is the pebble format that new manifests are created
// with and older ones are brought up to by a writable Open. It is pinned,
// not pebble.FormatNewest, so that a newer pebble in go.mod does not
// silently rewrite every user's manifest into a format an older binary
// cannot read: raising it changes the store's on-disk format, which takes
// a new store format version and its fixture (see the dirstore package's
// format_test.go).
const FormatMajorVersion = pebble.FormatValueSeparation

// unsupportedErr recognises pebble's refusal of a manifest written in a
// format this pebble does not know (a newer one) or no longer reads, and
// makes it match errors.ErrUnsupported. Pebble says so only in words.
func unsupportedErr(err error) error {
	msg := err.Error()
	if !strings.Contains(msg, "unknown format major version") && !strings.Contains(msg, "no longer supported") {
		return nil
	}
	return fmt.Errorf("%s: %w", firstLine(msg), errors.ErrUnsupported)
}
