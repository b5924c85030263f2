package dirstore_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dirstore/dirstore"
)

// crashConfigs are the crash models of TestCrash: both modes, 0, 10 and 50%
// of unsynced writes surviving, removals and renames reaching the disk
// early, and unsynced ranges coming back as garbage.
func crashConfigs() []crashConfig {
	var configs []crashConfig
	for _, nosync := range []bool{false, true} {
		for _, pct := range []int{0, 10, 50} {
			configs = append(configs, crashConfig{nosync: nosync, unsynced: pct})
		}
		configs = append(configs,
			crashConfig{nosync: nosync, unsynced: 50, early: true},
			crashConfig{nosync: nosync, unsynced: 100, torn: true})
	}
	return configs
}

func (c crashConfig) String() string {
	return fmt.Sprintf("nosync=%v,unsynced=%d%%,early=%v,torn=%v", c.nosync, c.unsynced, c.early, c.torn)
}

// TestCrashCreation crashes at every write operation from an empty file
// system through the first Open, a few Sets and Deletes and Close, and then
// at every write operation of the recovering Open of a sample of those
// crashed states (every 6th, a different sample each seed; every 30th under
// -race): every crashed directory opens, and holds the acknowledged
// operations (NoSync: a prefix of them).
func TestCrashCreation(t *testing.T) {
	for _, c := range crashConfigs() {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			seed := crashSeedFor(t)
			rng := rand.New(rand.NewPCG(seed, 1))
			ops := genWorkload(rng, 6, 3, 2<<10)
			models := []model{{}}
			for _, o := range ops {
				models = append(models, models[len(models)-1].with(o))
			}
			mem := vfs.NewCrashableMem()
			fsys, rec := crashFS(seed, c, mem)
			opts := &dirstore.Options{FS: fsys, NoSync: c.nosync, CheckpointInterval: time.Hour}
			rec.on.Store(true)
			s, err := dirstore.Open("/db", opts)
			if err != nil {
				t.Fatal(err)
			}
			for i, o := range ops {
				if err := o.apply(s); err != nil {
					t.Fatalf("op %d %s %q: %v", i, o.kind, o.key, err)
				}
				rec.acked.Store(int64(i + 1))
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			rec.on.Store(false)
			points := rec.take()
			if len(points) < 20 {
				t.Fatalf("only %d crash points", len(points))
			}
			// Recoveries are crashed at every write from every 6th crash
			// point (every 30th under -race), a different sample each seed.
			every := 6
			if underRace {
				every = 30
			}
			off := int(seed % uint64(every))
			recovered := 0
			for i, p := range points {
				if err := crashPointErr(p, ops, models, c.nosync, 0); err != nil {
					t.Fatalf("crash point %d of %d: %v", i, len(points), err)
				}
				// Crash the recovery of this crashed state too, at each of
				// its writes: whatever it leaves must open to a state the
				// crash itself allowed.
				if i%every != off {
					continue
				}
				n, err := crashRecovery(seed+uint64(i), c, p, ops, models)
				if err != nil {
					t.Fatalf("crash point %d of %d (%q), crashed again in its recovery: %v", i, len(points), p.what, err)
				}
				recovered += n
			}
			t.Logf("%d crash points, %d more in their recoveries", len(points), recovered)
		})
	}
}

// crashRecovery opens the crashed file system of p under a recorder, so
// the Open's recovery is crashed at each of its write operations, and
// checks each of those states, and p's once the Open is done.
func crashRecovery(seed uint64, c crashConfig, p crashPoint, ops []workOp, models []model) (int, error) {
	// The crashed file system is the one p holds; crash clones of it are
	// crashable in turn.
	fsys, rec := crashFS(seed, c, p.fs)
	rec.acked.Store(int64(p.acked))
	rec.on.Store(true)
	s, err := dirstore.Open("/db", &dirstore.Options{FS: fsys, NoSync: c.nosync})
	if err != nil {
		return 0, fmt.Errorf("open: %w", err)
	}
	if err := s.Close(); err != nil {
		return 0, fmt.Errorf("close: %w", err)
	}
	rec.on.Store(false)
	points := rec.take()
	for _, q := range points {
		q.acked, q.inflight = p.acked, p.inflight
		q.what = p.what + ", then " + q.what
		if err := crashPointErr(q, ops, models, c.nosync, 0); err != nil {
			return 0, err
		}
	}
	return len(points), nil
}
