package dirstore_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

// TestRecoveryStories runs the recovery scenarios in testdata/recover: the
// tie-breaks of a first Open adopting zict's files (adopt, recover.go) and
// each kind of NoSync rollback after a crash (rollback), told as stories
// in pebble's datadriven format. Rewrite the expected outputs with
// -rewrite after a deliberate change, and read the diff.
//
// The store lives in /s on pebble's crashable MemFS. Commands:
//
//	plant                 files to put in /s before the first Open; input
//	                      lines are "name: content" ("name/" for a directory)
//	open [nosync] [buffered] [bounded]
//	                      Open (NoSync: no background checkpoint; buffered:
//	                      with the write buffer, else every write goes to its
//	                      file at once; bounded: with a MaxBytes that evicts
//	                      nothing, so that it keeps recency records); prints
//	                      what Open logged and the store's contents
//	set k=v ...           Set each in order
//	delete k ...          Delete each in order
//	apply                 write out the write buffer, in one batch, without
//	                      making it durable
//	sync                  Store.Sync: a checkpoint
//	crash [nolog] [lose=k,...] [garble=k,...]
//	                      a power cut after the manifest's log reached the
//	                      disk (nolog: before), keeping every other
//	                      unsynced write, then k's newest file removed
//	                      (lose) or its bytes changed (garble), as a crash
//	                      that lost them would
//	ls                    the directory's entries
//	dump                  the store's contents
//	check                 storetest.Check: Verify clean, Close nil, no orphan
func TestRecoveryStories(t *testing.T) {
	datadriven.Walk(t, "testdata/recover", func(t *testing.T, path string) {
		// Each subtest is a story of its own, on a file system of its own.
		stories := map[string]*recoveryStory{}
		defer func() {
			for _, r := range stories {
				r.closeAll()
			}
		}()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			r := stories[t.Name()]
			if r == nil {
				r = &recoveryStory{fs: vfs.NewCrashableMem()}
				stories[t.Name()] = r
			}
			return r.run(t, d)
		})
	})
}

type recoveryStory struct {
	fs     *vfs.MemFS
	s      *dirstore.Store
	logs   []string
	stores []*dirstore.Store // every store opened, closed at the end
}

const storyDir = "/s"

func (r *recoveryStory) closeAll() {
	for _, s := range r.stores {
		s.Close()
	}
}

func (r *recoveryStory) run(t *testing.T, d *datadriven.TestData) string {
	switch d.Cmd {
	case "plant":
		if err := r.fs.MkdirAll(storyDir, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
			name, content, _ := strings.Cut(line, ": ")
			if dir, ok := strings.CutSuffix(name, "/"); ok {
				if err := r.fs.MkdirAll(storyDir+"/"+dir, 0o700); err != nil {
					t.Fatal(err)
				}
				continue
			}
			storetest.WriteFile(t, r.fs, storyDir+"/"+name, []byte(content))
		}
		return r.ls(t)
	case "open":
		opts := &dirstore.Options{FS: r.fs, Logger: slog.New(storyLog{r})}
		if d.HasArg("bounded") {
			opts.MaxBytes = 1 << 30 // keeps recency records
		}
		if d.HasArg("nosync") {
			opts.NoSync = true
			opts.CheckpointInterval = time.Hour // only sync checkpoints
			opts.WriteBuffer = -1
			if d.HasArg("buffered") {
				opts.WriteBuffer = 1 << 20
			}
		}
		r.logs = nil
		s, err := dirstore.Open(storyDir, opts)
		if err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
		r.s = s
		r.stores = append(r.stores, s)
		var b strings.Builder
		for _, l := range r.logs {
			fmt.Fprintf(&b, "log: %s\n", l)
		}
		return b.String() + r.dump(t)
	case "set", "delete":
		var b strings.Builder
		for _, a := range d.CmdArgs {
			var err error
			if d.Cmd == "set" {
				err = r.s.Set(a.Key, []byte(a.FirstVal(t)))
			} else {
				err = r.s.Delete(a.Key)
			}
			if err != nil {
				fmt.Fprintf(&b, "%s %s: %v\n", d.Cmd, a.Key, err)
			}
		}
		return b.String()
	case "apply":
		if err := r.s.ApplyBuffered(); err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
		return ""
	case "sync":
		if err := r.s.Sync(); err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
		return ""
	case "crash":
		if !d.HasArg("nolog") {
			if err := r.s.SyncManifest(); err != nil {
				t.Fatal(err)
			}
		}
		clone := r.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(1, 1))})
		var b strings.Builder
		for _, a := range d.CmdArgs {
			for _, key := range a.Vals {
				name := newestFile(t, clone, storyDir, key)
				switch a.Key {
				case "lose":
					if err := clone.Remove(storyDir + "/" + name); err != nil {
						t.Fatal(err)
					}
					fmt.Fprintf(&b, "lost %s\n", name)
				case "garble":
					data := storetest.ReadFile(t, clone, storyDir+"/"+name)
					for i := range data {
						data[i] ^= 0xff
					}
					storetest.WriteFile(t, clone, storyDir+"/"+name, data)
					fmt.Fprintf(&b, "garbled %s\n", name)
				case "nolog":
				default:
					t.Fatalf("crash: unknown argument %s", a.Key)
				}
			}
		}
		// The crashed process's store is gone with it; the story goes on
		// in what the crash left.
		r.fs, r.s = clone, nil
		return b.String()
	case "ls":
		return r.ls(t)
	case "dump":
		return r.dump(t)
	case "recency":
		// The keys of the access-order index, oldest first.
		var b strings.Builder
		for _, rec := range r.s.AccessRecords() {
			k, _, _ := strings.Cut(rec, "@")
			fmt.Fprintln(&b, k)
		}
		if b.Len() == 0 {
			return "(none)\n"
		}
		return b.String()
	case "check":
		storetest.Check(t, r.s, r.fs)
		return "ok\n"
	default:
		t.Fatalf("unknown command %s", d.Cmd)
		return ""
	}
}

func (r *recoveryStory) ls(t *testing.T) string {
	t.Helper()
	names, err := r.fs.List(storyDir)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, name := range names {
		if name == ".dirstore" {
			continue
		}
		if info, err := r.fs.Stat(storyDir + "/" + name); err == nil && info.IsDir() {
			name += "/"
		}
		fmt.Fprintln(&b, name)
	}
	return b.String()
}

func (r *recoveryStory) dump(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, k := range keys(t, r.s) {
		fmt.Fprintf(&b, "%s=%s\n", k, mustGet(t, r.s, k))
	}
	if b.Len() == 0 {
		return "(empty)\n"
	}
	return b.String()
}

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
	var logs strings.Builder
	s = storetest.Open(t, "/s", &dirstore.Options{FS: crashed, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, storetest.LeftDamaged("files lost in the crash stay lost"))
	defer s.Close()
	report := logs.String()
	if !strings.Contains(report, `msg="dirstore: the file of a key is missing" dir=/s key=gone`) ||
		!strings.Contains(report, `msg="dirstore: the file of a key has the wrong length" dir=/s key=short`) ||
		!strings.Contains(report, `size=5 want=14`) || strings.Contains(report, `key=fine`) {
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
	var logs strings.Builder
	opts.FS = crashed
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s = storetest.Open(t, "/s", opts)
	report := logs.String()
	// The padding's batch may or may not have reached the log.
	if !strings.Contains(report, fmt.Sprintf(`does not hold the value written (lost in the crash)" dir=/s key=b file=%s`, damaged)) ||
		!strings.Contains(report, `msg="dirstore: rolled back unsynced operations" dir=/s count=2`) &&
			!strings.Contains(report, `msg="dirstore: rolled back unsynced operations" dir=/s count=502`) {
		t.Fatalf("recovery reported:\n%s", report)
	}
	// b and c were applied in one batch: both are rolled back.
	if got := keys(t, s); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("after recovery the keys are %q", got)
	}
}

// storyLog is a slog.Handler that adds each record, as "message key=value
// ...", to a story's log.
type storyLog struct{ r *recoveryStory }

func (h storyLog) Enabled(context.Context, slog.Level) bool { return true }
func (h storyLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h storyLog) WithGroup(string) slog.Handler            { return h }
func (h storyLog) Handle(_ context.Context, rec slog.Record) error {
	line := rec.Message
	rec.Attrs(func(a slog.Attr) bool {
		line += " " + a.String()
		return true
	})
	h.r.logs = append(h.r.logs, line)
	return nil
}
