package remote

// Seeded bugs, for the tests that show they catch them.
const (
	MutNoChecksum    = mutNoChecksum
	MutLocalPending  = mutLocalPending
	MutNoOutboxBound = mutNoOutboxBound
)

// SetMutation switches a seeded bug on; the returned function switches it off.
func SetMutation(m int32) (undo func()) {
	mutation.Store(m)
	return func() { mutation.Store(mutNone) }
}

// WaitFills waits until every downloaded value being stored locally is
// stored and its download has ended.
func (s *Store) WaitFills() { s.fills.Wait() }
