package dirstore

// Mutations the crash tests must catch (see mutation.go).
var Mutations = map[string]int32{
	"no file fsync":              mutNoFileSync,
	"no directory fsync":         mutNoDirSync,
	"manifest without sync":      mutNoManifestSync,
	"old file removed too early": mutRemoveTooEarly,
	"batch rolled back in part":  mutSplitBatch,
}

// MutReserveKept is the seeded bug the full-disk tests must catch: the
// emergency reserve is never released.
const MutReserveKept = mutReserveKept

// ApplyBuffered writes what a NoSync store's write buffer holds to files
// and the manifest, without making it durable.
func (s *Store) ApplyBuffered() error { return s.applyBuffered() }

// SetMutation switches a seeded bug on; the returned function switches it off.
func SetMutation(m int32) (restore func()) {
	mutation.Store(m)
	return func() { mutation.Store(mutNone) }
}

// Buffered returns how many operations and value bytes a NoSync store's
// write buffer holds.
func (s *Store) Buffered() (ops int, bytes int64) {
	w := &s.wb
	if !w.on() {
		return 0, 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	ops = len(w.cur)
	for k := range w.applying {
		if _, ok := w.cur[k]; !ok {
			ops++
		}
	}
	return ops, w.bytes
}
