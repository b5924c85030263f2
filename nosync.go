package dirstore

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/dirstore/dirstore/internal/manifest"
)

// With Options.NoSync nothing is fsynced as it is written. To keep the
// promise that a crash leaves a prefix of the acknowledged operations with
// no torn value, every operation commits an undo record (the key's entry
// before and after) in the same manifest batch, and the file it supersedes
// is kept until a checkpoint has made the operation durable. Recovery
// checks the files of the operations after the last checkpoint in order and
// undoes everything from the first one whose file did not survive.
type nosyncState struct {
	mu      sync.Mutex // serializes NoSync commits; guards the fields below
	seq     uint64     // next undo sequence number
	written []string   // files written since the last checkpoint
	garbage []garbage  // files superseded since the last checkpoint
	// acked, in sync mode, holds the undo records of acknowledged Sets
	// (installDurable), for the next commit to delete.
	acked []uint64

	ckptMu   sync.Mutex // one checkpoint at a time
	lastCkpt uint64

	kick  chan struct{} // checkpoint now
	apply chan struct{} // apply the write buffer now
	quit  chan struct{}
	loop  sync.WaitGroup
}

const (
	// checkpointFiles is how many written or superseded files start a
	// background checkpoint.
	checkpointFiles = 2048
	// maxGarbage is how many superseded files make writers checkpoint
	// themselves instead of leaving it to the background.
	maxGarbage = 64 << 10
)

func (n *nosyncState) start(s *Store) {
	n.kick = make(chan struct{}, 1)
	n.apply = make(chan struct{}, 1)
	n.quit = make(chan struct{})
	n.loop.Add(1)
	go func() {
		defer n.loop.Done()
		t := time.NewTicker(s.opts.CheckpointInterval)
		defer t.Stop()
		for {
			select {
			case <-n.quit:
				return
			case <-n.apply:
				if err := s.applyBuffered(); err != nil {
					s.opts.Logger.Error("dirstore: applying buffered writes failed", "dir", s.dir, "err", err)
				}
				continue
			case <-t.C:
				if err := s.applyBuffered(); err != nil {
					s.opts.Logger.Error("dirstore: applying buffered writes failed", "dir", s.dir, "err", err)
				}
			case <-n.kick:
			}
			if err := s.checkpoint(); err != nil {
				s.opts.Logger.Error("dirstore: checkpoint failed", "dir", s.dir, "err", err)
			}
		}
	}()
}

func (n *nosyncState) stop() {
	if n.quit != nil {
		close(n.quit)
		n.loop.Wait()
	}
}

func (n *nosyncState) poke() { signal(n.kick) }

func (n *nosyncState) pokeApply() { signal(n.apply) }

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// commit commits b with the undo record of changing key from old to new.
func (n *nosyncState) commit(b *manifest.Batch, key string, old, new *manifest.Entry) error {
	var written []string
	if new != nil {
		written = []string{fileName(key, *new)}
	}
	return n.commitGroup(b, []manifest.Undo{{Key: key, Old: old, New: new}}, written)
}

// commitGroup commits b, which makes the changes undos record, with the
// undo records marked as one group (recovery keeps or rolls back the group
// whole), and notes the files they wrote.
func (n *nosyncState) commitGroup(b *manifest.Batch, undos []manifest.Undo, written []string) error {
	n.mu.Lock()
	for i := range undos {
		u := &undos[i]
		u.Seq, u.More = n.seq+uint64(i), i < len(undos)-1
		b.PutUndo(u)
	}
	err := b.Commit(false)
	if err == nil {
		n.seq += uint64(len(undos))
		n.written = append(n.written, written...)
	}
	full := len(n.written) >= checkpointFiles
	n.mu.Unlock()
	if full {
		n.poke()
	}
	return err
}

// garbage is a superseded file.
type garbage struct {
	name string
	size int64
}

// discard keeps a superseded file until the next checkpoint.
func (n *nosyncState) discard(s *Store, name string, size int64) {
	n.mu.Lock()
	n.garbage = append(n.garbage, garbage{name, size})
	k := len(n.garbage)
	n.mu.Unlock()
	switch {
	case k >= maxGarbage:
		if err := s.checkpoint(); err != nil {
			s.opts.Logger.Error("dirstore: checkpoint failed", "dir", s.dir, "err", err)
		}
	case k >= checkpointFiles:
		n.poke()
	}
}

// checkpoint makes every operation committed so far durable, then drops
// their undo records and removes the files they superseded.
func (s *Store) checkpoint() error {
	n := &s.nosync
	n.ckptMu.Lock()
	defer n.ckptMu.Unlock()
	if err := s.failedErr(); err != nil {
		// A second fsync may report success for data the first one lost:
		// a failed store never checkpoints, so recovery keeps its undo
		// records.
		return err
	}
	n.mu.Lock()
	seq, written, garbage := n.seq, n.written, n.garbage
	n.written, n.garbage = nil, nil
	n.mu.Unlock()
	if seq == n.lastCkpt && len(garbage) == 0 {
		return nil
	}
	err := s.files.SyncFiles(written)
	if err == nil {
		err = s.files.SyncDir()
	}
	if err == nil {
		err = s.man.Sync()
	}
	if err == nil {
		b := s.man.NewBatch()
		b.DeleteUndos(seq)
		b.SetMeta(metaCkpt, binary.AppendUvarint(nil, seq))
		err = b.Commit(true)
	}
	if err != nil {
		return s.fail(err)
	}
	n.lastCkpt = seq
	for _, g := range garbage {
		s.gc.remove(g.name, g.size)
	}
	return nil
}
