package remote_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/remote"
)

// outboxFullScenario fills a bounded outbox while the bucket is down: Sets
// that find no room fail after OutboxWait with ErrOutboxFull (wrapping the
// upload's ErrUnavailable) and change nothing; a value larger than the
// bound fails at once. A Store reopened over the same outbox counts what
// it holds; with the bucket back, a Set that waits for room succeeds, and
// a second machine reads every value acknowledged.
func outboxFullScenario(t testing.TB) error {
	// wait is long enough that a Set failing "at once" (a lock, no I/O)
	// takes less even on a loaded machine.
	const size, bound, wait = 4 << 10, 10 * 4 << 10, 400 * time.Millisecond
	srv := startS3(t)
	bucket := openS3Bucket(t, srv.url(), 1)
	opts := fastRetry(remote.Options{OutboxBytes: bound, OutboxWait: wait, Timeout: time.Second})
	a := openMachine(t, "", bucket, opts)
	srv.stop()
	want := map[string][]byte{}
	for i := range bound / size {
		k := fmt.Sprintf("k%02d", i)
		want[k] = value(k, size)
		if err := a.Set(k, want[k]); err != nil {
			return fmt.Errorf("Set %d of %d that fit: %w", i+1, bound/size, err)
		}
	}
	check := func(what string) error {
		st := a.Stats()
		if st.PendingBytes != bound || st.Outbox.Bytes != bound || st.Outbox.Keys != bound/size {
			return fmt.Errorf("after %s: PendingBytes %d, outbox %d bytes in %d keys; want %d bytes in %d keys",
				what, st.PendingBytes, st.Outbox.Bytes, st.Outbox.Keys, bound, bound/size)
		}
		for k, v := range want {
			if got, err := a.Get(k); err != nil || !bytes.Equal(got, v) {
				return fmt.Errorf("after %s: Get(%q) = %d bytes, %v", what, k, len(got), err)
			}
		}
		return nil
	}
	start := time.Now()
	err := a.Set("extra", value("extra", size))
	if took := time.Since(start); !errors.Is(err, remote.ErrOutboxFull) || !errors.Is(err, remote.ErrUnavailable) || took < wait {
		return fmt.Errorf("Set into a full outbox, the bucket down: %v after %v, want ErrOutboxFull and ErrUnavailable after %v", err, took, wait)
	}
	t.Logf("full: %v", err)
	if err := check("a Set into a full outbox"); err != nil {
		return err
	}
	if err := a.Set("k03", value("bigger", size+1)); !errors.Is(err, remote.ErrOutboxFull) {
		return fmt.Errorf("a pending key replaced by a larger value in a full outbox: %v, want ErrOutboxFull", err)
	}
	if err := check("a larger replacement"); err != nil {
		return err
	}
	if n, err := a.SetFrom("streamed", bytes.NewReader(value("s", size))); !errors.Is(err, remote.ErrOutboxFull) {
		return fmt.Errorf("SetFrom into a full outbox: %d, %v, want ErrOutboxFull", n, err)
	}
	if err := check("a SetFrom into a full outbox"); err != nil {
		return err
	}
	start = time.Now()
	if err := a.Set("huge", value("h", bound+1)); !errors.Is(err, dirstore.ErrTooLarge) || time.Since(start) >= wait {
		return fmt.Errorf("a value larger than the bound: %v after %v, want ErrTooLarge at once", err, time.Since(start))
	}
	// A pending value counts until its replacement is written: replacing
	// it needs room for both.
	if err := a.Set("k05", value("k05-smaller", size-100)); !errors.Is(err, remote.ErrOutboxFull) {
		return fmt.Errorf("a smaller replacement in a full outbox: %v, want ErrOutboxFull", err)
	}
	if err := check("a smaller replacement"); err != nil {
		return err
	}

	// A new Store over the same outbox counts what it holds, and Sets
	// wait for room until the bucket is back.
	a.close(t)
	opts.OutboxWait = time.Minute
	a = openMachine(t, a.dir, bucket, opts)
	if err := check("reopening"); err != nil {
		return err
	}
	var back atomic.Bool
	go func() {
		time.Sleep(300 * time.Millisecond)
		back.Store(true)
		srv.start()
	}()
	want["waited"] = value("waited", 2*size)
	if err := a.Set("waited", want["waited"]); err != nil {
		return fmt.Errorf("a Set waiting for room: %w", err)
	}
	if !back.Load() {
		return errors.New("a Set found room in a full outbox while the bucket was down")
	}
	want["streamed"] = value("s", 3*size)
	if _, err := a.SetFrom("streamed", bytes.NewReader(want["streamed"])); err != nil {
		return fmt.Errorf("SetFrom with the bucket back: %w", err)
	}
	if err := a.Sync(); err != nil {
		return err
	}
	if st := a.Stats(); st.PendingBytes != 0 || st.Outbox.Bytes != 0 {
		return fmt.Errorf("after Sync: PendingBytes %d, outbox %d bytes", st.PendingBytes, st.Outbox.Bytes)
	}
	return checkSecondMachine(t, bucket, want)
}

func TestOutboxFull(t *testing.T) {
	if err := outboxFullScenario(t); err != nil {
		t.Fatal(err)
	}
}

// TestOutboxNoWait: with a negative OutboxWait a full outbox fails a Set at
// once.
func TestOutboxNoWait(t *testing.T) {
	srv := startS3(t)
	bucket := openS3Bucket(t, srv.url(), 1)
	a := openMachine(t, "", bucket, fastRetry(remote.Options{OutboxBytes: 1000, OutboxWait: -1, Timeout: time.Second}))
	srv.stop()
	if err := a.Set("a", value("a", 600)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := a.Set("b", value("b", 600))
	if !errors.Is(err, remote.ErrOutboxFull) || time.Since(start) > 5*time.Second { // not the default minute
		t.Fatalf("Set into a full outbox with no wait: %v after %v", err, time.Since(start))
	}
	if err := a.Set("c", value("c", 400)); err != nil {
		t.Fatalf("a Set that fits: %v", err)
	}
	if _, err := remote.Open(a.local, bucket, &remote.Options{OutboxBytes: -1}); err == nil {
		t.Fatal("Open accepted a negative OutboxBytes")
	}
}

// TestOutboxCloseWhileWaiting: Close ends a Set's wait for room with
// ErrClosed.
func TestOutboxCloseWhileWaiting(t *testing.T) {
	srv := startS3(t)
	bucket := openS3Bucket(t, srv.url(), 1)
	a := openMachine(t, "", bucket, fastRetry(remote.Options{OutboxBytes: 1000, Timeout: time.Second}))
	srv.stop()
	if err := a.Set("a", value("a", 600)); err != nil {
		t.Fatal(err)
	}
	r := a.Store
	done := make(chan error)
	go func() { done <- r.Set("b", value("b", 600)) }()
	time.Sleep(50 * time.Millisecond)
	a.close(t)
	select {
	case err := <-done:
		if !errors.Is(err, dirstore.ErrClosed) {
			t.Fatalf("a Set waiting for room when the Store closed: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end a Set's wait for room")
	}
}

// TestOutboxBoundUnderLoad: goroutines Set, SetFrom and overwrite keys as
// fast as they can while uploads crawl through a slow proxy; the outbox
// (the bytes its store holds) never passes the bound, every Set succeeds
// by waiting, and a second machine reads the last values.
func TestOutboxBoundUnderLoad(t *testing.T) {
	const bound = 64 << 10
	srv := startS3(t)
	proxy := startProxy(t, srv.url())
	proxy.latency.Store(int64(2 * time.Millisecond))
	bucket := openS3Bucket(t, proxy.url(), 0)
	a := openMachine(t, "", bucket, &remote.Options{OutboxBytes: bound, Uploaders: 4})
	stop := make(chan struct{})
	var most atomic.Int64
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			st := a.Stats()
			most.Store(max(most.Load(), st.Outbox.Bytes, st.PendingBytes))
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Microsecond):
			}
		}
	})
	var mu sync.Mutex
	want := map[string][]byte{}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for i := range 60 {
				k := fmt.Sprintf("g%d-%d", g, rng.IntN(20)) // overwrites
				v := value(fmt.Sprintf("%s-%d", k, i), 1+rng.IntN(16<<10))
				var err error
				if i%3 == 0 {
					_, err = a.SetFrom(k, bytes.NewReader(v))
				} else {
					err = a.Set(k, v)
				}
				mu.Lock()
				want[k] = v // the keys are the goroutine's own
				mu.Unlock()
				if err != nil {
					t.Errorf("Set(%q): %v", k, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	sampler.Wait()
	if most.Load() > bound {
		t.Fatalf("the outbox held %d bytes, more than its bound %d", most.Load(), bound)
	}
	t.Logf("the outbox held at most %d bytes (bound %d); %d uploads", most.Load(), bound, a.Stats().Uploads)
	if err := checkSecondMachine(t, bucket, want); err != nil {
		t.Fatal(err)
	}
}
