package dirstore_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/escape"
)

var (
	killCount = flag.Int("kills", 300, "SIGKILLs of a writer process in each durability mode of TestKill")
	killSeed  = flag.Uint64("kill.seed", 0, "seed of TestKill (0: a new one, logged)")
)

// killKeys are the keys the killed writers use; hostile names ride along.
var killKeys = []string{"", "a/b c#%", "..", "k03", "k04", "k05", "k06", "k07",
	"k08", "k09", "k10", "k11", "k12", "k13", "k14", "k15"}

// killMaxValue bounds the values' length: large enough that a write takes
// several system calls, so that kills land inside them.
const killMaxValue = 64 << 10

// idValue returns the value written by the operation with the given id: the
// id, then bytes derived from it, of a length derived from it (up to max
// bytes more). Distinct ids give distinct values, and a reader can check a
// value whole and tell which write it came from (see valueID).
func idValue(id uint64, max int) []byte {
	r := rand.New(rand.NewPCG(id, 0x9e3779b97f4a7c15))
	n := r.IntN(max + 1)
	if r.IntN(8) == 0 {
		n = r.IntN(64) // many small values too
	}
	v := make([]byte, 8+n)
	binary.LittleEndian.PutUint64(v, id)
	for i := 8; i < len(v); i++ {
		v[i] = byte(r.Uint32())
	}
	return v
}

// valueID returns the id of a value made by idValue(id, max), or false if v
// is no such value (torn, foreign, or of another length).
func valueID(v []byte, max int) (uint64, bool) {
	if len(v) < 8 {
		return 0, false
	}
	id := binary.LittleEndian.Uint64(v)
	return id, id != 0 && bytes.Equal(v, idValue(id, max))
}

const killChildEnv = "DIRSTORE_KILL_CHILD"

// TestKill runs a writer process that makes acknowledged Sets and Deletes on
// a real directory and kills it with SIGKILL at a random moment, again and
// again. The writer reports each operation to the parent over a pipe before
// it starts ("B") and after it returned ("A"). After each kill the parent
// copies the directory as the kill left it, opens the copy (recovery) and
// checks that every key holds the value of its last acknowledged operation,
// or of the one operation on it that was in flight; that no value is torn;
// that Keys, Len and Verify agree; and that after Close no file is left
// over. The original directory is recovered by the next writer, which may
// itself be killed during recovery (one kill in eight comes 0-20 ms after
// the writer starts; the others 5-50 ms after its store is open). Writers
// run one or four goroutines, each on its own keys.
//
// -kills=N kills per mode (default 300); -kill.seed replays the writers'
// operations and the delays, though not where the kills land.
//
// In sync mode every acknowledged operation must survive. In NoSync mode the
// store must hold a prefix of the acknowledged operations (the documented
// promise, see checkKillPrefix; pebble keeps NoSync commits in its log
// writer's current block until it fills or a sync, so a process crash may
// lose the last ones); how many were lost is logged.
func TestKill(t *testing.T) {
	if os.Getenv(killChildEnv) != "" {
		killChild()
		return
	}
	if *killCount <= 0 {
		t.Skip("-kills=0")
	}
	seed := *killSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (rerun with -kill.seed=%d)", seed, seed)
	for _, nosync := range []bool{false, true} {
		t.Run(fmt.Sprintf("nosync=%t", nosync), func(t *testing.T) {
			t.Parallel()
			runKills(t, seed, nosync, *killCount)
		})
	}
}

// killRec is what the writer reported about one operation.
type killRec struct {
	seq    uint64
	kind   string // set, setbuffers, setfrom, delete
	key    int    // index in killKeys
	acked  bool
	result string // ok, notfound, or an error
	began  int    // index of the "B" report among all reports
	ended  int    // index of the "A" report, if acked
}

// killChildView checks what the writer saw against the state it started
// from: a Delete found the key if and only if it was there.
func killChildView(recs []killRec, start []uint64) error {
	state := slices.Clone(start)
	for _, r := range recs {
		switch {
		case !r.acked:
		case r.result == "ok" && r.kind == "delete":
			if state[r.key] == 0 {
				return fmt.Errorf("Delete(%q) succeeded, but the key was absent", killKeys[r.key])
			}
			state[r.key] = 0
		case r.result == "ok":
			state[r.key] = r.seq
		case r.result == "notfound" && r.kind == "delete":
			if state[r.key] != 0 {
				return fmt.Errorf("Delete(%q) = not found, but it holds the value of operation %#x", killKeys[r.key], state[r.key])
			}
		default:
			return fmt.Errorf("operation %#x %s(%q) failed: %s", r.seq, r.kind, killKeys[r.key], r.result)
		}
	}
	return nil
}

// killPositions returns, per key, the states its operations in recs went
// through (states[0] is the start) and, per record, its position in them.
func killPositions(recs []killRec, start []uint64) (states [][]uint64, pos []int) {
	states = make([][]uint64, len(start))
	for k := range start {
		states[k] = []uint64{start[k]}
	}
	pos = make([]int, len(recs))
	for i, r := range recs {
		st := states[r.key]
		next := st[len(st)-1]
		switch {
		case r.kind == "delete":
			next = 0
		case !r.acked || r.result == "ok":
			next = r.seq
		}
		states[r.key] = append(st, next)
		pos[i] = len(states[r.key]) - 1
	}
	return states, pos
}

// checkKillAcked is the check of the sync mode: each key holds the value of
// its last acknowledged operation, or of the one in flight on it.
func checkKillAcked(recs []killRec, start, got []uint64) (applied, lost int, err error) {
	states, _ := killPositions(recs, start)
	pending := map[int]killRec{}
	for _, r := range recs {
		if !r.acked {
			pending[r.key] = r
		}
	}
	for k := range start {
		st := states[k]
		acked := st[len(st)-1]
		p, inflight := pending[k]
		if inflight {
			acked = st[len(st)-2]
		}
		switch {
		case got[k] == acked:
			if inflight && got[k] != st[len(st)-1] {
				lost++
			}
		case inflight && got[k] == st[len(st)-1]:
			applied++
		default:
			inf := "no operation was in flight on it"
			if inflight {
				inf = fmt.Sprintf("operation %#x %s was in flight on it", p.seq, p.kind)
			}
			return applied, lost, fmt.Errorf("key %q is %s, want %s (acknowledged; %s)", killKeys[k], describeID(got[k]), describeID(acked), inf)
		}
	}
	return applied, lost, nil
}

// checkKillPrefix is the check of the NoSync mode, whose documented promise
// is a prefix of the acknowledged operations: each key holds the value of
// one of its states, and no operation acknowledged before another one began
// was lost while the later one survived. It also counts the acknowledged
// operations that were lost, which the strict test forbids.
func checkKillPrefix(recs []killRec, start, got []uint64) (applied, lost, lostAcked int, err error) {
	states, pos := killPositions(recs, start)
	// The positions each key's recovered state may stand for.
	minPos, maxPos := make([]int, len(start)), make([]int, len(start))
	for k := range start {
		minPos[k], maxPos[k] = -1, -1
		for j, v := range states[k] {
			if v == got[k] {
				if minPos[k] < 0 {
					minPos[k] = j
				}
				maxPos[k] = j
			}
		}
		if minPos[k] < 0 {
			return 0, 0, 0, fmt.Errorf("key %q is %s, which none of its operations left", killKeys[k], describeID(got[k]))
		}
	}
	survived := func(i int) bool { return pos[i] <= minPos[recs[i].key] } // surely
	mayHave := func(i int) bool { return pos[i] <= maxPos[recs[i].key] }
	for x, rx := range recs {
		if !rx.acked {
			if mayHave(x) {
				applied++
			} else {
				lost++
			}
			continue
		}
		if !mayHave(x) {
			lostAcked++
		}
		for y, ry := range recs {
			if rx.ended < ry.began && survived(y) && !mayHave(x) {
				return applied, lost, lostAcked, fmt.Errorf("operation %#x %s(%q), acknowledged before operation %#x %s(%q) began, was lost, but the later one survived (not a prefix)",
					rx.seq, rx.kind, killKeys[rx.key], ry.seq, ry.kind, killKeys[ry.key])
			}
		}
	}
	return applied, lost, lostAcked, nil
}

// TestKillChecks feeds the kill test's checks synthetic reports, so that
// they are known to catch what they should.
func TestKillChecks(t *testing.T) {
	n := len(killKeys)
	state := func(kv ...uint64) []uint64 {
		s := make([]uint64, n)
		for i := 0; i < len(kv); i += 2 {
			s[kv[i]] = kv[i+1]
		}
		return s
	}
	set := func(seq uint64, key int, began, ended int) killRec {
		return killRec{seq: seq, kind: "set", key: key, acked: ended >= 0, result: "ok", began: began, ended: ended}
	}
	del := func(seq uint64, key int, began, ended int) killRec {
		return killRec{seq: seq, kind: "delete", key: key, acked: ended >= 0, result: "ok", began: began, ended: ended}
	}
	for _, c := range []struct {
		name       string
		start      []uint64
		recs       []killRec
		got        []uint64
		sync, pref bool // want the sync check, the prefix check to pass
	}{
		{"all kept", state(), []killRec{set(1, 0, 0, 1), set(2, 1, 2, 3)}, state(0, 1, 1, 2), true, true},
		{"in flight applied", state(), []killRec{set(1, 0, 0, 1), set(2, 0, 2, -1)}, state(0, 2), true, true},
		{"in flight not applied", state(), []killRec{set(1, 0, 0, 1), set(2, 0, 2, -1)}, state(0, 1), true, true},
		{"acknowledged Set lost", state(), []killRec{set(1, 0, 0, 1)}, state(), false, true},
		{"acknowledged Delete undone", state(0, 7), []killRec{del(1, 0, 0, 1)}, state(0, 7), false, true},
		{"a value never written", state(), []killRec{set(1, 0, 0, 1)}, state(0, 9), false, false},
		{"not a prefix", state(), []killRec{set(1, 0, 0, 1), set(2, 1, 2, 3)}, state(1, 2), false, false},
		{"a prefix", state(), []killRec{set(1, 0, 0, 1), set(2, 1, 2, 3)}, state(0, 1), false, true},
		{"concurrent, either order", state(), []killRec{set(1, 0, 0, 2), set(2, 1, 1, 3)}, state(1, 2), false, true},
		{"Delete lost, later Set kept", state(0, 7), []killRec{del(1, 0, 0, 1), set(2, 1, 2, 3)}, state(0, 7, 1, 2), false, false},
	} {
		_, _, err := checkKillAcked(c.recs, c.start, c.got)
		if (err == nil) != c.sync {
			t.Errorf("%s: checkKillAcked = %v, want pass: %t", c.name, err, c.sync)
		}
		_, _, _, err = checkKillPrefix(c.recs, c.start, c.got)
		if (err == nil) != c.pref {
			t.Errorf("%s: checkKillPrefix = %v, want pass: %t", c.name, err, c.pref)
		}
	}
}

func describeID(id uint64) string {
	if id == 0 {
		return "absent"
	}
	return fmt.Sprintf("the value of operation %#x", id)
}

func runKills(t *testing.T, seed uint64, nosync bool, n int) {
	mode := uint64(0)
	if nosync {
		mode = 1
	}
	rng := rand.New(rand.NewPCG(seed, mode))
	dir := filepath.Join(t.TempDir(), "store")
	scratch := shmTempDir(t)
	state := make([]uint64, len(killKeys)) // value id per key, 0: absent
	start := time.Now()
	var ops, inflightApplied, inflightLost, ackedLost, early int
	for i := range n {
		workers := 1
		if rng.IntN(2) == 0 {
			workers = 4
		}
		var delay time.Duration
		waitReady := rng.IntN(8) != 0
		if waitReady {
			delay = time.Duration(5+rng.IntN(46)) * time.Millisecond
		} else {
			// Early: during Open and its recovery, or just after.
			delay = time.Duration(rng.IntN(20000)) * time.Microsecond
			early++
		}
		first := uint64(i+1) << 32
		recs := runKillChild(t, dir, nosync, rng.Uint64(), first, workers, waitReady, delay)
		ops += len(recs)

		if err := killChildView(recs, state); err != nil {
			t.Fatalf("kill %d (seed %d, nosync=%t): %v", i, seed, nosync, err)
		}
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) && len(recs) == 0 {
			continue // killed before it made the directory
		}
		copyTree(t, dir, filepath.Join(scratch, "c"))
		what := fmt.Sprintf("kill %d (seed %d, nosync=%t, %d workers, killed %v after %s)",
			i, seed, nosync, workers, delay, map[bool]string{true: "ready", false: "start"}[waitReady])
		got := checkKilledStore(t, what, filepath.Join(scratch, "c"), nosync)
		var err error
		var applied, lost, lostAcked int
		if nosync {
			applied, lost, lostAcked, err = checkKillPrefix(recs, state, got)
		} else {
			applied, lost, err = checkKillAcked(recs, state, got)
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		inflightApplied += applied
		inflightLost += lost
		ackedLost += lostAcked
		copy(state, got)
		if err := os.RemoveAll(filepath.Join(scratch, "c")); err != nil {
			t.Fatal(err)
		}
	}
	// Last, the original directory, recovered by the parent itself.
	got := checkKilledStore(t, "final reopen", dir, nosync)
	if !slices.Equal(got, state) {
		t.Fatalf("final reopen: got %x, want %x", got, state)
	}
	t.Logf("%d kills (%d during or just after Open) in %v: %d operations reported, %d in-flight operations applied, %d not; %d acknowledged operations lost",
		n, early, time.Since(start).Round(time.Millisecond), ops, inflightApplied, inflightLost, ackedLost)
	if ops < n {
		t.Fatalf("only %d operations in %d runs: the writers barely ran", ops, n)
	}
}

// checkKilledStore opens dir (recovering it), checks it and returns the id
// of each key's value (0: absent).
func checkKilledStore(t *testing.T, what, dir string, nosync bool) []uint64 {
	t.Helper()
	var logs strings.Builder // the handler serializes its writes
	s, err := dirstore.Open(dir, &dirstore.Options{NoSync: nosync, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("%s: Open: %v", what, err)
	}
	defer s.Close()
	got := make([]uint64, len(killKeys))
	present := 0
	for k, key := range killKeys {
		v, err := s.Get(key)
		if errors.Is(err, dirstore.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("%s: Get(%q): %v (recovery said %q)", what, key, err, logs.String())
		}
		id, ok := valueID(v, killMaxValue)
		if !ok {
			t.Fatalf("%s: Get(%q) returned %d bytes that no operation wrote (torn)", what, key, len(v))
		}
		got[k] = id
		present++
	}
	var listed []string
	for k, err := range s.Keys() {
		if err != nil {
			t.Fatalf("%s: Keys: %v", what, err)
		}
		listed = append(listed, k)
	}
	var want []string
	for k, key := range killKeys {
		if got[k] != 0 {
			want = append(want, key)
		}
	}
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Fatalf("%s: Keys = %q, want %q", what, listed, want)
	}
	if s.Len() != present {
		t.Fatalf("%s: Len = %d, want %d", what, s.Len(), present)
	}
	if err := s.Verify(func(key string, err error) bool {
		if err != nil {
			t.Errorf("%s: Verify: %v", what, err)
		}
		return true
	}); err != nil {
		t.Fatalf("%s: Verify: %v", what, err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("%s: Close: %v", what, err)
	}
	// No orphan: after Close every value file is a key's.
	files := 0
	for _, name := range valueFiles(t, dir) {
		if _, _, ok := escape.Parse(name); ok {
			files++
		}
	}
	if files != present {
		t.Fatalf("%s: %d value files for %d keys after Close: %q", what, files, present, valueFiles(t, dir))
	}
	return got
}

// runKillChild starts a writer on dir, kills it after delay (from its
// report that the store is open, if waitReady, else from its start) and
// returns what it reported.
func runKillChild(t *testing.T, dir string, nosync bool, seed, first uint64, workers int, waitReady bool, delay time.Duration) []killRec {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		killChildEnv+"="+dir,
		"DIRSTORE_KILL_NOSYNC="+strconv.FormatBool(nosync),
		"DIRSTORE_KILL_SEED="+strconv.FormatUint(seed, 10),
		"DIRSTORE_KILL_FIRST="+strconv.FormatUint(first, 10),
		"DIRSTORE_KILL_WORKERS="+strconv.Itoa(workers),
		"GORACE=atexit_sleep_ms=0")
	cmd.ExtraFiles = []*os.File{w}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	lines := make(chan []string, 1)
	ready := make(chan struct{})
	go func() {
		var out []string
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if sc.Text() == "R" {
				close(ready)
				continue
			}
			out = append(out, sc.Text())
		}
		lines <- out
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if waitReady {
		select {
		case <-ready:
		case err := <-exited:
			t.Fatalf("the writer exited before it was ready: %v\n%s", err, stderr.Bytes())
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			<-exited
			t.Fatalf("the writer was not ready after a minute\n%s", stderr.Bytes())
		}
	}
	select {
	case err := <-exited:
		t.Fatalf("the writer exited by itself: %v\n%s", err, stderr.Bytes())
	case <-time.After(delay):
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = <-exited
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the writer ended with %v, not by SIGKILL\n%s", err, stderr.Bytes())
	}
	var recs []killRec
	index := map[uint64]int{}
	for n, line := range <-lines {
		f := strings.Fields(line)
		switch {
		case len(f) == 4 && f[0] == "B":
			seq, _ := strconv.ParseUint(f[1], 16, 64)
			key, _ := strconv.Atoi(f[3])
			index[seq] = len(recs)
			recs = append(recs, killRec{seq: seq, kind: f[2], key: key, began: n})
		case len(f) >= 3 && f[0] == "A":
			seq, _ := strconv.ParseUint(f[1], 16, 64)
			i, ok := index[seq]
			if !ok {
				t.Fatalf("the writer acknowledged an operation it never began: %q", line)
			}
			recs[i].acked, recs[i].result, recs[i].ended = true, strings.Join(f[2:], " "), n
		default:
			t.Fatalf("the writer said %q", line)
		}
	}
	// Per key, the operations are sequential: at most the last one of
	// each key may be unacknowledged.
	last := map[int]int{}
	for i, r := range recs {
		if j, ok := last[r.key]; ok && !recs[j].acked {
			t.Fatalf("operations %#x and %#x on key %q overlap", recs[j].seq, r.seq, killKeys[r.key])
		}
		last[r.key] = i
	}
	return recs
}

// killChild is the writer: it opens the store, says "R", then runs workers
// that each own a share of the keys and do operations on them until the
// process is killed, reporting each one on descriptor 3 before and after.
// Each report is one write of less than PIPE_BUF bytes, so reports are never
// interleaved, and they outlive the process in the pipe.
func killChild() {
	report := os.NewFile(3, "report")
	say := func(format string, args ...any) {
		if _, err := report.Write([]byte(fmt.Sprintf(format, args...))); err != nil {
			os.Exit(4)
		}
	}
	dir := os.Getenv(killChildEnv)
	nosync, _ := strconv.ParseBool(os.Getenv("DIRSTORE_KILL_NOSYNC"))
	seed, _ := strconv.ParseUint(os.Getenv("DIRSTORE_KILL_SEED"), 10, 64)
	first, _ := strconv.ParseUint(os.Getenv("DIRSTORE_KILL_FIRST"), 10, 64)
	workers, _ := strconv.Atoi(os.Getenv("DIRSTORE_KILL_WORKERS"))
	s, err := dirstore.Open(dir, &dirstore.Options{NoSync: nosync, CheckpointInterval: 5 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, "writer:", err)
		os.Exit(2)
	}
	say("R\n")
	for w := range workers {
		go func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			var mine []int
			for k := range killKeys {
				if k%workers == w {
					mine = append(mine, k)
				}
			}
			for i := uint64(0); ; i++ {
				seq := first + i*uint64(workers) + uint64(w)
				k := mine[rng.IntN(len(mine))]
				key := killKeys[k]
				kind := []string{"set", "set", "setbuffers", "setfrom", "delete"}[rng.IntN(5)]
				v := idValue(seq, killMaxValue)
				say("B %x %s %d\n", seq, kind, k)
				var err error
				switch kind {
				case "set":
					err = s.Set(key, v)
				case "setbuffers":
					h := len(v) / 2
					err = s.SetBuffers(key, v[:h], v[h:])
				case "setfrom":
					_, err = s.SetFrom(key, io.MultiReader(bytes.NewReader(v[:len(v)/3]), bytes.NewReader(v[len(v)/3:])))
				case "delete":
					err = s.Delete(key)
				}
				switch {
				case err == nil:
					say("A %x ok\n", seq)
				case kind == "delete" && errors.Is(err, dirstore.ErrNotFound):
					say("A %x notfound\n", seq)
				default:
					say("A %x error %s\n", seq, strings.ReplaceAll(err.Error(), "\n", " "))
					os.Exit(3)
				}
			}
		}()
	}
	select {}
}

// copyTree copies the directory src to dst (which must not exist): what a
// crash of the process that had src open leaves, as the kernel sees it.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.Mkdir(to, 0o700)
		case d.Type().IsRegular():
			b, err := os.ReadFile(path)
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile (a store still open removing a file)
			}
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, 0o600)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
}

// shmTempDir returns a temporary directory in memory (/dev/shm) where there
// is one, else t.TempDir(): for scratch copies whose fsyncs need not cost.
func shmTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "dirstore-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
