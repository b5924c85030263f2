package dirstore_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

// codecData returns n bytes of a kind of data: "text" (log lines),
// "ints" (a little-endian int64 series, as numeric arrays hold) or "random"
// (incompressible), the same for the same arguments.
func codecData(kind string, n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 16))
	var b []byte
	switch kind {
	case "text":
		for len(b) < n {
			b = fmt.Appendf(b, "2026-12-07T00:%02d:%02d.%06dZ INFO worker-%d task %08x finished in %d ms (%s)\n",
				r.IntN(60), r.IntN(60), r.IntN(1e6), r.IntN(16), r.Uint32(), r.IntN(5000),
				[]string{"ok", "retried", "cached", "spilled"}[r.IntN(4)])
		}
	case "ints":
		v := int64(1 << 20)
		for len(b) < n {
			v += int64(r.IntN(201)) - 100
			b = binary.LittleEndian.AppendUint64(b, uint64(v))
		}
	case "random":
		b = make([]byte, n)
		rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	default:
		panic(kind)
	}
	return b[:n]
}

func TestS2CodecRoundTrip(t *testing.T) {
	c := dirstore.S2Codec[[]byte](nil)
	for _, kind := range []string{"text", "ints", "random"} {
		for _, n := range []int{0, 1, 31, 32, 100, 4096, 1 << 20, 5 << 20} {
			t.Run(fmt.Sprintf("data=%s,size=%d", kind, n), func(t *testing.T) {
				v := codecData(kind, n, uint64(n))
				enc, err := c.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				got, err := c.Unmarshal(enc)
				if err != nil || !bytes.Equal(got, v) {
					t.Fatalf("round trip: %d bytes, %v", len(got), err)
				}
				switch {
				case kind == "random" && len(enc) > n+10:
					t.Errorf("incompressible %d bytes grew to %d", n, len(enc))
				case kind == "text" && n >= 4096 && len(enc) > n/2:
					t.Errorf("text of %d bytes compressed only to %d", n, len(enc))
				}
				t.Logf("%d -> %d bytes", n, len(enc))
			})
		}
	}
	// Through an inner Codec.
	ci := dirstore.S2Codec[int](bufInts{})
	enc, err := ci.Marshal(-1234567)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := ci.Unmarshal(enc); err != nil || v != -1234567 {
		t.Fatalf("int round trip = %d, %v", v, err)
	}
	if _, err := ci.Unmarshal([]byte{3, 8, 'x', 'y', 'z'}); err == nil || errors.Is(err, dirstore.ErrCorrupt) {
		t.Errorf("inner Unmarshal error = %v, want it passed on as it is", err)
	}
}

func TestS2CodecCorrupt(t *testing.T) {
	c := dirstore.S2Codec[[]byte](nil)
	good, err := c.Marshal(codecData("text", 10000, 1))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"empty":        {},
		"truncated":    good[:len(good)/2],
		"extended":     append(bytes.Clone(good), 0, 0, 0),
		"longer":       append([]byte{0xff, 0xff, 0x03}, good[2:]...), // claims 65535 bytes
		"bad header":   {0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"uncompressed": []byte(strings.Repeat("written by the plain Codec ", 100)),
	} {
		if v, err := c.Unmarshal(data); !errors.Is(err, dirstore.ErrCorrupt) {
			t.Errorf("%s: Unmarshal = %d bytes, %v; want ErrCorrupt", name, len(v), err)
		}
	}
}

func TestS2CodecNilInner(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "int") {
			t.Errorf("S2Codec[int](nil) panicked with %v", r)
		}
	}()
	dirstore.S2Codec[int](nil)
}

// A Buffer with S2Codec spills compressed values and reads them back; a
// value in the Store that is not an S2 block is reported as corrupt and
// nothing is lost.
func TestS2CodecBuffer(t *testing.T) {
	s := storetest.Open(t, t.TempDir(), &dirstore.Options{NoSync: true})
	if err := s.Set("raw", []byte("not compressed")); err != nil {
		t.Fatal(err)
	}
	b := bufNew(t, s, dirstore.BufferOptions[[]byte]{MaxWeight: 3 << 20, Codec: dirstore.S2Codec[[]byte](nil)})
	want := map[string][]byte{}
	for i := range 8 {
		kind := []string{"text", "ints", "random"}[i%3]
		k := fmt.Sprintf("%s-%d", kind, i)
		want[k] = codecData(kind, 1<<20, uint64(i))
		if err := b.Set(k, want[k]); err != nil {
			t.Fatal(err)
		}
	}
	var spilled, onDisk int64
	for k, v := range want {
		if ok, _ := s.Has(k); ok {
			data, err := s.Get(k)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(data, v) {
				t.Errorf("%s: spilled as it is", k)
			}
			spilled += int64(len(v))
			onDisk += int64(len(data))
		}
	}
	if spilled < 5<<20 {
		t.Fatalf("only %d bytes spilled", spilled)
	}
	if onDisk >= spilled*3/4 {
		t.Errorf("%d bytes spilled took %d in the Store", spilled, onDisk)
	}
	for k, v := range want {
		got, err := b.Get(k)
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("Get(%s) = %d bytes, %v", k, len(got), err)
		}
	}
	_, err := b.Get("raw")
	var ke *dirstore.KeyError
	if !errors.Is(err, dirstore.ErrCorrupt) || !errors.As(err, &ke) || ke.Key != "raw" {
		t.Fatalf("Get of an uncompressed value = %v, want a KeyError matching ErrCorrupt", err)
	}
	if data, err := s.Get("raw"); err != nil || string(data) != "not compressed" {
		t.Fatalf("after the failed Get the Store holds %q, %v", data, err)
	}
	if ok, err := b.Has("raw"); !ok || err != nil {
		t.Fatalf("Has(raw) after the failed Get = %v, %v", ok, err)
	}
}

// BenchmarkBufferSpillCodec compares spilling through S2Codec with spilling
// the bytes as they are: throughput (b.SetBytes: the values' size) and the
// bytes the Store holds per value (disk-B/value; ratio: disk bytes over
// value bytes). Each Set spills at once (MaxWeight 0) to a NoSync Store,
// and overwrites one of 64 keys.
func BenchmarkBufferSpillCodec(b *testing.B) {
	for _, kind := range []string{"text", "ints", "random"} {
		for _, size := range []int{64 << 10, 1 << 20} {
			values := make([][]byte, 8)
			for i := range values {
				values[i] = codecData(kind, size, uint64(i))
			}
			for _, codec := range []string{"none", "s2"} {
				name := fmt.Sprintf("data=%s/size=%dKiB/codec=%s", kind, size>>10, codec)
				b.Run(name, func(b *testing.B) {
					s, err := dirstore.Open(b.TempDir(), &dirstore.Options{NoSync: true})
					if err != nil {
						b.Fatal(err)
					}
					defer s.Close()
					o := dirstore.BufferOptions[[]byte]{}
					if codec == "s2" {
						o.Codec = dirstore.S2Codec[[]byte](nil)
					}
					buf, err := dirstore.NewBuffer(s, o)
					if err != nil {
						b.Fatal(err)
					}
					defer buf.Close()
					b.SetBytes(int64(size))
					b.ResetTimer()
					for i := range b.N {
						if err := buf.Set(fmt.Sprintf("k%d", i%64), values[i%len(values)]); err != nil {
							b.Fatal(err)
						}
					}
					if err := s.Sync(); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					st := s.Stats()
					b.ReportMetric(float64(st.Bytes)/float64(st.Keys), "disk-B/value")
					b.ReportMetric(float64(st.Bytes)/float64(st.Keys)/float64(size), "ratio")
				})
			}
		}
	}
}

// BenchmarkS2Codec measures the codec alone: Marshal (compress) and
// Unmarshal (decompress) throughput of 1 MiB values.
func BenchmarkS2Codec(b *testing.B) {
	c := dirstore.S2Codec[[]byte](nil)
	for _, kind := range []string{"text", "ints", "random"} {
		v := codecData(kind, 1<<20, 1)
		enc, err := c.Marshal(v)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("data=%s/op=marshal", kind), func(b *testing.B) {
			b.SetBytes(int64(len(v)))
			for range b.N {
				if _, err := c.Marshal(v); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(enc))/float64(len(v)), "ratio")
		})
		b.Run(fmt.Sprintf("data=%s/op=unmarshal", kind), func(b *testing.B) {
			b.SetBytes(int64(len(v)))
			for range b.N {
				if _, err := c.Unmarshal(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
