package suite

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/spf13/afero"

	"github.com/dirstore/dirstore"
)

const (
	cAfero  = "afero MemMapFs"
	cPebble = "pebble vfs.NewMem"
	cBytes  = "bytes.Reader"
	cBuffer = "bytes.Buffer"

	memFileSize = 256 << 20
	memBlock    = 4096
)

func memFileRows() []*Row {
	const g = groupMemFile
	return []*Row{
		{Group: g, Op: "ReadAt 4 KiB at random offsets, 1 MiB file (in CPU cache)", Short: "ReadAt 4 KiB, 1 MiB file", Unit: Ops, Setup: memReadAt(1, 1<<20),
			Goals: []Goal{{Against: cAfero, Min: 1.5, Text: "MemFile ReadAt at least 1.5x afero"}},
			Note:  "As the next row, on a file small enough to stay in the CPU's caches, so that the cost of the call itself (locks, checks) shows rather than the cache misses of the copy."},
		{Group: g, Op: "ReadAt 4 KiB at random offsets, 256 MiB file", Short: "ReadAt 4 KiB", Unit: Ops, Setup: memReadAt(1, memFileSize),
			Goals: []Goal{{Against: cAfero, Min: 1.5, Text: "MemFile ReadAt at least 1.5x afero"}},
			Note:  "One goroutine, one handle per contender (dirstore: a MemHandle), the same random 4 KiB-aligned offsets. bytes.Reader is the floor: a bounds check and a copy."},
		{Group: g, Op: "ReadAt 4 KiB at random offsets, 1 MiB file, 2 goroutines", Short: "ReadAt 4 KiB, 1 MiB file, 2 goroutines", Unit: Ops, Setup: memReadAt(2, 1<<20),
			Goals: []Goal{{Against: cAfero, Min: 1.5, Text: "MemFile ReadAt at least 1.5x afero"}},
			Note:  "As the next row, on the 1 MiB file: the copies are short, so the locks' behaviour under two cores shows."},
		{Group: g, Op: "ReadAt 4 KiB at random offsets, 256 MiB file, 2 goroutines", Short: "ReadAt 4 KiB, 2 goroutines", Unit: Ops, Setup: memReadAt(2, memFileSize),
			Goals: []Goal{{Against: cAfero, Min: 1.5, Text: "MemFile ReadAt at least 1.5x afero"}},
			Note:  "Two goroutines, a handle each (afero's ReadAt moves the handle's offset, so a handle cannot be shared), on one file; bytes.Reader is shared. afero and pebble take a mutex per read, MemFile a read lock."},
		{Group: g, Op: "Sequential Write, 1 MiB chunks, to 64 MiB", Short: "sequential Write", Unit: Bytes, Setup: memWrite,
			Note: "A new empty file each time, written to 64 MiB through one handle (growth included). bytes.Buffer is the floor."},
		{Group: g, Op: "Two handles interleaving: Write 4 KiB, Read it back", Short: "two handles interleaving", Unit: Ops, Setup: memInterleave,
			Note: "A new, empty file; one handle appends 4 KiB, a second handle on the same file reads them back from its own position; one operation is the pair. After 64 MiB the next operation starts a new file, so the growth of the file is part of the cost, as for an encoder writing a file that a parser reads at the same time. (Writing into the middle of an existing file instead would be unfair to afero, which copies the rest of the file on every such write.) bytes.Buffer is the floor: one buffer, Write then Read."},
	}
}

// memFiles builds the same 256 MiB of data in every contender.
type memFiles struct {
	mem    *dirstore.MemFile
	afs    afero.Fs
	pfs    vfs.FS
	data   []byte
	offset []int64
}

func newMemFiles(size int64) (*memFiles, error) {
	m := &memFiles{data: make([]byte, size)}
	for i := range m.data {
		m.data[i] = byte(i*7 + i>>12)
	}
	m.mem = dirstore.NewMemFile("data")
	if _, err := m.mem.WriteAt(m.data, 0); err != nil {
		return nil, err
	}
	m.afs = afero.NewMemMapFs()
	af, err := m.afs.Create("/data")
	if err != nil {
		return nil, err
	}
	if _, err := af.Write(m.data); err != nil {
		return nil, err
	}
	af.Close()
	m.pfs = vfs.NewMem()
	pf, err := m.pfs.Create("/data", vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, err
	}
	if _, err := pf.Write(m.data); err != nil {
		return nil, err
	}
	pf.Close()
	r := rand.New(rand.NewPCG(7, 7))
	m.offset = make([]int64, 1<<16)
	for i := range m.offset {
		m.offset[i] = r.Int64N(size/memBlock) * memBlock
	}
	return m, nil
}

// readers opens one io.ReaderAt per goroutine for each contender.
func (m *memFiles) readers(name string, g int) ([]io.ReaderAt, func(), error) {
	var out []io.ReaderAt
	var closers []io.Closer
	for range g {
		var r io.ReaderAt
		var c io.Closer
		var err error
		switch name {
		case "dirstore":
			var h *dirstore.MemHandle
			h, err = m.mem.Open()
			r, c = h, h
		case cAfero:
			var f afero.File
			f, err = m.afs.Open("/data")
			r, c = f, f
		case cPebble:
			var f vfs.File
			f, err = m.pfs.Open("/data")
			r, c = f, f
		case cBytes:
			r = bytes.NewReader(m.data)
		}
		if err != nil {
			for _, c := range closers {
				c.Close()
			}
			return nil, nil, err
		}
		out = append(out, r)
		if c != nil {
			closers = append(closers, c)
		}
	}
	return out, func() {
		for _, c := range closers {
			c.Close()
		}
	}, nil
}

func memReadAt(g int, size int64) func(e *Env) (*Setup, error) {
	return func(e *Env) (*Setup, error) {
		key := fmt.Sprintf("memfiles-%d", size)
		v, err := e.Shared(key, func() (any, error) { return newMemFiles(size) })
		if err != nil {
			return nil, err
		}
		m := v.(*memFiles)
		var closers []func()
		contender := func(name string) (Contender, error) {
			rs, closeAll, err := m.readers(name, g)
			if err != nil {
				return Contender{}, err
			}
			closers = append(closers, closeAll)
			st := make([]*readerState, g)
			for i := range st {
				st[i] = &readerState{buf: make([]byte, memBlock), next: i * 7919}
			}
			return Contender{Name: name, Batch: func(budget time.Duration) (Result, error) {
				return parallel(g, budget, 0, func(gi, _ int) error {
					s := st[gi]
					s.next++
					off := m.offset[s.next&(len(m.offset)-1)]
					n, err := rs[gi].ReadAt(s.buf, off)
					if n != memBlock || err != nil || s.buf[0] != m.data[off] {
						return fmt.Errorf("%s: ReadAt(%d) = %d, %v (or wrong bytes)", name, off, n, err)
					}
					return nil
				})
			}}, nil
		}
		var cs []Contender
		for _, name := range []string{"dirstore", cAfero, cPebble, cBytes} {
			c, err := contender(name)
			if err != nil {
				for _, f := range closers {
					f()
				}
				return nil, err
			}
			cs = append(cs, c)
		}
		return &Setup{Ours: cs[0], Others: cs[1:], Close: func() {
			for _, f := range closers {
				f()
			}
			if g > 1 { // the last row that reads them
				e.Forget(key)
			}
		}}, nil
	}
}

// readerState is one goroutine's, on its own cache lines.
type readerState struct {
	buf  []byte
	next int
	_    [104]byte
}

// writeTarget is a fresh empty file of one contender.
type writeTarget interface {
	io.Writer
	Close() error
}

func memWrite(e *Env) (*Setup, error) {
	const total, chunk = 64 << 20, 1 << 20
	src := value(chunk)
	afs, pfs := afero.NewMemMapFs(), vfs.NewMem()
	contender := func(name string, create func() (writeTarget, error)) Contender {
		return Contender{Name: name, Batch: func(budget time.Duration) (Result, error) {
			r, err := loop(budget, 0, func(int) error {
				w, err := create()
				if err != nil {
					return err
				}
				for off := 0; off < total; off += chunk {
					if _, err := w.Write(src); err != nil {
						return err
					}
				}
				return w.Close()
			})
			r.Work *= total
			return r, err
		}}
	}
	return &Setup{
		Ours: contender("dirstore", func() (writeTarget, error) {
			m := dirstore.NewMemFile("w")
			h, err := m.OpenFile(os.O_RDWR)
			if err != nil {
				return nil, err
			}
			return h, nil
		}),
		Others: []Contender{
			contender(cAfero, func() (writeTarget, error) { return afs.Create("/w") }),
			contender(cPebble, func() (writeTarget, error) { return pfs.Create("/w", vfs.WriteCategoryUnspecified) }),
			contender(cBuffer, func() (writeTarget, error) { return &bufferTarget{}, nil }),
		},
	}, nil
}

type bufferTarget struct{ bytes.Buffer }

func (*bufferTarget) Close() error { return nil }

// pipe is a writer and a reader on one new, empty file.
type pipe struct {
	w io.Writer
	r io.Reader
}

const memPipeSize = 64 << 20

func memInterleave(e *Env) (*Setup, error) {
	src := value(memBlock)
	contender := func(name string, open func() (*pipe, error)) Contender {
		var p *pipe
		done := memPipeSize
		buf := make([]byte, memBlock)
		return Contender{Name: name, Batch: func(budget time.Duration) (Result, error) {
			return loop(budget, 0, func(int) error {
				if done >= memPipeSize {
					var err error
					if p, err = open(); err != nil {
						return err
					}
					done = 0
				}
				if _, err := p.w.Write(src); err != nil {
					return err
				}
				done += memBlock
				if n, err := io.ReadFull(p.r, buf); n != memBlock || err != nil || buf[1] != src[1] {
					return fmt.Errorf("%s: Read = %d, %v (or wrong bytes)", name, n, err)
				}
				return nil
			})
		}}
	}
	return &Setup{
		Ours: contender("dirstore", func() (*pipe, error) {
			m := dirstore.NewMemFile("pipe")
			w, err := m.OpenFile(os.O_WRONLY)
			if err != nil {
				return nil, err
			}
			r, err := m.Open()
			if err != nil {
				return nil, err
			}
			return &pipe{w: w, r: r}, nil
		}),
		Others: []Contender{
			contender(cAfero, func() (*pipe, error) {
				fs := afero.NewMemMapFs()
				w, err := fs.Create("/pipe")
				if err != nil {
					return nil, err
				}
				r, err := fs.Open("/pipe")
				if err != nil {
					return nil, err
				}
				return &pipe{w: w, r: r}, nil
			}),
			contender(cPebble, func() (*pipe, error) {
				fs := vfs.NewMem()
				w, err := fs.Create("/pipe", vfs.WriteCategoryUnspecified)
				if err != nil {
					return nil, err
				}
				r, err := fs.Open("/pipe")
				if err != nil {
					return nil, err
				}
				return &pipe{w: w, r: r}, nil
			}),
			contender(cBuffer, func() (*pipe, error) {
				b := &bytes.Buffer{}
				return &pipe{w: b, r: b}, nil
			}),
		},
	}, nil
}
