package dirstore_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/escape"
)

var (
	corruptTrials = flag.Int("corrupt.trials", 1000, "damaged value files in TestCorrupt")
	corruptSeed   = flag.Uint64("corrupt.seed", 0, "seed of TestCorrupt (0: a new one, logged)")
)

// corruption is one change made to a value's file behind the store's back.
type corruption struct {
	key     string
	kind    string // flip, truncate, zero
	what    string // for messages
	value   []byte // the value the store holds
	changed bool   // the file no longer holds value
	warm    bool   // the key was read through Streams before the damage
}

// corruptValue returns a value of 1 byte to 64 KiB; some of its 4 KiB
// blocks are zeros, so that a zeroed block sometimes changes nothing.
func corruptValue(rng *rand.Rand) []byte {
	n := 1 + rng.IntN(64<<10)
	if rng.IntN(4) == 0 {
		n = 1 + rng.IntN(300)
	}
	v := make([]byte, n)
	for i := range v {
		v[i] = byte(rng.Uint32())
	}
	for b := 0; b < n; b += 4096 {
		if rng.IntN(3) == 0 {
			clear(v[b:min(n, b+4096)])
		}
	}
	return v
}

// currentFile returns the path of key's value file in dir: the highest
// version of its name (older ones may not be removed yet).
func currentFile(t testing.TB, dir, key string) string {
	t.Helper()
	best, found := uint64(0), ""
	for _, name := range valueFiles(t, dir) {
		q, v, ok := escape.Parse(name)
		if ok && q == escape.Quote(key) && (found == "" || v > best) {
			best, found = v, name
		}
	}
	if found == "" {
		t.Fatalf("no value file for key %q in %s", key, dir)
	}
	return filepath.Join(dir, found)
}

// damage changes the file at path by kind, chosen by rng, and reports what
// it did and whether the file still holds value.
func damage(t testing.TB, rng *rand.Rand, path, kind string, value []byte) (what string, changed bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, value) {
		t.Fatalf("%s does not hold the value before the damage", path)
	}
	switch kind {
	case "flip":
		i, mask := rng.IntN(len(b)), byte(1+rng.IntN(255))
		b[i] ^= mask
		what = fmt.Sprintf("byte %d of %d xor %#x", i, len(value), mask)
	case "truncate":
		n := rng.IntN(len(b))
		b = b[:n]
		what = fmt.Sprintf("truncated from %d to %d bytes", len(value), n)
	case "zero":
		// A zeroed block, aligned to its size; past the end it extends the
		// file.
		size := []int{512, 4096}[rng.IntN(2)]
		off := size * rng.IntN((len(b)+size-1)/size+1)
		if end := off + size; end > len(b) {
			b = append(b, make([]byte, end-len(b))...)
		}
		clear(b[off : off+size])
		what = fmt.Sprintf("%d zeros at %d of %d bytes", size, off, len(value))
	default:
		panic(kind)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return what, !bytes.Equal(b, value)
}

// TestCorrupt damages value files of a real store behind its back, 1,000
// times (-corrupt.trials): a flipped byte, a truncation or a zeroed block
// (aligned, possibly past the end) of a random value of up to 64 KiB. For
// each, every read of the key must return an error matching ErrCorrupt, or
// the right value if the change missed the value's bytes, never other
// bytes: Get and View (without and, after a reopen, with Mmap) must say
// ErrCorrupt exactly when the file changed; a Stream from Store.Open, read
// whole by Read (io.ReadAll) and by one ReadAt, with no cache, a new cache
// and a cache that already holds the value, must end in ErrCorrupt or return
// the right bytes. Half of the keys were read through Streams before the
// damage, so that cached and already-verified files are covered. Store.Verify
// (what `dirstore verify` runs) must report exactly the changed files.
func TestCorrupt(t *testing.T) {
	seed := *corruptSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (rerun with -corrupt.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 5))
	const nkeys, batch = 64, 50
	dir := t.TempDir()
	// NoSync only makes the setup faster: the damage is done to files
	// that Sync made durable.
	opts := &dirstore.Options{NoSync: true}
	mopts := &dirstore.Options{NoSync: true, Mmap: true}
	s := openT(t, dir, opts)
	keys := make([]string, nkeys)
	values := map[string][]byte{}
	for i := range keys {
		keys[i] = fmt.Sprintf("c%02d", i)
		if i == 0 {
			keys[i] = "a/b c#%" // an escaped name
		}
		values[keys[i]] = corruptValue(rng)
		mustSet(t, s, keys[i], values[keys[i]])
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	// A cache that outlives the trials: warm keys are in it.
	warmCache := dirstore.NewCache(8 << 20)
	counts := map[string][2]int{} // kind -> changed, unchanged
	for done := 0; done < *corruptTrials; {
		n := min(batch, *corruptTrials-done)
		var cs []*corruption
		for _, i := range rng.Perm(nkeys)[:n] {
			c := &corruption{key: keys[i], kind: []string{"flip", "truncate", "zero"}[rng.IntN(3)], value: values[keys[i]], warm: rng.IntN(2) == 0}
			if c.warm {
				for _, o := range []*dirstore.StreamOptions{{Cache: warmCache}, nil} {
					if err := readStreamWhole(s, c.key, o, c.value, true); err != nil {
						t.Fatalf("before the damage: %v", err)
					}
				}
			}
			c.what, c.changed = damage(t, rng, currentFile(t, dir, c.key), c.kind, c.value)
			cs = append(cs, c)
			cnt := counts[c.kind]
			if c.changed {
				cnt[0]++
			} else {
				cnt[1]++
			}
			counts[c.kind] = cnt
		}
		checkCorrupt(t, s, cs, false, warmCache)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openT(t, dir, mopts)
		checkCorrupt(t, s, cs, true, warmCache)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		// Repair: new values for the damaged keys.
		s = openT(t, dir, opts)
		for _, c := range cs {
			values[c.key] = corruptValue(rng)
			mustSet(t, s, c.key, values[c.key])
		}
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
		done += n
	}
	t.Logf("%d trials (seed %d): changed/unchanged by kind %v", *corruptTrials, seed, counts)
}

// corruptErrors counts TestCorrupt's errors, to stop after a screenful.
var corruptErrors int

// checkCorrupt reads every damaged key of s in every way.
func checkCorrupt(t *testing.T, s *dirstore.Store, cs []*corruption, mmap bool, warmCache *dirstore.Cache) {
	t.Helper()
	damaged := map[string]*corruption{}
	for _, c := range cs {
		damaged[c.key] = c
		fail := func(how string, err error) {
			t.Helper()
			if corruptErrors++; corruptErrors > 20 {
				t.Fatalf("too many errors")
			}
			t.Errorf("%s(%q) with mmap=%t after %s %s (file changed: %t, read before: %t): %v",
				how, c.key, mmap, c.kind, c.what, c.changed, c.warm, err)
		}
		check := func(how string, got []byte, err error) {
			t.Helper()
			switch {
			case c.changed && !errors.Is(err, dirstore.ErrCorrupt):
				if err == nil && bytes.Equal(got, c.value) {
					fail(how, errors.New("returned the right value, though the file changed (want ErrCorrupt)"))
				} else if err == nil {
					fail(how, fmt.Errorf("returned %d wrong bytes", len(got)))
				} else {
					fail(how, fmt.Errorf("want ErrCorrupt, got %w", err))
				}
			case !c.changed && (err != nil || !bytes.Equal(got, c.value)):
				fail(how, fmt.Errorf("the change missed the value, want it, got %d bytes (right: %t), %w", len(got), bytes.Equal(got, c.value), err))
			}
		}
		got, err := s.Get(c.key)
		check("Get", got, err)
		err = s.View(c.key, func(v []byte) error {
			got = slices.Clone(v)
			return nil
		})
		if err != nil {
			got = nil
		}
		check("View", got, err)
		if ok, err := s.Has(c.key); !ok || err != nil {
			fail("Has", fmt.Errorf("= %t, %w", ok, err))
		}
		// Streams may serve the right bytes from a cache that holds them.
		for _, sc := range []struct {
			name string
			o    *dirstore.StreamOptions
		}{
			{"NoCache", &dirstore.StreamOptions{Cache: dirstore.NoCache}},
			{"new scan-resistant cache, 4 KiB chunks", &dirstore.StreamOptions{Cache: dirstore.NewScanResistantCache(1 << 20), ChunkSize: 4096}},
			{"warm cache", &dirstore.StreamOptions{Cache: warmCache}},
			{"warm cache, 1000-byte chunks", &dirstore.StreamOptions{Cache: warmCache, ChunkSize: 1000}},
			{"default cache", nil},
		} {
			if err := readStreamWhole(s, c.key, sc.o, c.value, !c.changed); err != nil {
				fail("Stream ("+sc.name+")", err)
			}
		}
	}
	// Verify reports exactly the changed files.
	reported := map[string]bool{}
	if err := s.Verify(func(key string, err error) bool {
		c := damaged[key]
		switch {
		case err == nil && c != nil && c.changed:
			t.Errorf("Verify: %q after %s %s: no error, want ErrCorrupt", key, c.kind, c.what)
		case err != nil && !errors.Is(err, dirstore.ErrCorrupt):
			t.Errorf("Verify: %q: %v, want ErrCorrupt", key, err)
		case err != nil && (c == nil || !c.changed):
			t.Errorf("Verify: %q: %v, but its file holds its value", key, err)
		}
		if err != nil {
			reported[key] = true
		}
		return true
	}); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := 0
	for _, c := range cs {
		if c.changed {
			want++
		}
	}
	if len(reported) != want {
		t.Errorf("Verify reported %d corrupt values, want %d", len(reported), want)
	}
}

// readStreamWhole reads key through a Stream from s.OpenStream(key, o),
// whole by Read and whole by one ReadAt. Each must give value, or end in an
// error matching ErrCorrupt (Open too), unless mustSucceed. Other bytes
// returned without an error are never acceptable.
func readStreamWhole(s *dirstore.Store, key string, o *dirstore.StreamOptions, value []byte, mustSucceed bool) error {
	const name = "OpenStream"
	st, err := s.OpenStream(key, o)
	if err != nil {
		if !mustSucceed && errors.Is(err, dirstore.ErrCorrupt) {
			return nil
		}
		return fmt.Errorf("OpenStream: %w", err)
	}
	defer st.Close()
	judge := func(how string, got []byte, err error) error {
		switch {
		case err == nil && bytes.Equal(got, value):
			return nil
		case err == nil:
			return fmt.Errorf("%s: %s returned %d bytes that are not the value (%d bytes) and no error", name, how, len(got), len(value))
		case !mustSucceed && errors.Is(err, dirstore.ErrCorrupt):
			return nil
		}
		return fmt.Errorf("%s: %s: %w", name, how, err)
	}
	got, err := io.ReadAll(st)
	if err := judge("io.ReadAll", got, err); err != nil {
		return err
	}
	p := make([]byte, len(value))
	n, err := st.ReadAt(p, 0)
	if err == io.EOF && n == len(p) {
		err = nil
	}
	return judge("ReadAt(whole)", p[:n], err)
}

// TestCorruptStreamAfterVerified is the minimal form of what TestCorrupt
// finds: once a Stream from Store.Open has read a value whole (verifying its
// checksum), later Streams of the same Store over the same file skip the
// check for as long as the file's rangecache.Ident lives (an open Stream or
// a cache entry holds it; otherwise until a garbage collection), so a file
// damaged in the meantime is read back as wrong bytes with a nil error, even
// with NoCache. Get, View and Verify do catch it.
func TestCorruptStreamAfterVerified(t *testing.T) {
	s := openT(t, t.TempDir(), nil)
	value := bytes.Repeat([]byte("0123456789abcdef"), 256)
	mustSet(t, s, "k", value)
	first, err := s.OpenStream("k", &dirstore.StreamOptions{Cache: dirstore.NoCache})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close() // holds the file's Ident, as a cache entry would
	if got, err := io.ReadAll(first); err != nil || !bytes.Equal(got, value) {
		t.Fatalf("first read: %d bytes, %v", len(got), err)
	}
	b, err := os.ReadFile(first.Name())
	if err != nil {
		t.Fatal(err)
	}
	b[100] ^= 1
	if err := os.WriteFile(first.Name(), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("k"); !errors.Is(err, dirstore.ErrCorrupt) {
		t.Fatalf("Get after the damage: %v, want ErrCorrupt", err)
	}
	second, err := s.OpenStream("k", &dirstore.StreamOptions{Cache: dirstore.NoCache})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	got, err := io.ReadAll(second)
	if !errors.Is(err, dirstore.ErrCorrupt) {
		t.Errorf("io.ReadAll of a new Stream after the damage: %d bytes (the damaged file: %t), %v; want ErrCorrupt",
			len(got), bytes.Equal(got, b), err)
	}
	p := make([]byte, len(value))
	if _, err := second.ReadAt(p, 0); !errors.Is(err, dirstore.ErrCorrupt) {
		t.Errorf("ReadAt(whole) of a new Stream after the damage: the damaged file: %t, %v; want ErrCorrupt", bytes.Equal(p, b), err)
	}
}

// TestCorruptCLI runs the dirstore tool's verify command on a store with
// damaged values: it must list each damaged key on stdout, and only those,
// and exit with status 3.
func TestCorruptCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the dirstore tool")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the tool with")
	}
	tool := filepath.Join(t.TempDir(), "dirstore")
	build := exec.Command(gobin, "build", "-o", tool, "./cmd/dirstore")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/dirstore: %v\n%s", err, out)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	s := openT(t, dir, nil)
	values := map[string][]byte{}
	for i := range 12 {
		k := fmt.Sprintf("v%02d", i)
		values[k] = corruptValue(rng)
		mustSet(t, s, k, values[k])
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i, kind := range []string{"flip", "truncate", "zero", "flip", "truncate"} {
		k := fmt.Sprintf("v%02d", 2*i+1)
		for {
			// A zeroed block may miss: damage until the file changed.
			if _, changed := damage(t, rng, currentFile(t, dir, k), kind, values[k]); changed {
				break
			}
		}
		want = append(want, k)
	}
	cmd := exec.Command(tool, "verify", dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("dirstore verify: %v, want exit status 3\nstderr:\n%s", err, stderr.Bytes())
	}
	got := strings.Fields(stdout.String())
	if !slices.Equal(got, want) {
		t.Errorf("dirstore verify listed %q, want %q\nstderr:\n%s", got, want, stderr.Bytes())
	}
	for _, k := range want {
		if !strings.Contains(stderr.String(), k) {
			t.Errorf("dirstore verify's messages do not name %q:\n%s", k, stderr.Bytes())
		}
	}
}

// TestRecoveryReportsDamagedFiles: an Open that recovers from a crash
// reports the keys whose files are missing or of the wrong length, and
// reading them gives ErrCorrupt.
func TestRecoveryReportsDamagedFiles(t *testing.T) {
	mem := vfs.NewCrashableMem()
	s := openT(t, "/s", &dirstore.Options{FS: mem})
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
	s = openT(t, "/s", &dirstore.Options{FS: crashed, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
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
	s := openT(t, "/s", opts)
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
	s = openT(t, "/s", opts)
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
