package remote_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/remote"
)

// fastRetry keeps the retries of fault tests short.
func fastRetry(o remote.Options) *remote.Options {
	o.MinBackoff, o.MaxBackoff = 10*time.Millisecond, 200*time.Millisecond
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Attempts == 0 {
		o.Attempts = 1000
	}
	return &o
}

// checkSecondMachine opens a fresh local store over bucket and reads every
// value of want.
func checkSecondMachine(t testing.TB, bucket *blob.Bucket, want map[string][]byte) error {
	m := openMachine(t, "", bucket, fastRetry(remote.Options{}))
	for k, v := range want {
		got, err := m.Get(k)
		if err != nil {
			return fmt.Errorf("second machine: %w", err)
		}
		if !bytes.Equal(got, v) {
			return fmt.Errorf("second machine: Get(%q) = %d bytes, want %d", k, len(got), len(v))
		}
	}
	return nil
}

// TestBucketDown: while the bucket cannot be reached, local keys and Sets
// keep working, a remote-only key fails with ErrUnavailable, Sync fails and
// says so; after the bucket is back, Sync uploads everything.
func TestBucketDown(t *testing.T) {
	srv := startS3(t)
	bucket := openS3Bucket(t, srv.url(), 1)
	a := openMachine(t, "", bucket, fastRetry(remote.Options{Attempts: 3, Timeout: time.Second}))
	b := openMachine(t, "", bucket, fastRetry(remote.Options{Attempts: 3, Timeout: time.Second}))
	for _, k := range []string{"local", "remote-only"} {
		if err := b.Set(k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	mustGet(t, a, "local", []byte("local"))

	srv.stop()
	mustGet(t, a, "local", []byte("local"))
	start := time.Now()
	_, err := a.Get("remote-only")
	if !errors.Is(err, remote.ErrUnavailable) || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get of a remote-only key with the bucket down: %v", err)
	}
	t.Logf("Get with the bucket down failed in %v: %v", time.Since(start), err)
	want := map[string][]byte{"local": []byte("local"), "remote-only": []byte("remote-only")}
	for i := range 20 {
		k := fmt.Sprintf("while-down-%d", i)
		want[k] = value(k, 1000+i)
		if err := a.Set(k, want[k]); err != nil {
			t.Fatalf("Set with the bucket down: %v", err)
		}
		mustGet(t, a, k, want[k])
	}
	if err := a.Sync(); !errors.Is(err, remote.ErrUnavailable) {
		t.Fatalf("Sync with the bucket down: %v", err)
	}
	if err := a.Delete("local"); !errors.Is(err, remote.ErrUnavailable) {
		t.Fatalf("Delete with the bucket down: %v", err)
	}
	mustGet(t, a, "local", []byte("local")) // the failed Delete removed nothing
	st := a.Stats()
	if st.Pending != 20 || st.UploadFailures == 0 || st.LastError == nil || st.DownloadFailures == 0 {
		t.Fatalf("Stats with the bucket down: %+v", st)
	}

	srv.start()
	if err := a.Sync(); err != nil {
		t.Fatalf("Sync after the bucket is back: %v", err)
	}
	if err := checkSecondMachine(t, bucket, want); err != nil {
		t.Fatal(err)
	}
}

// TestServerRestartDuringUploads stops the S3 server while uploads run and
// starts it again: nothing acknowledged is lost.
func TestServerRestartDuringUploads(t *testing.T) {
	srv := startS3(t)
	bucket := openS3Bucket(t, srv.url(), 1)
	a := openMachine(t, "", bucket, fastRetry(remote.Options{}))
	want := map[string][]byte{}
	for i := range 300 {
		if i == 100 {
			srv.stop()
		}
		if i == 200 {
			srv.start()
		}
		k := fmt.Sprintf("k%03d", i)
		want[k] = value(k, 16<<10+i)
		if err := a.Set(k, want[k]); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			time.Sleep(time.Millisecond) // let uploads run into the outage
		}
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	if st := a.Stats(); st.UploadFailures == 0 {
		t.Logf("no upload failed during the outage: %+v", st)
	}
	if err := checkSecondMachine(t, bucket, want); err != nil {
		t.Fatal(err)
	}
}

// TestFlakyServer puts a proxy in front of the server that answers every
// fifth request with 503 and holds every seventh past the request timeout
// (4 s, against 3 s).
func TestFlakyServer(t *testing.T) {
	srv := startS3(t)
	proxy := startProxy(t, srv.url())
	proxy.fail.Store(5)
	proxy.slow.Store(7)
	proxy.slowFor.Store(int64(4 * time.Second))
	bucket := openS3Bucket(t, proxy.url(), -1)
	a := openMachine(t, "", bucket, fastRetry(remote.Options{Timeout: 3 * time.Second}))
	want := map[string][]byte{}
	for i := range 100 {
		k := fmt.Sprintf("k%03d", i)
		want[k] = value(k, 4<<10+i)
		if err := a.Set(k, want[k]); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	st := a.Stats()
	t.Logf("uploads %d, failed %d (last: %v); proxy saw %d requests", st.Uploads, st.UploadFailures, st.LastError, proxy.count.Load())
	if st.UploadFailures == 0 {
		t.Fatal("no upload failed: the proxy did not get in the way")
	}
	// Reads through the flaky proxy: each failure is retried, by the SDK
	// (503) or by the reader (a timeout is an error, never wrong bytes).
	b := openMachine(t, "", bucket, fastRetry(remote.Options{Timeout: 3 * time.Second}))
	var wg sync.WaitGroup
	errs := make(chan error, len(want))
	sem := make(chan struct{}, 8) // 8 readers at a time
	for k, v := range want {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			var got []byte
			var err error
			for try := 0; try < 10; try++ {
				if got, err = b.Get(k); err == nil {
					break
				}
				if !errors.Is(err, remote.ErrUnavailable) {
					break
				}
				time.Sleep(time.Duration(try+1) * 20 * time.Millisecond)
			}
			if err != nil || !bytes.Equal(got, v) {
				errs <- fmt.Errorf("Get(%q) through the flaky proxy: %d bytes, %w", k, len(got), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// And directly, from a third machine.
	if err := checkSecondMachine(t, openS3Bucket(t, srv.url(), 0), want); err != nil {
		t.Fatal(err)
	}
}

// corruptScenario changes an uploaded object's bytes (keeping its length
// and metadata) and reads it from another machine: ErrCorrupt, and nothing
// stored locally.
func corruptScenario(t testing.TB, bucket *blob.Bucket) error {
	a := openMachine(t, "", bucket, nil)
	v := value("v", 10_000)
	if err := a.Set("k", v); err != nil {
		return err
	}
	if err := a.Sync(); err != nil {
		return err
	}
	attrs, err := bucket.Attributes(t.Context(), "k")
	if err != nil {
		return err
	}
	bad := bytes.Clone(v)
	bad[5000] ^= 1
	if err := bucket.WriteAll(t.Context(), "k", bad, &blob.WriterOptions{Metadata: attrs.Metadata}); err != nil {
		return err
	}
	b := openMachine(t, "", bucket, nil)
	for range 2 {
		got, err := b.Get("k")
		if !errors.Is(err, dirstore.ErrCorrupt) {
			return fmt.Errorf("Get of a changed object: %d bytes, %v", len(got), err)
		}
		if err := b.View("k", func([]byte) error { return nil }); !errors.Is(err, dirstore.ErrCorrupt) {
			return fmt.Errorf("View of a changed object: %v", err)
		}
	}
	if ok, _ := b.local.Has("k"); ok {
		return errors.New("the changed object was stored locally")
	}
	if st := b.Stats(); st.Corrupt == 0 {
		return fmt.Errorf("Stats.Corrupt = 0")
	}
	// An object with no checksum (written by someone else) is refused too.
	if err := bucket.WriteAll(t.Context(), "foreign", []byte("x"), nil); err != nil {
		return err
	}
	if _, err := b.Get("foreign"); !errors.Is(err, dirstore.ErrCorrupt) {
		return fmt.Errorf("Get of an object without checksum: %v", err)
	}
	return nil
}

func TestCorruptObject(t *testing.T) {
	for _, be := range backends {
		t.Run("bucket="+be.name, func(t *testing.T) {
			t.Parallel()
			if err := corruptScenario(t, be.open(t)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// evictScenario sets values while the bucket is down and meanwhile evicts
// every key of the local store, as a bounded local store under pressure
// would: after the bucket is back and Sync, a second machine reads them all.
func evictScenario(t testing.TB) error {
	srv := startS3(t)
	bucket := openS3Bucket(t, srv.url(), 1)
	a := openMachine(t, "", bucket, fastRetry(remote.Options{Attempts: 20}))
	srv.stop()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the evictor
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for k, err := range a.local.Keys() {
				if err == nil {
					a.local.Delete(k)
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	want := map[string][]byte{}
	for i := range 50 {
		k := fmt.Sprintf("k%02d", i)
		want[k] = value(k, 2000+i)
		if err := a.Set(k, want[k]); err != nil {
			return err
		}
	}
	time.Sleep(50 * time.Millisecond)
	srv.start()
	err := a.Sync()
	close(stop)
	wg.Wait()
	if err != nil {
		return err
	}
	return checkSecondMachine(t, bucket, want)
}

func TestEvictionBeforeUpload(t *testing.T) {
	if err := evictScenario(t); err != nil {
		t.Fatal(err)
	}
}

// The kill test: a helper process (this test binary again) sets values
// with uploads held up by a slow proxy and reports each acknowledged Set;
// it is killed with SIGKILL; a new Store on its directory resumes the
// uploads, and a second machine reads every acknowledged value.

const helperEnv = "DIRSTORE_REMOTE_KILL_HELPER"

// TestMain runs the kill test's helper process instead of the tests when
// asked to.
func TestMain(m *testing.M) {
	if args := os.Getenv(helperEnv); args != "" {
		killHelper(args)
		return
	}
	os.Exit(m.Run())
}

// killHelper sets values until it is killed, printing "ack KEY" after
// each Set returns.
func killHelper(args string) {
	dir, endpoint, _ := strings.Cut(args, " ")
	if m, err := strconv.Atoi(os.Getenv(helperEnv + "_MUTATION")); err == nil && m != 0 {
		remote.SetMutation(int32(m))
	}
	die := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	local, err := dirstore.Open(dir, nil) // durable Sets
	if err != nil {
		die(err)
	}
	bucket, err := newS3Bucket(endpoint, 0)
	if err != nil {
		die(err)
	}
	s, err := remote.Open(local, bucket, fastRetry(remote.Options{Uploaders: 2}))
	if err != nil {
		die(err)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		k := fmt.Sprintf("k%05d", i)
		if err := s.Set(k, value(k, 1000+i%5000)); err != nil {
			die(err)
		}
		fmt.Fprintf(w, "ack %s\n", k)
		w.Flush()
	}
}

func killScenario(t testing.TB, mutation int32) error {
	srv := startS3(t)
	proxy := startProxy(t, srv.url())
	proxy.latency.Store(int64(20 * time.Millisecond))
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+dir+" "+proxy.url(), fmt.Sprintf("%s_MUTATION=%d", helperEnv, mutation))
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	want := map[string][]byte{}
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(want) < 300 {
		if k, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			want[k] = value(k, 1000+mustAtoi(k[1:])%5000)
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if len(want) < 300 {
		return fmt.Errorf("helper acknowledged only %d Sets: %s", len(want), stderr.Bytes())
	}
	// The helper was killed with uploads pending (20 ms each, 2 at once).
	local, err := dirstore.Open(dir, nil)
	if err != nil {
		return err
	}
	defer local.Close()
	s, err := remote.Open(local, openS3Bucket(t, srv.url(), 0), fastRetry(remote.Options{Attempts: 20}))
	if err != nil {
		return err
	}
	defer s.Close()
	pending := s.Stats().Pending
	if err := s.Sync(); err != nil {
		return err
	}
	t.Logf("%d Sets acknowledged before the kill, %d uploads resumed", len(want), pending)
	return checkSecondMachine(t, openS3Bucket(t, srv.url(), 0), want)
}

func mustAtoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

func TestKillWithPendingUploads(t *testing.T) {
	if err := killScenario(t, 0); err != nil {
		t.Fatal(err)
	}
}

// TestSeededBugs switches on each seeded bug and checks that the scenario
// written to catch it fails.
func TestSeededBugs(t *testing.T) {
	t.Run("no-checksum", func(t *testing.T) {
		defer remote.SetMutation(remote.MutNoChecksum)()
		if err := corruptScenario(t, backends[0].open(t)); err == nil {
			t.Fatal("downloads unchecked, and the corruption test passed")
		} else {
			t.Logf("caught: %v", err)
		}
	})
	t.Run("pending-in-local-store/evict", func(t *testing.T) {
		defer remote.SetMutation(remote.MutLocalPending)()
		if err := evictScenario(t); err == nil {
			t.Fatal("pending values in the evictable local store, and the eviction test passed")
		} else {
			t.Logf("caught: %v", err)
		}
	})
	t.Run("no-outbox-bound", func(t *testing.T) {
		defer remote.SetMutation(remote.MutNoOutboxBound)()
		if err := outboxFullScenario(t); err == nil {
			t.Fatal("the outbox bound ignored, and the full-outbox test passed")
		} else {
			t.Logf("caught: %v", err)
		}
	})
	t.Run("pending-in-local-store/kill", func(t *testing.T) {
		if err := killScenario(t, remote.MutLocalPending); err == nil {
			t.Fatal("pending uploads recorded only in memory, and the kill test passed")
		} else {
			t.Logf("caught: %v", err)
		}
	})
}
