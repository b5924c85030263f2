// Package corrupt holds the sentinel error of damaged data, which the
// store's ErrCorrupt is and the manifest's corruption errors match, so that
// one errors.Is test covers a corrupt value and a damaged manifest alike.
package corrupt

import "errors"

// Err is dirstore.ErrCorrupt.
var Err = errors.New("dirstore: value is corrupt")
