package dirstore

// Mutations the crash tests must catch (see mutation.go).
var Mutations = map[string]int32{
	"no file fsync":              mutNoFileSync,
	"no directory fsync":         mutNoDirSync,
	"manifest without sync":      mutNoManifestSync,
	"old file removed too early": mutRemoveTooEarly,
	"batch rolled back in part":  mutSplitBatch,
}

// ApplyBuffered writes what a NoSync store's write buffer holds to files
// and the manifest, without making it durable.
func (s *Store) ApplyBuffered() error { return s.applyBuffered() }

// SetMutation switches a seeded bug on; the returned function switches it off.
func SetMutation(m int32) (restore func()) {
	mutation.Store(m)
	return func() { mutation.Store(mutNone) }
}
