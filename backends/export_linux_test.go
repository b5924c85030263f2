//go:build linux && !nouring

package backends

// ReadHint returns what the uring engine b has learned about reads of fd:
// how many page-cache probes succeeded in a row, and whether its reads now
// use plain pread. ok is false for other engines.
func ReadHint(b Backend, fd int) (succeeded uint32, plain, ok bool) {
	e, ok := b.(*uringEngine)
	if !ok {
		return 0, false, false
	}
	v := e.hints.of(fd).Load()
	return v, v == hintPlain, true
}

// HintPlainAfter and HintSample are the hints' thresholds.
const (
	HintPlainAfter = hintPlain
	HintSample     = hintSample
)

// SeedStickyHint switches on the seeded bug of a hint that a missing page
// does not reset; the returned function switches it off.
func SeedStickyHint() (restore func()) {
	seededStickyHint = true
	return func() { seededStickyHint = false }
}
