package remote_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/remote"
)

// backends are the buckets every behaviour test runs against.
var backends = []struct {
	name string
	open func(t testing.TB) *blob.Bucket
}{
	{"memblob", func(t testing.TB) *blob.Bucket {
		b := memblob.OpenBucket(nil)
		t.Cleanup(func() { b.Close() })
		return b
	}},
	{"fileblob", func(t testing.TB) *blob.Bucket {
		b, err := fileblob.OpenBucket(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}},
	{"s3", func(t testing.TB) *blob.Bucket {
		return openS3Bucket(t, startS3(t).url(), 0)
	}},
}

// machine is one local store with a remote.Store over a bucket: what one
// machine of a shared cache holds.
type machine struct {
	dir   string
	local *dirstore.Store
	*remote.Store
}

// openMachine opens a local store in dir (a new temporary one if empty)
// and a remote.Store over bucket; the cleanup closes both and checks the
// local store's values.
func openMachine(t testing.TB, dir string, bucket *blob.Bucket, opts *remote.Options) *machine {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	local, err := dirstore.Open(dir, &dirstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	r, err := remote.Open(local, bucket, opts)
	if err != nil {
		local.Close()
		t.Fatal(err)
	}
	m := &machine{dir: dir, local: local, Store: r}
	t.Cleanup(func() { m.close(t) })
	return m
}

func (m *machine) close(t testing.TB) {
	t.Helper()
	if m.Store == nil {
		return
	}
	if err := m.Store.Close(); err != nil {
		t.Errorf("remote close: %v", err)
	}
	if err := m.local.Verify(func(key string, err error) bool {
		if err != nil {
			t.Errorf("local store: %q: %v", key, err)
		}
		return true
	}); err != nil {
		t.Error(err)
	}
	if err := m.local.Close(); err != nil {
		t.Errorf("local close: %v", err)
	}
	m.Store = nil
}

func mustGet(t testing.TB, s interface{ Get(string) ([]byte, error) }, key string, want []byte) {
	t.Helper()
	got, err := s.Get(key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %d bytes %.20q, want %d bytes %.20q", key, len(got), got, len(want), want)
	}
}

func value(key string, n int) []byte {
	b := bytes.Repeat([]byte(key+"|"), n/(len(key)+1)+1)
	return b[:n]
}

// oddKeys are keys whose object names need escaping.
var oddKeys = []string{"", ".", "..", "a/b", "/", "a.", ".hidden", "x y", "%", "%41", "ünï", "\x00\xff", "a//b/../c", "#1", "k?x=1&y"}

func TestStore(t *testing.T) {
	for _, be := range backends {
		t.Run("bucket="+be.name, func(t *testing.T) {
			t.Parallel()
			bucket := be.open(t)
			a := openMachine(t, "", bucket, nil)
			want := map[string][]byte{}
			for i, k := range oddKeys {
				want[k] = value(k, i*37)
			}
			want["big"] = value("big", 3<<20)
			for k, v := range want {
				if err := a.Set(k, v); err != nil {
					t.Fatalf("Set(%q): %v", k, err)
				}
				mustGet(t, a, k, v) // from the outbox or the local store
			}
			if n, err := a.SetFrom("streamed", bytes.NewReader(value("s", 100_000))); err != nil || n != 100_000 {
				t.Fatalf("SetFrom: %d, %v", n, err)
			}
			want["streamed"] = value("s", 100_000)
			if err := a.Sync(); err != nil {
				t.Fatal(err)
			}
			if st := a.Stats(); st.Pending != 0 || st.Outbox.Keys != 0 || st.Uploads < int64(len(want)) {
				t.Fatalf("after Sync: %+v", st)
			}
			// The uploaded values moved to the local store.
			for k, v := range want {
				got, err := a.local.Get(k)
				if err != nil || !bytes.Equal(got, v) {
					t.Fatalf("local Get(%q) after upload: %v", k, err)
				}
			}

			// A second machine reads everything through its own local store.
			b := openMachine(t, "", bucket, nil)
			for k, v := range want {
				mustGet(t, b, k, v)
			}
			if st := b.Stats(); st.Downloads != int64(len(want)) {
				t.Fatalf("second machine downloaded %d values, want %d", st.Downloads, len(want))
			}
			for k, v := range want { // now local: no download
				mustGet(t, b, k, v)
			}
			if st := b.Stats(); st.Downloads != int64(len(want)) {
				t.Fatalf("second reads downloaded again: %d", st.Downloads)
			}

			// View and Open of remote-only keys on a third machine.
			c := openMachine(t, "", bucket, nil)
			for k, v := range want {
				if err := c.View(k, func(got []byte) error {
					if !bytes.Equal(got, v) {
						return fmt.Errorf("View(%q) = %d bytes", k, len(got))
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			d := openMachine(t, "", bucket, nil)
			st, err := d.Open("big")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(st)
			st.Close()
			if err != nil || !bytes.Equal(got, want["big"]) {
				t.Fatalf("Open(big): %v, %d bytes", err, len(got))
			}

			// Has, Keys.
			for k := range want {
				if ok, err := d.Has(k); !ok || err != nil {
					t.Fatalf("Has(%q) = %v, %v", k, ok, err)
				}
			}
			if ok, err := d.Has("missing"); ok || err != nil {
				t.Fatalf("Has(missing) = %v, %v", ok, err)
			}
			if _, err := d.Get("missing"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Get(missing): %v", err)
			}
			if err := d.Set("only-d", []byte("d")); err != nil {
				t.Fatal(err)
			}
			want["only-d"] = []byte("d")
			checkKeys(t, d, slices.Collect(maps.Keys(want)))

			// Delete removes every copy: the bucket's too.
			if err := d.Delete("big"); err != nil {
				t.Fatal(err)
			}
			if err := d.Delete("only-d"); err != nil { // still pending, maybe
				t.Fatal(err)
			}
			delete(want, "big")
			delete(want, "only-d")
			for _, m := range []*machine{a, b, d} {
				if ok, _ := m.local.Has("big"); ok && m == d {
					t.Fatal("big still in d's local store")
				}
			}
			e := openMachine(t, "", bucket, nil)
			for _, k := range []string{"big", "only-d"} {
				if _, err := e.Get(k); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("Get(%q) after Delete: %v", k, err)
				}
			}
			checkKeys(t, e, slices.Collect(maps.Keys(want)))
			if err := d.Sync(); err != nil {
				t.Fatal(err)
			}
			if _, err := e.Get("only-d"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Get(only-d) after Delete and Sync: %v", err)
			}
		})
	}
}

func checkKeys(t testing.TB, s *machine, want []string) {
	t.Helper()
	var got []string
	for k, err := range s.Keys() {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, k)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Keys = %q\nwant %q", got, want)
	}
}

// TestOverwriteWhileUploading sets one key many times from several
// goroutines while uploads run: the bucket ends with the last value.
func TestOverwriteWhileUploading(t *testing.T) {
	bucket := backends[0].open(t)
	a := openMachine(t, "", bucket, &remote.Options{Uploaders: 4})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				k := fmt.Sprintf("k%d", i%5)
				if err := a.Set(k, fmt.Appendf(nil, "%d-%d", g, i)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	final := map[string][]byte{}
	for i := range 5 {
		k := fmt.Sprintf("k%d", i)
		v := fmt.Appendf(nil, "final-%d", i)
		if err := a.Set(k, v); err != nil {
			t.Fatal(err)
		}
		final[k] = v
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	b := openMachine(t, "", bucket, nil)
	for k, v := range final {
		mustGet(t, a, k, v)
		mustGet(t, b, k, v)
	}
}

func TestWriteThrough(t *testing.T) {
	bucket := backends[0].open(t)
	a := openMachine(t, "", bucket, &remote.Options{WriteThrough: true})
	if err := a.Set("k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	// No Sync: the bucket has it already.
	if got, err := bucket.ReadAll(t.Context(), "k"); err != nil || string(got) != "v" {
		t.Fatalf("bucket after a WriteThrough Set: %q, %v", got, err)
	}
	if st := a.Stats(); st.Pending != 0 {
		t.Fatalf("pending after WriteThrough Set: %d", st.Pending)
	}
}

func TestInvalidKey(t *testing.T) {
	a := openMachine(t, "", backends[0].open(t), nil)
	long := string(bytes.Repeat([]byte{'/'}, 400)) // 1,200 bytes escaped
	if err := a.Set(long, []byte("x")); !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("Set of a key too long for an object name: %v", err)
	}
	if st := a.Stats(); st.Outbox.Keys != 0 {
		t.Fatal("the refused key reached the outbox")
	}
}

// TestConcurrentModel runs Sets, Deletes and Gets from several goroutines,
// each on keys of its own (so each key's expected value is known), while
// uploads and downloads run; a second machine then reads every key's last
// state after Sync.
func TestConcurrentModel(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	bucket := backends[0].open(t)
	a := openMachine(t, "", bucket, &remote.Options{Uploaders: 3})
	const workers, keys, ops = 4, 6, 300
	models := make([]map[string][]byte, workers)
	var wg sync.WaitGroup
	for w := range workers {
		models[w] = map[string][]byte{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(seed), uint64(w)))
			model := models[w]
			for i := range ops {
				k := fmt.Sprintf("w%d-k%d", w, rng.IntN(keys))
				switch r := rng.IntN(10); {
				case r < 5:
					v := fmt.Appendf(nil, "%s=%d", k, i)
					if err := a.Set(k, v); err != nil {
						t.Error(err)
						return
					}
					model[k] = v
				case r < 7:
					if err := a.Delete(k); err != nil {
						t.Error(err)
						return
					}
					delete(model, k)
				default:
					got, err := a.Get(k)
					want, ok := model[k]
					if ok && (err != nil || !bytes.Equal(got, want)) || !ok && !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("Get(%q) = %q, %v; want %q (present %v)", k, got, err, want, ok)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	b := openMachine(t, "", bucket, nil)
	for w := range workers {
		for i := range keys {
			k := fmt.Sprintf("w%d-k%d", w, i)
			got, err := b.Get(k)
			want, ok := models[w][k]
			if ok && (err != nil || !bytes.Equal(got, want)) || !ok && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("second machine: Get(%q) = %q, %v; want %q (present %v)", k, got, err, want, ok)
			}
		}
	}
}

func TestOptions(t *testing.T) {
	local, err := dirstore.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	bucket := backends[0].open(t)
	_, err = remote.Open(local, bucket, &remote.Options{Uploaders: -1, Timeout: -1, MinBackoff: time.Second, MaxBackoff: time.Millisecond,
		OutboxBytes: -1, Outbox: &dirstore.Options{MaxBytes: 1 << 20, MaxIdle: time.Hour}})
	if !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("bad options: %v", err)
	}
	for _, want := range []string{"Uploaders", "Timeout", "backoff", "OutboxBytes", "Outbox.MaxBytes", "Outbox.MaxIdle"} { // every problem at once
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %s: %v", want, err)
		}
	}
	// Counters: a hit, a miss, a download.
	m := openMachine(t, "", bucket, nil)
	other := openMachine(t, "", bucket, nil)
	if err := other.Set("remote", []byte("r")); err != nil {
		t.Fatal(err)
	}
	if err := other.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := m.Set("local", []byte("l")); err != nil {
		t.Fatal(err)
	}
	mustGet(t, m, "local", []byte("l"))
	mustGet(t, m, "remote", []byte("r"))
	if _, err := m.Get("nowhere"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	if st := m.Stats(); st.Hits != 1 || st.Misses != 1 || st.Downloads != 1 || st.DownloadedBytes != 1 {
		t.Fatalf("Stats after a hit, a download and a miss: %+v", st)
	}
}
