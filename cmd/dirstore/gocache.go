package main

// "dirstore gocache DIR": a GOCACHEPROG server, so that the go command keeps
// its build cache in a Store.
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
// A value's file never changes: a new value gets a new file, and the Store
// retires the superseded one in the background, removing it or keeping it as
// a spare to write the next value over. So the file of a path handed out must
// never be superseded while the go command may read it: the server never
// overwrites an output it has handed out (the same output ID is the same
// body: a second put of it writes nothing), and it keeps each handed-out
// output open as a Store.Open Stream until "close": an open Stream pins its
// file, which the Store then never reuses as a spare. (Stream.Name is the
// value file's path: that is the DiskPath.)
//
// A NoSync store keeps small values in its write buffer, with no file yet.
// The server opens the Stream after the Set: Store.Open applies the write
// buffer first when the key is in it, so the file is complete before the
// response names it. The write buffer stays on, because the action records,
// which are never handed out as files, are tiny and gain from it.

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
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
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dirstore/dirstore"
)

const gocacheUsage = `usage: dirstore gocache [-max SIZE] [-sync] [-v] DIR

gocache serves the go command's build cache from the store in DIR (created if
missing) over the GOCACHEPROG protocol:

    GOCACHEPROG="dirstore gocache $HOME/.cache/dirstore-go" go build ./...

Flags:
  -max SIZE  bound the cache to SIZE bytes (512MiB, 10GB, 2G; K, M, G and T
             alone are powers of 1024)
  -sync      fsync every entry (default: none, like the go command's own
             cache; a crash may lose the latest entries, never tear one)
  -v         log the store's recovery and every failed request on standard error

A DIR in use by another gocache server (another go command running at the
same time) is not shared: this go command then builds without a cache, and
says so on standard error.
`

// gocacheRequest is cacheprog.Request as it arrives (the body follows on
// its own line).
type gocacheRequest struct {
	ID       int64
	Command  string
	ActionID []byte `json:",omitempty"`
	OutputID []byte `json:",omitempty"`
	BodySize int64  `json:",omitempty"`
}

// gocacheResponse is cacheprog.Response.
type gocacheResponse struct {
	ID            int64
	Err           string     `json:",omitempty"`
	KnownCommands []string   `json:",omitempty"`
	Miss          bool       `json:",omitempty"`
	OutputID      []byte     `json:",omitempty"`
	Size          int64      `json:",omitempty"`
	Time          *time.Time `json:",omitempty"`
	DiskPath      string     `json:",omitempty"`
}

const (
	// maxIDLen bounds action and output IDs (the go command's are 32 bytes).
	maxIDLen = 64
	// maxRequestLine bounds a request line without its body: the go
	// command's are about 200 bytes.
	maxRequestLine = 64 << 10
	// maxPinned bounds the outputs kept open until close, one descriptor
	// each. An output beyond it is still never overwritten by this server,
	// only no longer pinned against the Store's reuse of files.
	maxPinned = 4096
)

func (c *cli) gocache(args []string) error {
	flags := flag.NewFlagSet("gocache", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.Usage = func() {}
	maxArg := flags.String("max", "", "")
	syncFlag := flags.Bool("sync", false, "")
	verbose := flags.Bool("v", false, "")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(c.stdout, gocacheUsage)
			return nil
		}
		return usagef("gocache: %v", err)
	}
	if flags.NArg() != 1 {
		return usagef("usage: dirstore gocache [-max SIZE] [-sync] [-v] DIR")
	}
	// The go command runs the server in its own working directory, and
	// DiskPath must be absolute.
	dir, err := filepath.Abs(flags.Arg(0))
	if err != nil {
		return err
	}
	opts := dirstore.Options{NoSync: !*syncFlag}
	if *maxArg != "" {
		max, err := parseSize(*maxArg)
		if err != nil {
			return usagef("gocache: -max: %v", err)
		}
		if err := setMaxBytes(&opts, max); err != nil {
			return err
		}
	}
	logf := func(string, ...any) {}
	if *verbose {
		logf = func(format string, args ...any) {
			fmt.Fprintf(c.stderr, "dirstore gocache: "+format+"\n", args...)
		}
		opts.Logger = slog.New(slog.NewTextHandler(c.stderr, nil))
	}
	g := &gocacheServer{logf: logf, stderr: c.stderr}
	s, err := dirstore.Open(dir, &opts)
	switch {
	case errors.Is(err, dirstore.ErrLocked):
		// Another go command's server has DIR. Waiting for it could
		// deadlock (a test that runs the go command inherits GOCACHEPROG
		// from the go command running it), so this one builds uncached.
		tmp, terr := os.MkdirTemp("", "dirstore-gocache-")
		if terr != nil {
			return fmt.Errorf("gocache: %w (and no temporary directory for an uncached build: %w)", err, terr)
		}
		defer os.RemoveAll(tmp)
		fmt.Fprintf(c.stderr, "dirstore gocache: %s is in use by another server; this go command builds without the cache\n", dir)
		g.tmp = tmp
	case err != nil:
		return fmt.Errorf("gocache: %w", err)
	default:
		g.s = s
	}
	return g.serve(c.stdin, c.stdout)
}

// setMaxBytes is the one place -max reaches the Store's options.
//
// TODO(cache mode): set opts.MaxBytes = max once dirstore.Options has it;
// until then -max is refused, not ignored. When wiring it, check that
// eviction leaves alone the files of values open as Streams (the outputs
// this server pinned): the go command reads a DiskPath at any time until
// close, so an evicted output would fail the build, not just miss.
func setMaxBytes(opts *dirstore.Options, max int64) error {
	_ = opts
	return fmt.Errorf("gocache: -max %d: not supported yet (it needs the Store's cache mode, Options.MaxBytes): %w", max, errors.ErrUnsupported)
}

// gocacheServer is one run of the server: one go command.
type gocacheServer struct {
	s      *dirstore.Store // nil: uncached, in tmp
	tmp    string
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
		m      map[string]*gocacheOutput // by output key
		pinned int
	}
}

// gocacheOutput is an output this server has looked up or written.
type gocacheOutput struct {
	mu   sync.Mutex
	path string // "" until known
	size int64
	st   *dirstore.Stream // pins path's file; nil beyond maxPinned
}

var knownCommands = []string{"get", "put", "close"}

// serve answers the requests on in until "close" or the end of in.
func (g *gocacheServer) serve(in io.Reader, out io.Writer) (err error) {
	g.out = bufio.NewWriter(out)
	g.enc = json.NewEncoder(g.out)
	g.slots = make(chan struct{}, 4*runtime.GOMAXPROCS(0)+4)
	g.outputs.m = map[string]*gocacheOutput{}
	defer func() {
		g.inFlight.Wait()
		if cerr := g.close(); err == nil {
			err = cerr
		}
	}()
	if err := g.respond(&gocacheResponse{KnownCommands: knownCommands}); err != nil {
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
			if err := g.respond(&gocacheResponse{ID: be.id, Err: be.Error()}); err != nil {
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
			res := &gocacheResponse{ID: req.ID}
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
func (g *gocacheServer) respond(res *gocacheResponse) error {
	g.outMu.Lock()
	defer g.outMu.Unlock()
	if err := g.enc.Encode(res); err != nil {
		return err
	}
	return g.out.Flush()
}

// close releases the outputs and closes the store (which makes a NoSync
// store's writes durable); it may run twice.
func (g *gocacheServer) close() error {
	g.outputs.Lock()
	defer g.outputs.Unlock()
	for _, o := range g.outputs.m {
		if o.st != nil {
			o.st.Close()
			o.st = nil
		}
	}
	g.outputs.m = map[string]*gocacheOutput{}
	g.outputs.pinned = 0
	if g.s == nil {
		return nil
	}
	s := g.s
	g.s = nil
	if err := s.Close(); err != nil {
		return fmt.Errorf("gocache: %w", err)
	}
	return nil
}

// handle answers a get or a put; body is a put's body.
func (g *gocacheServer) handle(req *gocacheRequest, body []byte) *gocacheResponse {
	switch req.Command {
	case "get":
		res, err := g.get(req.ActionID)
		if err != nil {
			return &gocacheResponse{Err: fmt.Sprintf("get %x: %v", req.ActionID, err)}
		}
		return res
	case "put":
		path, err := g.put(req.ActionID, req.OutputID, body)
		if err != nil {
			return &gocacheResponse{Err: fmt.Sprintf("put %x: %v", req.ActionID, err)}
		}
		return &gocacheResponse{DiskPath: path}
	}
	return &gocacheResponse{Err: fmt.Sprintf("unknown command %q (known: %s)", req.Command, strings.Join(knownCommands, ", "))}
}

func actionKey(id []byte) string { return "a/" + hex.EncodeToString(id) }
func outputKey(id []byte) string { return "o/" + hex.EncodeToString(id) }

func (g *gocacheServer) get(actionID []byte) (*gocacheResponse, error) {
	if err := checkID("action", actionID); err != nil {
		return nil, err
	}
	if g.s == nil {
		return &gocacheResponse{Miss: true}, nil
	}
	v, err := g.s.Get(actionKey(actionID))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &gocacheResponse{Miss: true}, nil
	case errors.Is(err, dirstore.ErrCorrupt):
		g.logf("%v: a miss", err)
		return &gocacheResponse{Miss: true}, nil
	case err != nil:
		return nil, err
	}
	rec, err := decodeActionRecord(v)
	if err != nil {
		g.logf("action %x: %v: a miss", actionID, err)
		return &gocacheResponse{Miss: true}, nil
	}
	path, ok, err := g.output(rec.outputID, rec.size, nil)
	if err != nil {
		return nil, err
	}
	if !ok {
		return &gocacheResponse{Miss: true}, nil
	}
	t := rec.time
	return &gocacheResponse{OutputID: rec.outputID, Size: rec.size, Time: &t, DiskPath: path}, nil
}

func (g *gocacheServer) put(actionID, outputID, body []byte) (string, error) {
	if err := checkID("action", actionID); err != nil {
		return "", err
	}
	if err := checkID("output", outputID); err != nil {
		return "", err
	}
	if body == nil {
		body = []byte{}
	}
	if g.s == nil {
		return g.putTemp(outputID, body)
	}
	path, _, err := g.output(outputID, int64(len(body)), body)
	if err != nil {
		return "", err
	}
	// After the output: a store holding a prefix of the operations never
	// has the action without it.
	rec := actionRecord{outputID: outputID, size: int64(len(body)), time: time.Now()}
	if err := g.s.Set(actionKey(actionID), rec.encode()); err != nil {
		return "", err
	}
	return path, nil
}

// output returns the path of the output's file, if the store has it with
// size bytes; with a body (a put) it stores the body first if it does not.
// The file stays until close.
func (g *gocacheServer) output(id []byte, size int64, body []byte) (path string, ok bool, err error) {
	key := outputKey(id)
	g.outputs.Lock()
	o := g.outputs.m[key]
	if o == nil {
		o = &gocacheOutput{}
		g.outputs.m[key] = o
	}
	g.outputs.Unlock()
	// One request at a time per output: two puts of one output must not
	// both write it, as the second would supersede the first's file.
	o.mu.Lock()
	defer o.mu.Unlock()
	if body != nil && gocacheMutation == mutRewriteOutput {
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
	st, err := g.s.Open(key)
	if err == nil && body != nil && gocacheMutation == mutRewriteOutput {
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
		if err := g.s.Set(key, body); err != nil {
			return "", false, err
		}
		// Open applies the write buffer first if the value is in it: the
		// file is complete before its path is handed out.
		if st, err = g.s.Open(key); err != nil {
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
	}
	g.outputs.Unlock()
	return o.path, true, nil
}

// gocacheMutation seeds a bug the tests must catch; only tests set it.
var gocacheMutation int

const (
	mutNone = iota
	// mutRewriteOutput: a put of an output the store has writes it again,
	// superseding the file whose path was handed out.
	mutRewriteOutput
)

// putTemp is put without a store: the body goes to a file of tmp, removed
// at close.
func (g *gocacheServer) putTemp(outputID, body []byte) (string, error) {
	path := filepath.Join(g.tmp, hex.EncodeToString(outputID))
	g.outputs.Lock()
	defer g.outputs.Unlock()
	if o := g.outputs.m[path]; o != nil {
		return path, nil
	}
	if err := os.WriteFile(path, body, 0o600); err != nil {
		return "", err
	}
	g.outputs.m[path] = &gocacheOutput{path: path, size: int64(len(body))}
	return path, nil
}

func checkID(what string, id []byte) error {
	if len(id) == 0 || len(id) > maxIDLen {
		return fmt.Errorf("%s ID of %d bytes, want 1 to %d: %w", what, len(id), maxIDLen, fs.ErrInvalid)
	}
	return nil
}

// actionRecord is an action's value: its output, that output's size and
// when it was put. Encoded as the version byte actionRecordV1, the output
// ID's length (one byte) and bytes, the size and the time in Unix
// nanoseconds (8 bytes each, big-endian). A change of layout takes a new
// version byte; older records stay readable.
type actionRecord struct {
	outputID []byte
	size     int64
	time     time.Time
}

const actionRecordV1 = 1

var errBadRecord = fmt.Errorf("action record is not valid: %w", dirstore.ErrCorrupt)

func (r *actionRecord) encode() []byte {
	b := make([]byte, 0, 2+len(r.outputID)+16)
	b = append(b, actionRecordV1, byte(len(r.outputID)))
	b = append(b, r.outputID...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.size))
	return binary.BigEndian.AppendUint64(b, uint64(r.time.UnixNano()))
}

func decodeActionRecord(b []byte) (actionRecord, error) {
	if len(b) < 2 || b[0] != actionRecordV1 {
		return actionRecord{}, errBadRecord
	}
	n := int(b[1])
	if n == 0 || n > maxIDLen || len(b) != 2+n+16 {
		return actionRecord{}, errBadRecord
	}
	r := actionRecord{outputID: bytes.Clone(b[2 : 2+n])}
	r.size = int64(binary.BigEndian.Uint64(b[2+n:]))
	r.time = time.Unix(0, int64(binary.BigEndian.Uint64(b[2+n+8:])))
	if r.size < 0 {
		return actionRecord{}, errBadRecord
	}
	return r, nil
}

// badRequest is a request the server cannot serve, with its ID when the
// request line gave one (0 when it did not).
type badRequest struct {
	id   int64
	line int // of the input, from 1
	msg  string
}

func (e *badRequest) Error() string {
	if e.id != 0 {
		return fmt.Sprintf("request %d (line %d): %s", e.id, e.line, e.msg)
	}
	return fmt.Sprintf("line %d: %s", e.line, e.msg)
}

// requestReader reads requests and their bodies. Request lines are JSON
// objects and body lines JSON strings, so after a bad request it finds the
// next request by the first byte of the lines: a malformed request line
// costs that request (and its body line, skipped), never the stream.
type requestReader struct {
	br   *bufio.Reader
	line int
}

var idField = regexp.MustCompile(`"ID"\s*:\s*(\d+)`)

// next returns the next request and, for one with a body, the body.
// Errors are a *badRequest for a request to answer with an error (and
// read past), io.EOF at the end, or a read error.
func (r *requestReader) next() (*gocacheRequest, []byte, error) {
	if err := r.skipSpace(); err != nil {
		return nil, nil, err
	}
	if c, _ := r.br.Peek(1); c[0] == '"' {
		r.line++
		n, err := r.skipLine()
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, nil, err
		}
		return nil, nil, &badRequest{line: r.line, msg: fmt.Sprintf("a body line (%d bytes) with no request before it, skipped", n)}
	}
	r.line++
	line, err := r.readLine()
	if err != nil {
		return nil, nil, err
	}
	req := new(gocacheRequest)
	if err := json.Unmarshal(line, req); err != nil {
		be := &badRequest{line: r.line, msg: fmt.Sprintf("malformed request: %v", err)}
		if m := idField.FindSubmatch(line); m != nil {
			be.id, _ = strconv.ParseInt(string(m[1]), 10, 64)
		}
		return nil, nil, be
	}
	bad := func(format string, args ...any) (*gocacheRequest, []byte, error) {
		return nil, nil, &badRequest{id: req.ID, line: r.line, msg: fmt.Sprintf(format, args...)}
	}
	if req.BodySize < 0 {
		return bad("negative BodySize %d", req.BodySize)
	}
	if req.BodySize == 0 {
		return req, nil, nil
	}
	// The go command leaves an empty line between a request and its body.
	if err := r.skipSpace(); err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	if c, err := r.br.Peek(1); err != nil || c[0] != '"' {
		// The next line is not a body: leave it to be read as a request.
		return bad("BodySize is %d but no body line follows", req.BodySize)
	}
	r.br.Discard(1)
	r.line++
	body, err := r.readBody(req.BodySize)
	if err != nil {
		if errors.Is(err, errBadBody) {
			return bad("%v", err)
		}
		return nil, nil, err
	}
	switch req.Command {
	case "put":
		return req, body, nil
	case "get", "close":
		return bad("a %s request has no body, this one has %d bytes", req.Command, req.BodySize)
	}
	return bad("unknown command %q (known: %s)", req.Command, strings.Join(knownCommands, ", "))
}

// skipSpace reads past white space and empty lines.
func (r *requestReader) skipSpace() error {
	for {
		c, err := r.br.ReadByte()
		if err != nil {
			return err
		}
		switch c {
		case '\n':
			r.line++
		case ' ', '\t', '\r':
		default:
			return r.br.UnreadByte()
		}
	}
}

// readLine reads the rest of a request line, without its newline; a line
// longer than maxRequestLine is skipped and a *badRequest.
func (r *requestReader) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(line)+len(chunk) > maxRequestLine {
			n := len(line) + len(chunk) - 1
			if err == bufio.ErrBufferFull { // the newline is still ahead
				more, err := r.skipLine()
				if err != nil {
					return nil, err
				}
				n += 1 + more
			}
			return nil, &badRequest{line: r.line, msg: fmt.Sprintf("request line of %d bytes, longer than %d", n, maxRequestLine)}
		}
		line = append(line, chunk...)
		if err == nil {
			return bytes.TrimRight(line, "\r\n"), nil
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(bytes.TrimSpace(line)) > 0 {
			return line, nil // a last request without its newline
		}
		return nil, err
	}
}

// skipLine reads past the next newline, returning the bytes before it.
func (r *requestReader) skipLine() (int, error) {
	n := 0
	for {
		chunk, err := r.br.ReadSlice('\n')
		n += len(chunk)
		if err == nil {
			return n - 1, nil
		}
		if err != bufio.ErrBufferFull {
			return n, err
		}
	}
}

var errBadBody = errors.New("bad body")

// readBody reads a body after its opening quote, through the end of its
// line, and checks it has size bytes.
func (r *requestReader) readBody(size int64) ([]byte, error) {
	q := &quotedReader{br: r.br}
	dec := base64.NewDecoder(base64.StdEncoding, q)
	var buf bytes.Buffer
	buf.Grow(int(min(size, 64<<20))) // the rest as it comes: size is not trusted
	n, err := io.CopyN(&buf, dec, size)
	extra := int64(0)
	if err == nil {
		extra, err = io.Copy(io.Discard, dec)
	}
	if q.err != nil {
		return nil, q.err // reading the input failed
	}
	var msg string
	switch {
	case err != nil && !errors.Is(err, io.EOF):
		msg = fmt.Sprintf("body is not valid base64: %v", err)
	case n < size:
		msg = fmt.Sprintf("body size mismatch: BodySize is %d, the body has %d bytes", size, n)
	case extra > 0:
		msg = fmt.Sprintf("body size mismatch: BodySize is %d, the body has %d bytes", size, size+extra)
	}
	// Read past the closing quote (or what is left of a bad body) and
	// the newline.
	junk, rerr := r.skipRest()
	if rerr != nil && !errors.Is(rerr, io.EOF) {
		return nil, rerr
	}
	if msg == "" && !q.closed {
		msg = "body line has no closing quote"
	}
	if msg == "" && junk {
		msg = "body line has bytes after its closing quote"
	}
	if msg != "" {
		return nil, fmt.Errorf("%w: %s", errBadBody, msg)
	}
	return buf.Bytes(), nil
}

// skipRest reads past the next newline and says whether the bytes before
// it held anything but white space.
func (r *requestReader) skipRest() (junk bool, err error) {
	for {
		chunk, err := r.br.ReadSlice('\n')
		junk = junk || len(bytes.TrimSpace(chunk)) > 0
		if err != bufio.ErrBufferFull {
			return junk, err
		}
	}
}

// quotedReader reads a JSON string's content up to its closing quote
// (consumed) or, for a line with none, up to the newline (left).
type quotedReader struct {
	br     *bufio.Reader
	closed bool  // the closing quote was read
	err    error // reading br failed
}

func (q *quotedReader) Read(p []byte) (int, error) {
	if q.closed || len(p) == 0 {
		return 0, io.EOF
	}
	buf, err := q.br.Peek(1)
	if err != nil {
		if !errors.Is(err, io.EOF) {
			q.err = err
		}
		return 0, io.EOF
	}
	buf, _ = q.br.Peek(q.br.Buffered())
	if i := bytes.IndexAny(buf, "\"\n"); i >= 0 {
		if i == 0 {
			if buf[0] == '"' {
				q.br.Discard(1)
				q.closed = true
			}
			return 0, io.EOF
		}
		buf = buf[:i]
	}
	n := copy(p, buf)
	q.br.Discard(n)
	return n, nil
}
