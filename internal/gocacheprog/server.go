// Package gocacheprog is a GOCACHEPROG server: it lets the go command keep
// its build cache in a dirstore.Store ("dirstore gocache"), or in a Store
// over a bucket ("dirstore-remote gocache", package remote).
//
// The protocol (cmd/go/internal/cacheprog in the Go source tree): the server
// first writes a response with ID 0 naming the commands it knows; then the go
// command writes one request per line on the server's standard input (a
// "put" whose BodySize is not zero is followed by a line holding the body as
// a JSON string of base64), and the server answers each on standard output,
// in any order, naming its ID. A hit's DiskPath is a file holding the output
// that must stay in place until "close".
//
// # Layout in the Store
//
// Outputs are content-addressed: the go command's output ID is the SHA-256
// of the body. Each output is one key, "o/" and the output ID in hex, whose
// value is the body itself, so that DiskPath is the value's own file: no
// copy, no header in it. Each action is a second, small key, "a/" and the
// action ID in hex, holding the output ID, the size and the time of the put
// in a fixed, versioned encoding (actionRecord). A put writes the output
// before the action, so a store holding a prefix of the operations (what a
// NoSync store promises after a crash) never has an action whose output is
// missing; a get also checks the output's size against the action's.
//
// # DiskPath stays put
//
// A value's file never changes: a new value gets a new file. The server
// keeps each output it hands out open as a Stream until "close", and a
// Store keeps the file of an open Stream in place, under its name, while
// the Stream is open, though the key be overwritten, deleted or evicted
// (Store.OpenStream): so a bounded store (-max) may evict an output during
// a build, and the go command still reads it by its DiskPath. The server
// also never writes an output twice (the same output ID is the same body:
// a second put of it writes nothing).
//
// A NoSync store keeps small values in its write buffer, with no file yet.
// The server opens the Stream after the Set: Store.Open applies the write
// buffer first when the key is in it, so the file is complete before the
// response names it. The write buffer stays on, because the action records,
// which are never handed out as files, are tiny and gain from it.
package gocacheprog

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/size"
)

// Usage is the help text of the gocache command.
const Usage = `usage: dirstore gocache [-max SIZE] [-sync] [-remote URL] [-v] DIR

gocache serves the go command's build cache from the store in DIR (created if
missing) over the GOCACHEPROG protocol:

    GOCACHEPROG="dirstore gocache $HOME/.cache/dirstore-go" go build ./...

Flags:
  -max SIZE    bound the cache to SIZE bytes (512MiB, 10GB, 2G; K, M, G and T
               alone are powers of 1024): the least recently used entries go
  -sync        fsync every entry (default: none, like the go command's own
               cache; a crash may lose the latest entries, never tear one)
  -remote URL  share the cache through a bucket (a gocloud.dev/blob URL such
               as s3://bucket?region=us-east-1 or file:///path): entries are
               uploaded in the background, and entries other machines
               uploaded are served; needs the dirstore-remote command
               (go install github.com/dirstore/dirstore/remote/cmd/dirstore-remote)
  -v           log the store's recovery and every failed request on standard error

A DIR in use by another gocache server (another go command running at the
same time) is not shared: this go command then builds without a cache, and
says so on standard error.
`

// UsageError is the error of arguments that are not valid.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// Options are the command's arguments.
type Options struct {
	Dir      string // absolute
	MaxBytes int64  // 0: unbounded
	Sync     bool
	Remote   string // a bucket's URL, or ""
	Verbose  bool
}

// ParseArgs parses the arguments after "gocache".
func ParseArgs(args []string) (Options, error) {
	flags := flag.NewFlagSet("gocache", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.Usage = func() {}
	var o Options
	maxArg := flags.String("max", "", "")
	flags.BoolVar(&o.Sync, "sync", false, "")
	flags.StringVar(&o.Remote, "remote", "", "")
	flags.BoolVar(&o.Verbose, "v", false, "")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, usagef("gocache: %v", err)
	}
	if flags.NArg() != 1 {
		return o, usagef("usage: dirstore gocache [-max SIZE] [-sync] [-remote URL] [-v] DIR")
	}
	if *maxArg != "" {
		n, err := size.Parse(*maxArg)
		if err == nil && n <= 0 {
			err = fmt.Errorf("%q: the budget must be positive", *maxArg)
		}
		if err != nil {
			return o, usagef("gocache: -max: %v", err)
		}
		o.MaxBytes = n
	}
	// The go command runs the server in its own working directory, and
	// DiskPath must be absolute.
	dir, err := filepath.Abs(flags.Arg(0))
	if err != nil {
		return o, err
	}
	o.Dir = dir
	return o, nil
}

// Cache is what the server keeps the build cache in: a *dirstore.Store, or
// a store in front of one. Close makes what was put durable (as the cache
// promises) and releases the cache.
type Cache interface {
	Get(key string) ([]byte, error)
	Set(key string, value []byte) error
	Open(key string) (*dirstore.Stream, error)
	Close() error
}

// Tier puts a cache in front of the local store, for Options.Remote; the
// Cache's Close must close local too.
type Tier func(local *dirstore.Store, o Options) (Cache, error)

// Run opens the store of o.Dir (through tier, if not nil) and serves the
// go command on in and out until "close" or the end of in.
func Run(o Options, tier Tier, in io.Reader, out, stderr io.Writer) error {
	logf := func(string, ...any) {}
	opts := dirstore.Options{NoSync: !o.Sync, MaxBytes: o.MaxBytes}
	if o.Verbose {
		logf = func(format string, args ...any) {
			fmt.Fprintf(stderr, "dirstore gocache: "+format+"\n", args...)
		}
		opts.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	g := &server{logf: logf, stderr: stderr}
	s, err := dirstore.Open(o.Dir, &opts)
	switch {
	case errors.Is(err, dirstore.ErrLocked):
		// Another go command's server has the directory. Waiting for it
		// could deadlock (a test that runs the go command inherits
		// GOCACHEPROG from the go command running it), so this one builds
		// uncached: its outputs go to temporary files.
		fmt.Fprintf(stderr, "dirstore gocache: %s is in use by another server; this go command builds without the cache\n", o.Dir)
	case err != nil:
		return fmt.Errorf("gocache: %w", err)
	case tier != nil:
		c, err := tier(s, o)
		if err != nil {
			return errors.Join(fmt.Errorf("gocache: %w", err), s.Close())
		}
		g.c = c
	default:
		g.c = s
	}
	return g.serve(in, out)
}

// maxPinned bounds the outputs kept open until close, one descriptor each:
// a quarter of the descriptors the process may open (the Go runtime raises
// the soft limit to the hard one), and at least 1,024. An output beyond it
// is still never overwritten by this server, but a bounded store may evict
// it before close.
var maxPinned = max(1024, openFileLimit()/4)

// server is one run of the server: one go command.
type server struct {
	c      Cache  // nil: uncached, in tmp
	tmp    string // temporary files for outputs not stored; "" until one is
	logf   func(format string, args ...any)
	stderr io.Writer

	outMu sync.Mutex
	out   *bufio.Writer
	enc   *json.Encoder

	// slots bounds the requests in flight, and so the bodies held in
	// memory: the reader waits for a slot before it reads the next one.
	slots    chan struct{}
	inFlight sync.WaitGroup

	outputs struct {
		sync.Mutex
		m      map[string]*output // by output key
		pinned int
		warned bool
	}
}

// output is an output this server has looked up or written.
type output struct {
	mu   sync.Mutex
	path string // "" until known
	size int64
	st   *dirstore.Stream // pins path's file; nil beyond maxPinned
}

var knownCommands = []string{"get", "put", "close"}

// serve answers the requests on in until "close" or the end of in.
func (g *server) serve(in io.Reader, out io.Writer) (err error) {
	g.out = bufio.NewWriter(out)
	g.enc = json.NewEncoder(g.out)
	g.slots = make(chan struct{}, 4*runtime.GOMAXPROCS(0)+4)
	g.outputs.m = map[string]*output{}
	defer func() {
		g.inFlight.Wait()
		if cerr := g.close(); err == nil {
			err = cerr
		}
	}()
	if err := g.respond(&response{KnownCommands: knownCommands}); err != nil {
		return err
	}
	r := &requestReader{br: bufio.NewReaderSize(in, 256<<10)}
	for {
		g.slots <- struct{}{}
		req, body, err := r.next()
		if errors.Is(err, io.EOF) {
			<-g.slots
			return nil // the go command went away without "close"
		}
		var be *badRequest
		if errors.As(err, &be) {
			<-g.slots
			if be.id == 0 {
				// Without an ID there is no one to answer: the go command
				// fails any request whose answer never comes.
				fmt.Fprintf(g.stderr, "dirstore gocache: %v\n", be)
				continue
			}
			g.logf("%v", be)
			if err := g.respond(&response{ID: be.id, Err: be.Error()}); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			<-g.slots
			return fmt.Errorf("gocache: reading requests: %w", err)
		}
		if req.Command == "close" {
			<-g.slots
			g.inFlight.Wait()
			res := &response{ID: req.ID}
			if err := g.close(); err != nil {
				res.Err = err.Error()
			}
			return g.respond(res)
		}
		g.inFlight.Add(1)
		go func() {
			defer g.inFlight.Done()
			defer func() { <-g.slots }()
			res := g.handle(req, body)
			res.ID = req.ID
			if res.Err != "" {
				res.Err = fmt.Sprintf("request %d: %s", req.ID, res.Err)
				g.logf("%s", res.Err)
			}
			if err := g.respond(res); err != nil {
				g.logf("answering request %d: %v", req.ID, err)
			}
		}()
	}
}

// respond writes res, whole, under outMu.
func (g *server) respond(res *response) error {
	g.outMu.Lock()
	defer g.outMu.Unlock()
	if err := g.enc.Encode(res); err != nil {
		return err
	}
	return g.out.Flush()
}

// close releases the outputs and closes the store (which makes a NoSync
// store's writes durable); it may run twice.
func (g *server) close() error {
	g.outputs.Lock()
	defer g.outputs.Unlock()
	for _, o := range g.outputs.m {
		if o.st != nil {
			o.st.Close()
			o.st = nil
		}
	}
	g.outputs.m = map[string]*output{}
	g.outputs.pinned = 0
	if g.tmp != "" {
		os.RemoveAll(g.tmp)
		g.tmp = ""
	}
	if g.c == nil {
		return nil
	}
	c := g.c
	g.c = nil
	if err := c.Close(); err != nil {
		return fmt.Errorf("gocache: %w", err)
	}
	return nil
}

// handle answers a get or a put; body is a put's body.
func (g *server) handle(req *request, body []byte) *response {
	switch req.Command {
	case "get":
		res, err := g.get(req.ActionID)
		if err != nil {
			return &response{Err: fmt.Sprintf("get %x: %v", req.ActionID, err)}
		}
		return res
	case "put":
		path, err := g.put(req.ActionID, req.OutputID, body)
		if err != nil {
			return &response{Err: fmt.Sprintf("put %x: %v", req.ActionID, err)}
		}
		return &response{DiskPath: path}
	}
	return &response{Err: fmt.Sprintf("unknown command %q (known: %s)", req.Command, strings.Join(knownCommands, ", "))}
}

func actionKey(id []byte) string { return "a/" + hex.EncodeToString(id) }
func outputKey(id []byte) string { return "o/" + hex.EncodeToString(id) }

func (g *server) get(actionID []byte) (*response, error) {
	if err := checkID("action", actionID); err != nil {
		return nil, err
	}
	if g.c == nil {
		return &response{Miss: true}, nil
	}
	v, err := g.c.Get(actionKey(actionID))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &response{Miss: true}, nil
	case errors.Is(err, dirstore.ErrCorrupt):
		g.logf("%v: a miss", err)
		return &response{Miss: true}, nil
	case err != nil:
		return nil, err
	}
	rec, err := decodeActionRecord(v)
	if err != nil {
		g.logf("action %x: %v: a miss", actionID, err)
		return &response{Miss: true}, nil
	}
	path, ok, err := g.output(rec.outputID, rec.size, nil)
	if err != nil {
		return nil, err
	}
	if !ok {
		return &response{Miss: true}, nil
	}
	t := rec.time
	return &response{OutputID: rec.outputID, Size: rec.size, Time: &t, DiskPath: path}, nil
}

func (g *server) put(actionID, outputID, body []byte) (string, error) {
	if err := checkID("action", actionID); err != nil {
		return "", err
	}
	if err := checkID("output", outputID); err != nil {
		return "", err
	}
	if body == nil {
		body = []byte{}
	}
	if g.c == nil {
		return g.putTemp(outputID, body)
	}
	path, _, err := g.output(outputID, int64(len(body)), body)
	if errors.Is(err, dirstore.ErrTooLarge) {
		// Larger than the cache may hold (-max): this build still needs
		// its DiskPath (go list -export fails without it), so it gets a
		// temporary file, and no action record.
		g.logf("output %x of %d bytes is larger than -max: not cached", outputID, len(body))
		return g.putTemp(outputID, body)
	}
	if err != nil {
		return "", err
	}
	// After the output: a store holding a prefix of the operations never
	// has the action without it.
	rec := actionRecord{outputID: outputID, size: int64(len(body)), time: time.Now()}
	if err := g.c.Set(actionKey(actionID), rec.encode()); err != nil {
		return "", err
	}
	return path, nil
}

// output returns the path of the output's file, if the store has it with
// size bytes; with a body (a put) it stores the body first if it does not.
// The file stays until close.
func (g *server) output(id []byte, size int64, body []byte) (path string, ok bool, err error) {
	key := outputKey(id)
	g.outputs.Lock()
	o := g.outputs.m[key]
	if o == nil {
		o = &output{}
		g.outputs.m[key] = o
	}
	g.outputs.Unlock()
	// One request at a time per output: two puts of one output must not
	// both write it, as the second would supersede the first's file.
	o.mu.Lock()
	defer o.mu.Unlock()
	if body != nil && mutation == mutRewriteOutput {
		o.path = "" // the seeded bug: write it again
	}
	if o.path != "" {
		if o.size != size {
			if body != nil {
				return "", false, fmt.Errorf("output %x is %d bytes here, the put has %d: %w", id, o.size, size, fs.ErrInvalid)
			}
			return "", false, nil
		}
		return o.path, true, nil
	}
	st, err := g.c.Open(key)
	if err == nil && body != nil && mutation == mutRewriteOutput {
		st.Close()
		err = fs.ErrNotExist
	}
	if err == nil {
		var fi fs.FileInfo
		if fi, err = st.Stat(); err == nil && fi.Size() != size {
			// Not handed out by this server: a put may replace it.
			st.Close()
			g.logf("output %x: %d bytes, want %d: a miss", id, fi.Size(), size)
			err = fs.ErrNotExist
		}
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, dirstore.ErrCorrupt) {
		return "", false, err
	}
	if err != nil {
		if body == nil {
			return "", false, nil
		}
		if err := g.c.Set(key, body); err != nil {
			return "", false, err
		}
		// Open applies the write buffer first if the value is in it: the
		// file is complete before its path is handed out.
		if st, err = g.c.Open(key); err != nil {
			return "", false, err
		}
	}
	o.path, o.size = st.Name(), size
	g.outputs.Lock()
	if g.outputs.pinned < maxPinned {
		g.outputs.pinned++
		o.st = st
	} else {
		st.Close()
		if !g.outputs.warned {
			g.outputs.warned = true
			fmt.Fprintf(g.stderr, "dirstore gocache: more than %d outputs handed out; later ones may be evicted before the go command is done with them\n", maxPinned)
		}
	}
	g.outputs.Unlock()
	return o.path, true, nil
}

// mutation seeds a bug the tests must catch; only tests set it.
var mutation int

const (
	mutNone = iota
	// mutRewriteOutput: a put of an output the store has writes it again,
	// superseding the file whose path was handed out.
	mutRewriteOutput
)

// putTemp is put without the store (there is none, or the output is larger
// than the whole cache may be): the body goes to a temporary file, removed
// at close.
func (g *server) putTemp(outputID, body []byte) (string, error) {
	g.outputs.Lock()
	defer g.outputs.Unlock()
	if g.tmp == "" {
		tmp, err := os.MkdirTemp("", "dirstore-gocache-")
		if err != nil {
			return "", fmt.Errorf("a temporary directory for outputs not cached: %w", err)
		}
		g.tmp = tmp
	}
	path := filepath.Join(g.tmp, hex.EncodeToString(outputID))
	if o := g.outputs.m[path]; o != nil {
		return path, nil
	}
	if err := os.WriteFile(path, body, 0o600); err != nil {
		return "", err
	}
	g.outputs.m[path] = &output{path: path, size: int64(len(body))}
	return path, nil
}

func checkID(what string, id []byte) error {
	if len(id) == 0 || len(id) > maxIDLen {
		return fmt.Errorf("%s ID of %d bytes, want 1 to %d: %w", what, len(id), maxIDLen, fs.ErrInvalid)
	}
	return nil
}
