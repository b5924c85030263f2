//go:build race

package dirstore

// memSeqReads is off under the race detector, which would report the
// lock-free copies that the sequence count rejects (memfile_seq.go).
const memSeqReads = false
