package dirstore

import (
	"errors"
	"io/fs"
	"sync"

	"github.com/dirstore/dirstore/internal/manifest"
)

// syncGroup shares one fsync among concurrent callers (group commit): a
// caller waits for a sync that started after it arrived, and whoever finds
// none running starts one on behalf of all waiting.
type syncGroup struct {
	mu       sync.Mutex
	done     sync.Cond
	started  uint64
	finished uint64
	running  bool
	err      error
}

func (g *syncGroup) sync(fn func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done.L == nil {
		g.done.L = &g.mu
	}
	want := g.started + 1
	for g.finished < want && g.err == nil {
		if g.running {
			g.done.Wait()
			continue
		}
		g.running = true
		g.started++
		gen := g.started
		g.mu.Unlock()
		err := fn()
		g.mu.Lock()
		g.running = false
		g.finished = gen
		if err != nil && g.err == nil {
			g.err = err
		}
		g.done.Broadcast()
	}
	return g.err
}

// installDurable is install in sync mode, at the cost of the minimal
// protocol: the value's file is made durable (its fsync and the
// directory's, at once; the directory's shared with concurrent writers)
// while the manifest commits
// the new entry, with sync, together with an undo record marked Alone. The
// Set is acknowledged once both are done. A crash in between may leave an
// entry whose file did not reach the disk; the next Open finds it through
// its undo record and rolls that key back alone (rollbackAlone), and the
// file it rolls back to is still there, since a superseded file is
// discarded only after the Set that superseded it is acknowledged. Where
// overlapping syncs cost more than serial ones (s.serial: btrfs), a durable
// Set that finds no other in flight makes its file durable first and
// commits the entry after; with others in flight the overlap pays there
// too (8 goroutines on btrfs: 11% more Sets than all serial).
func (s *Store) installDurable(op, key, name string, e manifest.Entry, res *int64) error {
	serial := false
	if s.serial {
		serial = s.durableSets.Add(1) == 1
		defer s.durableSets.Add(-1)
	}
	durable := make(chan error, 1)
	if serial {
		// One sync after another (commit_linux.go says where): the
		// entry is committed only once its file is durable.
		if err := s.makeDurable(name, true); err != nil {
			s.drop(name)
			return keyErr(op, key, s.fail(err))
		}
		durable <- nil
	} else {
		go func() { durable <- s.makeDurable(name, false) }()
	}
	old, had, seq, err := s.commitEntry(key, &e, res, true)
	ferr := <-durable
	if m := (*errMoreRoom)(nil); errors.As(err, &m) {
		return err // nothing changed: the caller makes room and comes back
	}
	if ferr != nil && err == nil && errors.Is(ferr, fs.ErrNotExist) && s.superseded(key, name) {
		// A later Set or Delete of the key, acknowledged (so durable)
		// already, retired the file before its fsync: nothing of this Set
		// is left to make durable.
		ferr = nil
	}
	if err != nil {
		if errors.Is(err, ErrFailed) {
			s.gc.leftover.Store(true)
		} else {
			s.drop(name)
		}
		return keyErr(op, key, err)
	}
	if ferr != nil {
		// The file may not be durable: give the key its previous entry
		// back, so that the store holds what it held before this Set, and
		// fail the store (an fsync that failed once cannot be trusted).
		s.revert(key, name, old, had, e, seq)
		return keyErr(op, key, s.fail(ferr))
	}
	s.aloneDone(seq)
	if had {
		s.discard(fileName(key, old), old.Size)
	}
	return nil
}

// revert undoes a durable Set whose file could not be made durable: key
// gets back its previous entry (old, or none if !had), unless a later
// operation replaced e already, and the undo record seq goes. If the
// manifest cannot take the change, the undo record stays and the next
// Open's recovery keeps the Set or rolls it back by what its file holds.
func (s *Store) revert(key, name string, old manifest.Entry, had bool, e manifest.Entry, seq uint64) {
	mu := s.stripe(key)
	mu.Lock()
	defer mu.Unlock()
	cur, ok, err := s.lookupLocked(key)
	if err != nil || !ok || !sameFile(cur, e) || mutated(mutNoRevert) {
		s.gc.leftover.Store(true)
		return
	}
	b := s.man.NewBatch()
	if had {
		b.Put(key, old) // its recency stays: the Set was a use
	} else {
		b.Delete(key)
		if err := s.dropRecency(b, key); err != nil {
			s.gc.leftover.Store(true)
			return
		}
	}
	b.DeleteUndo(seq)
	if err := b.Commit(true); err != nil {
		s.cacheLocked(key, nil)
		s.gc.leftover.Store(true)
		return
	}
	if had {
		s.cacheLocked(key, &old)
		s.account(old.Size-e.Size, 0)
	} else {
		s.cacheLocked(key, nil)
		s.count.Add(-1)
		s.account(-e.Size, 0)
	}
	s.drop(name)
}

// dropRecency adds to b the removal of key's recency records, for a key b
// removes otherwise than by commitLocked (a rollback).
func (s *Store) dropRecency(b *manifest.Batch, key string) error {
	if mutated(mutRecencyKept) {
		return nil
	}
	t, ok, err := s.man.Recency(key)
	if err != nil {
		return s.metaErr(err)
	}
	if ok {
		b.DeleteRecency(key, t)
	}
	return nil
}

// superseded reports whether key's entry no longer names the file name.
func (s *Store) superseded(key, name string) bool {
	mu := s.stripe(key)
	mu.Lock()
	defer mu.Unlock()
	e, ok, err := s.lookupLocked(key)
	return err == nil && (!ok || fileName(key, e) != name)
}

// makeDurable fsyncs the new file name and the directory at once: neither
// needs the other first (the name is in the directory since its creation),
// and the file system batches concurrent syncs into fewer journal commits
// than two in a row (on ext4 with a journal and XFS, 8 writers: 6-15% more
// durable Sets than the file's fsync, then the directory's). Both are done
// before it returns. With serial, the file's fsync comes first, then the
// directory's.
func (s *Store) makeDurable(name string, serial bool) error {
	syncFile := func() error {
		if mutated(mutNoFileSync) {
			return nil
		}
		return s.files.SyncFiles([]string{name})
	}
	syncDir := func() error {
		if mutated(mutNoDirSync) {
			return nil
		}
		return s.dirSync.sync(s.files.SyncDir)
	}
	if serial {
		if err := syncFile(); err != nil {
			return err
		}
		return syncDir()
	}
	dir := make(chan error, 1)
	go func() { dir <- syncDir() }()
	err := syncFile()
	if mutated(mutDirSyncNotAwaited) {
		return err
	}
	if derr := <-dir; err == nil {
		err = derr
	}
	return err
}

// nextUndo returns the next undo sequence number.
func (s *Store) nextUndo() uint64 {
	n := &s.nosync
	n.mu.Lock()
	defer n.mu.Unlock()
	n.seq++
	return n.seq - 1
}

// aloneDone notes that the Set of undo record seq is acknowledged: the next
// commit deletes the record.
func (s *Store) aloneDone(seq uint64) {
	n := &s.nosync
	n.mu.Lock()
	n.acked = append(n.acked, seq)
	n.mu.Unlock()
}

// takeAcked returns the undo records of acknowledged Sets, for a commit to
// delete. A commit that fails loses them: recovery finds their files
// intact and only deletes them.
func (s *Store) takeAcked() []uint64 {
	n := &s.nosync
	n.mu.Lock()
	defer n.mu.Unlock()
	a := n.acked
	n.acked = nil
	return a
}
