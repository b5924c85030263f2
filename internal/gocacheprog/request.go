package gocacheprog

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// request is cacheprog.Request as it arrives (the body follows on its own
// line).
type request struct {
	ID       int64
	Command  string
	ActionID []byte `json:",omitempty"`
	OutputID []byte `json:",omitempty"`
	BodySize int64  `json:",omitempty"`
}

// response is cacheprog.Response.
type response struct {
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
)

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
func (r *requestReader) next() (*request, []byte, error) {
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
	req := new(request)
	if err := json.Unmarshal(line, req); err != nil {
		be := &badRequest{line: r.line, msg: fmt.Sprintf("malformed request: %v", err)}
		if m := idField.FindSubmatch(line); m != nil {
			be.id, _ = strconv.ParseInt(string(m[1]), 10, 64)
		}
		return nil, nil, be
	}
	bad := func(format string, args ...any) (*request, []byte, error) {
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
