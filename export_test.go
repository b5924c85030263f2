package dirstore

import (
	"fmt"
	"time"
)

// MutNoRevert is the seeded bug TestDurableSetReverts must catch.
const MutNoRevert = mutNoRevert

// Mutations the crash tests must catch (see mutation.go).
var Mutations = map[string]int32{
	"no file fsync":               mutNoFileSync,
	"no directory fsync":          mutNoDirSync,
	"directory fsync not awaited": mutDirSyncNotAwaited,
	"manifest without sync":       mutNoManifestSync,
	"old file removed too early":  mutRemoveTooEarly,
	"batch rolled back in part":   mutSplitBatch,
	"durable Set in flight kept":  mutAloneIgnored,
}

// MutRemovePinned is the seeded bug TestStreamNameOutlivesValue must
// catch: a superseded file is removed while a Stream still pins it.
const MutRemovePinned = mutRemovePinned

// MutRecencyKept is the seeded bug TestDurableSetReverts must catch: a
// rolled-back Set of a new key leaves its recency records.
const MutRecencyKept = mutRecencyKept

// MutReserveKept is the seeded bug the full-disk tests must catch: the
// emergency reserve is never released.
const MutReserveKept = mutReserveKept

// MutReserveFixed is the seeded bug the full-disk tests with long keys must
// catch: the emergency reserve does not grow with the manifest.
const MutReserveFixed = mutReserveFixed

// MutReleaseOnce is the seeded bug the full-disk tests with long keys must
// catch: only the first write to meet a full disk retries.
const MutReleaseOnce = mutReleaseOnce

// EvictMutations are the seeded bugs the eviction tests must catch.
var EvictMutations = map[string]int32{
	"room checked, not reserved": mutNoReserve,
	"reads not noted":            mutReadsForgotten,
	"pins ignored":               mutPinsIgnored,
}

// ApplyBuffered writes what a NoSync store's write buffer holds to files
// and the manifest, without making it durable.
func (s *Store) ApplyBuffered() error { return s.applyBuffered() }

// HardenMutations are the seeded bugs that seeded_test.go checks their own
// tests catch (see mutation.go).
var HardenMutations = map[string]int32{
	"format check skipped":                 mutNoFormatCheck,
	"planted file taken for an I/O error":  mutPlantedIsIO,
	"no shared lock for ReadOnly":          mutNoSharedLock,
	"buffer callback panic not caught":     mutNoPanicGuard,
	"read-only FS not a permission error":  mutReadOnlyNotPermission,
	"read-only FS does not fail the store": mutReadOnlyNotFailed,
	"stream stat not checked for close":    mutStatUnchecked,
	"recency records not rebuilt":          mutRecencyMarkKept,
}

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

// SyncManifest makes the manifest's log durable and nothing else: the
// state a crash leaves when pebble wrote its log out but the value files
// of NoSync writes were not.
func (s *Store) SyncManifest() error { return s.man.Sync() }

// ListFSDir lists the keys under dir ("" or "a/b/") as Store.FS's ReadDir
// does, and returns how many keys it looked at.
func (s *Store) ListFSDir(dir string) (names []string, visited int, err error) {
	list, err := s.listFSDir(dir, &visited)
	for _, d := range list {
		names = append(names, d.Name())
	}
	return names, visited, err
}

// FormatVersion is the store format version this code writes (state.go).
const FormatVersion = formatVersion

// SetClock makes stores opened from now on read time from now; the
// returned function restores the real clock.
func SetClock(now func() time.Time) (restore func()) {
	clockFunc = now
	return func() { clockFunc = time.Now }
}

// FlushRecency writes the reads noted in memory to the manifest.
func (s *Store) FlushRecency() error { return s.flushRecency() }

// EvictIdle evicts the keys idle for longer than MaxIdle now.
func (s *Store) EvictIdle() (int, error) { return s.evictIdle() }

// AccessRecords lists the manifest's access-order index, oldest first, as
// "key@seconds".
func (s *Store) AccessRecords() []string {
	var out []string
	for a, err := range s.man.Accesses(0) {
		if err != nil {
			return append(out, err.Error())
		}
		t, _, _ := s.man.Recency(a.Key)
		out = append(out, fmt.Sprintf("%s@%d/%d", a.Key, a.Time/1e9%1000, t/1e9%1000))
	}
	return out
}

// Reserved returns the bytes of the budget that writes in progress hold
// (0 when none runs).
func (s *Store) Reserved() int64 { return s.used.Load() - s.bytes.Load() }

// SerialSyncs makes a store opened with o sync one thing at a time, as it
// does on btrfs.
func SerialSyncs(o *Options) *Options {
	o.serialSyncs = true
	return o
}

// Serial reports whether s syncs one thing at a time.
func (s *Store) Serial() bool { return s.serial }

// EntryCacheLen returns the number of entries in s's entry cache.
func EntryCacheLen(s *Store) int {
	if s.hot == nil {
		return 0
	}
	return s.hot.Len()
}
