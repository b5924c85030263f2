package suite

import (
	"errors"
	"fmt"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/peterbourgon/diskv/v3"

	"github.com/dirstore/dirstore"
)

const (
	cLRU      = "golang-lru"
	cLRUDiskv = "golang-lru + diskv spill"

	bufValue = 4096
)

func bufferRows() []*Row {
	const g = groupBuffer
	return []*Row{
		{Group: g, Op: "Get, in memory (nothing spills)", Short: "Get in memory", Unit: Ops, Setup: bufferInMemory(false),
			Note: "10,000 keys of 4 KiB, all in memory (MaxWeight 1 GiB), read at random: the cost of spill support when nothing spills. golang-lru: lru.Cache[string, []byte] of 20,000 entries."},
		{Group: g, Op: "Set of an existing key, in memory (nothing spills)", Short: "Set in memory", Unit: Ops, Setup: bufferInMemory(true),
			Note: "As above, replacing the value of a random key."},
		{Group: g, Op: "Set of a new key, spilling continuously", Short: "Set, spilling", Unit: Ops, Setup: bufferSpillSet, Phase: 1,
			Note: "4 KiB values into a memory tier of 4 MiB (1,000 values): from the first batch on, every Set spills the least recently used value. dirstore: Buffer over a Store with NoSync. The alternative written by hand: lru.NewWithEvict of 1,000 entries whose eviction callback writes the value to diskv (no fsync)."},
		{Group: g, Op: "Get of a spilled key (read back; another spills)", Short: "Get of a spilled key", Unit: Ops, Setup: bufferSpillGet, Phase: 1,
			Note: "10,000 keys of 4 KiB, 1,000 of them in memory, read at random: nine reads in ten find the value on disk, read it back into memory (removing it from disk) and spill another. By hand: lru Get, else diskv Read, Erase, and lru Add (whose eviction callback writes to diskv)."},
	}
}

func bufferInMemory(set bool) func(e *Env) (*Setup, error) {
	return func(e *Env) (*Setup, error) {
		const n = 10_000
		s, err := openStore(e, "buffer-mem", noSync())
		if err != nil {
			return nil, err
		}
		b, err := dirstore.NewBuffer[[]byte](s, dirstore.BufferOptions[[]byte]{MaxWeight: 1 << 30})
		if err != nil {
			s.Close()
			return nil, err
		}
		c, _ := lru.New[string, []byte](2 * n)
		keys := make([]string, n)
		for i := range keys {
			keys[i] = key(i)
			v := value(bufValue)
			if err := b.Set(keys[i], v); err != nil {
				b.Close()
				s.Close()
				return nil, err
			}
			c.Add(keys[i], v)
		}
		order := perm(1<<16, 9)
		v := value(bufValue)
		op := func(name string, get func(string) ([]byte, error), put func(string, []byte) error) Contender {
			next := 0
			return Contender{Name: name, Batch: func(budget time.Duration) (Result, error) {
				return loop(budget, 0, func(int) error {
					next++
					k := keys[order[next&(len(order)-1)]%n]
					if set {
						return put(k, v)
					}
					got, err := get(k)
					if err == nil && len(got) != bufValue {
						err = fmt.Errorf("%s: got %d bytes", name, len(got))
					}
					return err
				})
			}}
		}
		return &Setup{
			Ours: op("dirstore", b.Get, b.Set),
			Others: []Contender{op(cLRU, func(k string) ([]byte, error) {
				v, ok := c.Get(k)
				if !ok {
					return nil, errors.New("golang-lru: missing key")
				}
				return v, nil
			}, func(k string, v []byte) error { c.Add(k, v); return nil })},
			Close: func() {
				if b.Len() != n {
					panic("buffer lost keys")
				}
				b.Close()
				s.Close()
			},
		}, nil
	}
}

// spillFixture is a Buffer and the hand-written alternative with the same
// memory budget.
type spillFixture struct {
	store  *dirstore.Store
	buf    *dirstore.Buffer[[]byte]
	lru    *lru.Cache[string, []byte]
	dv     *diskv.Diskv
	errs   []error // of the eviction callback
	closer func()
	// written records the files the hand-written spill wrote, flushed after
	// each batch as the Store's checkpoint is.
	written *written
}

const spillMemValues = 1000

func newSpillFixture(e *Env, name string) (*spillFixture, error) {
	s, err := openStore(e, name+"-dirstore", noSync())
	if err != nil {
		return nil, err
	}
	b, err := dirstore.NewBuffer[[]byte](s, dirstore.BufferOptions[[]byte]{MaxWeight: spillMemValues * bufValue})
	if err != nil {
		s.Close()
		return nil, err
	}
	d, err := dirs(e, name+"-diskv")
	if err != nil {
		b.Close()
		s.Close()
		return nil, err
	}
	f := &spillFixture{store: s, buf: b, dv: flatDiskv(d[0], nil), written: newWritten(d[0])}
	write := f.written.wrap(f.dv.Write)
	f.lru, _ = lru.NewWithEvict(spillMemValues, func(k string, v []byte) {
		if err := write(k, v); err != nil {
			f.errs = append(f.errs, err)
		}
	})
	f.closer = func() { b.Close(); s.Close() }
	return f, nil
}

func (f *spillFixture) evictErr() error {
	err := errors.Join(f.errs...)
	f.errs = nil
	return err
}

// handGet is the hand-written Buffer's Get.
func (f *spillFixture) handGet(k string) ([]byte, error) {
	if v, ok := f.lru.Get(k); ok {
		return v, nil
	}
	v, err := f.dv.Read(k)
	if err != nil {
		return nil, err
	}
	if err := f.dv.Erase(k); err != nil {
		return nil, err
	}
	f.lru.Add(k, v)
	return v, f.evictErr()
}

// ours runs op on the Buffer, then the Store's checkpoint, untimed.
func (f *spillFixture) ours(maxOps int, op func(i int) error) Contender {
	return storeContender(f.store, maxOps, op)
}

func bufferSpillSet(e *Env) (*Setup, error) {
	const maxOps = 3000
	f, err := newSpillFixture(e, "spillset")
	if err != nil {
		return nil, err
	}
	v := value(bufValue)
	ours, hand := 0, 0
	return &Setup{
		Ours: f.ours(maxOps, func(int) error { ours++; return f.buf.Set(key(ours), v) }),
		Others: []Contender{{Name: cLRUDiskv, Batch: flushed(f.written, func(budget time.Duration) (Result, error) {
			return loop(budget, maxOps, func(int) error {
				hand++
				f.lru.Add(key(hand), v)
				return f.evictErr()
			})
		})}},
		Close: f.closer,
	}, nil
}

func bufferSpillGet(e *Env) (*Setup, error) {
	const n, maxOps = 10 * spillMemValues, 2000
	f, err := newSpillFixture(e, "spillget")
	if err != nil {
		return nil, err
	}
	v := value(bufValue)
	for i := range n {
		if err := f.buf.Set(key(i), v); err != nil {
			f.closer()
			return nil, err
		}
		f.lru.Add(key(i), v)
		if err := f.evictErr(); err != nil {
			f.closer()
			return nil, err
		}
	}
	if err := f.store.Sync(); err != nil {
		f.closer()
		return nil, err
	}
	if err := f.written.flush(); err != nil {
		f.closer()
		return nil, err
	}
	order := perm(1<<16, 11)
	reader := func(get func(string) ([]byte, error)) func(int) error {
		next := 0
		return func(int) error {
			next++
			got, err := get(key(order[next&(len(order)-1)] % n))
			if err == nil && len(got) != bufValue {
				err = fmt.Errorf("got %d bytes", len(got))
			}
			return err
		}
	}
	hand := reader(f.handGet)
	return &Setup{
		Ours: f.ours(maxOps, reader(f.buf.Get)),
		Others: []Contender{{Name: cLRUDiskv, Batch: flushed(f.written, func(budget time.Duration) (Result, error) {
			return loop(budget, maxOps, hand)
		})}},
		Close: f.closer,
	}, nil
}
