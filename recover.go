package dirstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"

	"github.com/dirstore/dirstore/internal/datadir"
	"github.com/dirstore/dirstore/internal/escape"
	"github.com/dirstore/dirstore/internal/manifest"
)

// adopt runs on the first Open of a directory: files written by zict.File
// become keys, without copying. zict 3 names them quote(key)#N, zict 2
// quote(key). Where one key has several files, the highest version wins and
// the others (zict's leaked versions) are removed.
func (s *Store) adopt() error {
	names, err := s.files.List()
	if err != nil {
		return s.openErr(err)
	}
	type found struct {
		name string
		e    manifest.Entry
	}
	keys := map[string]found{}
	var losers []string
	var next uint64
	for _, name := range names {
		if name == metaDir {
			continue
		}
		var key string
		var e manifest.Entry
		if q, v, ok := escape.Parse(name); ok {
			k, ok := escape.Unquote(q)
			if !ok {
				continue
			}
			key, e.Version = k, v
			next = max(next, v+1)
		} else if escape.ValidQuoted(name) {
			k, _ := escape.Unquote(name)
			key, e.Legacy = k, true
		} else {
			continue // not zict's naming: neither adopted nor touched
		}
		info, err := s.opts.FS.Stat(s.files.Path(name))
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		data, err := s.files.Read(name, info.Size(), nil)
		if err != nil {
			continue // a symbolic link, or a file that changed under us
		}
		e.Size, e.CRC = int64(len(data)), crc32.Checksum(data, datadir.Castagnoli)
		if prev, ok := keys[key]; ok {
			// Keep the highest version; a versioned file beats a legacy one.
			if prev.e.Legacy || (!e.Legacy && e.Version > prev.e.Version) {
				if !prev.e.Legacy {
					losers = append(losers, prev.name)
				}
			} else {
				if !e.Legacy {
					losers = append(losers, name)
				}
				continue
			}
		}
		keys[key] = found{name, e}
	}
	adopted := make([]string, 0, len(keys))
	// The adopted keys get no recency records: a store with a budget
	// gives them their files' modification times next (openRecency).
	b := s.man.NewBatch()
	for key, f := range keys {
		b.Put(key, f.e)
		adopted = append(adopted, f.name)
		s.count.Add(1)
		s.bytes.Add(f.e.Size)
	}
	s.versions.next = next
	if len(adopted) > 0 {
		if err := s.files.SyncFiles(adopted); err != nil {
			b.Close()
			return s.openErr(err)
		}
		s.opts.Logger.Info("dirstore: adopted zict files", "dir", s.dir, "count", len(adopted))
	}
	if err := b.Commit(true); err != nil {
		return s.metaErr(err)
	}
	for _, name := range losers {
		_ = s.files.Remove(name)
	}
	return nil
}

// recover runs when the store was not closed cleanly: it rolls back what a
// NoSync crash lost, removes orphan files and recounts the keys.
func (s *Store) recover() error {
	lease, err := s.metaUint(metaLease)
	if err != nil {
		return err
	}
	s.versions.next = lease
	if err := s.rollback(); err != nil {
		return err
	}
	names, err := s.files.List()
	if err != nil {
		return s.openErr(err)
	}
	present := make(map[string]bool, len(names))
	for _, name := range names {
		present[name] = true
	}
	var count, bytes int64
	for ke, err := range s.man.Entries("") {
		if err != nil {
			return s.metaErr(err)
		}
		count++
		bytes += ke.Size
		name := fileName(ke.Key, ke.Entry)
		if _, ok := present[name]; !ok {
			s.opts.Logger.Warn("dirstore: the file of a key is missing", "dir", s.dir, keyAttr(ke.Key), "file", name)
		} else if info, err := s.opts.FS.Stat(s.files.Path(name)); err == nil && info.Size() != ke.Size {
			// Checking the bytes would read every value: the length is
			// what a lost or torn write changes. Reads and Verify check
			// the checksum.
			s.opts.Logger.Warn("dirstore: the file of a key has the wrong length", "dir", s.dir, keyAttr(ke.Key), "file", name, "size", info.Size(), "want", ke.Size)
		}
		present[name] = false // referenced
		if !ke.Legacy {
			s.versions.next = max(s.versions.next, ke.Version+1)
		}
	}
	removed := 0
	for name, orphan := range present {
		if _, v, ok := escape.Parse(name); ok && orphan {
			s.versions.next = max(s.versions.next, v+1)
			if err := s.files.Remove(name); err != nil {
				// Not a file of ours after all (a directory, say), or not
				// removable: leave it, it is not a key either.
				if !errors.Is(err, fs.ErrNotExist) {
					s.opts.Logger.Warn("dirstore: left an orphan file in place", "dir", s.dir, "file", name, "err", err)
				}
				continue
			}
			removed++
		}
	}
	s.count.Store(count)
	s.bytes.Store(bytes)
	if removed > 0 {
		s.opts.Logger.Info("dirstore: removed orphan files", "dir", s.dir, "count", removed)
	}
	return nil
}

// rollback undoes the NoSync operations after the first one whose file did
// not survive the crash, so that the store holds a prefix of them, and the
// durable Sets in flight at the crash whose files did not survive
// (rollbackAlone).
func (s *Store) rollback() error {
	ckpt, err := s.metaUint(metaCkpt)
	if err != nil {
		return err
	}
	var undos, alone []manifest.Undo
	seq := ckpt
	for u, err := range s.man.Undos(ckpt) {
		if err != nil {
			return s.metaErr(err)
		}
		seq = u.Seq + 1
		if u.Alone {
			alone = append(alone, u)
		} else {
			undos = append(undos, u)
		}
	}
	first := len(undos)
	for i, u := range undos {
		if u.New != nil && !s.intact(u.Key, *u.New) {
			s.opts.Logger.Warn("dirstore: the file of a key does not hold the value written (lost in the crash)",
				"dir", s.dir, keyAttr(u.Key), "file", fileName(u.Key, *u.New), "size", u.New.Size)
			first = i
			break
		}
	}
	// The operations of one batch (buffered writes applied together) go
	// together.
	for first > 0 && first < len(undos) && undos[first-1].More && !mutated(mutSplitBatch) {
		first--
	}
	b := s.man.NewBatch()
	var kept, dropped []string
	for i := len(undos) - 1; i >= first; i-- {
		u := undos[i]
		if u.Old != nil {
			b.Put(u.Key, *u.Old)
		} else {
			b.Delete(u.Key)
		}
		if u.New != nil {
			dropped = append(dropped, fileName(u.Key, *u.New))
		}
	}
	for _, u := range undos[:first] {
		if u.New != nil {
			kept = append(kept, fileName(u.Key, *u.New))
		}
	}
	lost, err := s.rollbackAlone(b, alone)
	if err != nil {
		b.Close()
		return err
	}
	dropped = append(dropped, lost...)
	if err := s.rollbackRecency(b, undos[first:]); err != nil {
		b.Close()
		return err
	}
	// What survived the crash may still be only in the page cache.
	if err := s.files.SyncFiles(kept); err != nil {
		b.Close()
		return s.openErr(err)
	}
	b.DeleteUndos(seq)
	b.SetMeta(metaCkpt, binary.AppendUvarint(nil, seq))
	if err := b.Commit(true); err != nil {
		return s.metaErr(err)
	}
	s.nosync.seq, s.nosync.lastCkpt = seq, seq
	if n := len(undos) - first; n > 0 {
		s.opts.Logger.Info("dirstore: rolled back unsynced operations", "dir", s.dir, "count", n)
	}
	if n := len(lost); n > 0 {
		s.opts.Logger.Info("dirstore: rolled back durable Sets that were in flight at the crash", "dir", s.dir, "count", n)
	}
	for _, name := range dropped {
		_ = s.files.Remove(name)
	}
	return nil
}

// rollbackAlone adds to b the rollback of each durable Set of alone (undo
// records in commit order) that was in flight at the crash and whose file
// did not survive, and returns those files (b nil: only finds them). A key's records are taken from
// the newest: one is rolled back only if the key still has the entry it
// gave (no later operation replaced it) and its file does not hold that
// value; the first that is kept, or that a later operation replaced, ends
// the key's rollback. Keys are independent: every Set acknowledged is
// durable, whatever happened to the others.
func (s *Store) rollbackAlone(b *manifest.Batch, alone []manifest.Undo) (lost []string, err error) {
	if mutated(mutAloneIgnored) {
		return nil, nil
	}
	type state struct {
		cur  *manifest.Entry
		done bool
	}
	keys := map[string]*state{}
	for i := len(alone) - 1; i >= 0; i-- {
		u := alone[i]
		k := keys[u.Key]
		if k == nil {
			e, ok, err := s.man.Get(u.Key)
			if err != nil {
				return nil, fmt.Errorf("dirstore: open %s: manifest: %w", s.dir, err)
			}
			k = &state{}
			if ok {
				k.cur = &e
			}
			keys[u.Key] = k
		}
		if k.done || u.New == nil || k.cur == nil || !sameFile(*k.cur, *u.New) || s.intact(u.Key, *u.New) {
			k.done = true
			continue
		}
		if b != nil {
			s.opts.Logger.Warn("dirstore: the file of a Set in flight at the crash does not hold its value; the key keeps its previous one",
				"dir", s.dir, keyAttr(u.Key), "file", fileName(u.Key, *u.New))
		}
		switch {
		case b == nil: // only looking
		case u.Old != nil:
			b.Put(u.Key, *u.Old)
		default:
			b.Delete(u.Key)
			if err := s.dropRecency(b, u.Key); err != nil {
				return nil, err
			}
		}
		lost = append(lost, fileName(u.Key, *u.New))
		k.cur = u.Old
	}
	return lost, nil
}

// sameFile reports whether a and b name the same value file with the same
// contents.
func sameFile(a, b manifest.Entry) bool {
	return a.Version == b.Version && a.Legacy == b.Legacy && a.Size == b.Size && a.CRC == b.CRC
}

// intact reports whether key's file holds the value e describes.
func (s *Store) intact(key string, e manifest.Entry) bool {
	data, err := s.files.Read(fileName(key, e), e.Size, nil)
	return err == nil && crc32.Checksum(data, datadir.Castagnoli) == e.CRC
}

// checkReadOnlyRecovery lets a read-only Open of an uncleanly closed store
// go on only if nothing needs rolling back, and recounts its keys.
func (s *Store) checkReadOnlyRecovery() error {
	ckpt, err := s.metaUint(metaCkpt)
	if err != nil {
		return err
	}
	// Operations since the last checkpoint whose files all hold their
	// values need no rollback (a NoSync store that failed on a full disk
	// leaves these): the manifest shows them as they are. Durable Sets in
	// flight at a crash need nothing unless their files did not survive.
	var alone []manifest.Undo
	for u, err := range s.man.Undos(ckpt) {
		if err != nil {
			return s.metaErr(err)
		}
		if u.Alone {
			alone = append(alone, u)
			continue
		}
		if u.New != nil && !s.intact(u.Key, *u.New) {
			return fmt.Errorf("dirstore: open %s: was not closed cleanly and needs recovery; open it writable once: %w", s.dir, ErrReadOnly)
		}
	}
	lost, err := s.rollbackAlone(nil, alone)
	if err != nil {
		return err
	}
	if len(lost) > 0 {
		return fmt.Errorf("dirstore: open %s: was not closed cleanly and needs recovery; open it writable once: %w", s.dir, ErrReadOnly)
	}
	for ke, err := range s.man.Entries("") {
		if err != nil {
			return s.metaErr(err)
		}
		s.count.Add(1)
		s.bytes.Add(ke.Size)
	}
	return nil
}

// openReadOnlyZict refuses a read-only Open of a directory with no manifest.
func (s *Store) openReadOnlyZict() error {
	return fmt.Errorf("dirstore: open %s: no manifest (a zict directory is adopted by its first writable Open): %w",
		s.dir, fs.ErrNotExist)
}

// rollbackRecency adds to b the recency records that rolling back undos
// changes: a key that rollback brings back (an undone Delete) gets records
// of the current time, and a key it removes (an undone Set of a new key)
// loses its records.
func (s *Store) rollbackRecency(b *manifest.Batch, undos []manifest.Undo) error {
	// A key's state after rollback is the Old of its earliest undone
	// operation.
	final := map[string]bool{}
	for i := len(undos) - 1; i >= 0; i-- {
		final[undos[i].Key] = undos[i].Old != nil
	}
	now := s.rec.now()
	for key, exists := range final {
		t, ok, err := s.man.Recency(key)
		if err != nil {
			return s.metaErr(err)
		}
		switch {
		case exists && !ok:
			b.SetRecency(key, 0, false, now)
		case !exists && ok:
			b.DeleteRecency(key, t)
		}
	}
	return nil
}
