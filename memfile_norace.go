//go:build !race

package dirstore

// memSeqReads: ReadAt of a block on the Go heap takes no lock
// (memfile_seq.go).
const memSeqReads = true
