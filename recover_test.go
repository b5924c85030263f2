package dirstore_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

// TestRecoveryReportsDamagedFiles: an Open that recovers from a crash
// reports the keys whose files are missing or of the wrong length, and
// reading them gives ErrCorrupt.
func TestRecoveryReportsDamagedFiles(t *testing.T) {
	mem := vfs.NewCrashableMem()
	s := storetest.Open(t, "/s", &dirstore.Options{FS: mem})
	for _, k := range []string{"gone", "short", "fine"} {
		mustSet(t, s, k, []byte("value of "+k))
	}
	crashed := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	s.Close()
	names, err := crashed.List("/s")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		switch {
		case strings.HasPrefix(name, "gone#"):
			if err := crashed.Remove("/s/" + name); err != nil {
				t.Fatal(err)
			}
		case strings.HasPrefix(name, "short#"):
			f, err := crashed.Create("/s/"+name, vfs.WriteCategoryUnspecified)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("value"))
			f.Close()
		}
	}
	var logs []string
	s = storetest.Open(t, "/s", &dirstore.Options{FS: crashed, Logf: func(f string, args ...any) { logs = append(logs, fmt.Sprintf(f, args...)) }}, storetest.LeftDamaged("files lost in the crash stay lost"))
	defer s.Close()
	report := strings.Join(logs, "\n")
	if !strings.Contains(report, `key "gone" is missing`) || !strings.Contains(report, `key "short" has 5 bytes, not 14`) || strings.Contains(report, `"fine"`) {
		t.Fatalf("recovery reported:\n%s", report)
	}
	for _, k := range []string{"gone", "short"} {
		if _, err := s.Get(k); !errors.Is(err, dirstore.ErrCorrupt) {
			t.Fatalf("Get(%q) = %v, want ErrCorrupt", k, err)
		}
	}
	if got := mustGet(t, s, "fine"); string(got) != "value of fine" {
		t.Fatalf("Get(fine) = %q", got)
	}
}

// A recovering Open of a NoSync store compares the bytes of every file
// written since the last checkpoint with its checksum, names the first
// that does not match, and rolls back from its batch on.
func TestRecoveryReportsLostNoSyncValues(t *testing.T) {
	mem := vfs.NewCrashableMem()
	opts := &dirstore.Options{FS: mem, NoSync: true, CheckpointInterval: time.Hour}
	s := storetest.Open(t, "/s", opts)
	mustSet(t, s, "a", []byte("value of a"))
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "b", []byte("value of b"))
	mustSet(t, s, "c", []byte("value of c"))
	if err := s.ApplyBuffered(); err != nil {
		t.Fatal(err)
	}
	// Pebble writes NoSync commits out a 32 KiB block at a time: later
	// operations push b's and c's out to the log.
	for i := range 500 {
		mustSet(t, s, fmt.Sprintf("pad/%d/%s", i, strings.Repeat("x", 100)), nil)
	}
	if err := s.ApplyBuffered(); err != nil {
		t.Fatal(err)
	}
	crashed := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(1, 2))})
	s.Close()
	names, err := crashed.List("/s")
	if err != nil {
		t.Fatal(err)
	}
	damaged := ""
	for _, name := range names {
		if strings.HasPrefix(name, "b#") {
			// The right length, the wrong bytes.
			f, err := crashed.Create("/s/"+name, vfs.WriteCategoryUnspecified)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("VALUE OF B"))
			f.Close()
			damaged = name
		}
	}
	if damaged == "" {
		t.Fatalf("no file of b among %q", names)
	}
	var logs []string
	opts.FS = crashed
	opts.Logf = func(f string, args ...any) { logs = append(logs, fmt.Sprintf(f, args...)) }
	s = storetest.Open(t, "/s", opts)
	report := strings.Join(logs, "\n")
	// The padding's batch may or may not have reached the log.
	if !strings.Contains(report, fmt.Sprintf(`the file %s of key "b" does not hold the value written`, damaged)) ||
		!strings.Contains(report, "rolled back the last 2 unsynced operations") &&
			!strings.Contains(report, "rolled back the last 502 unsynced operations") {
		t.Fatalf("recovery reported:\n%s", report)
	}
	// b and c were applied in one batch: both are rolled back.
	if got := keys(t, s); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("after recovery the keys are %q", got)
	}
}
