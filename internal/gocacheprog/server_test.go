package gocacheprog

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dirstore/dirstore"
)

// gcServer is a server run in-process, with pipes for its
// standard input and output.
type gcServer struct {
	t      *testing.T
	in     *io.PipeWriter
	res    chan response // read in the background, as the go command does
	stderr *lockedBuffer
	exit   chan int
	got    map[int64]response // answered out of order, kept
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startGocache starts a server with args after "gocache" and reads its
// first response, which must list the commands.
func startGocache(t *testing.T, args ...string) *gcServer {
	t.Helper()
	return startTier(t, nil, args...)
}

// startTier is startGocache with a Tier.
func startTier(t *testing.T, tier Tier, args ...string) *gcServer {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	g := &gcServer{t: t, in: inW, res: make(chan response, 1000), stderr: &lockedBuffer{},
		exit: make(chan int, 1), got: map[int64]response{}}
	go func() {
		defer close(g.res)
		br := bufio.NewReader(outR)
		for {
			line, err := br.ReadBytes('\n')
			if err != nil {
				return
			}
			var res response
			if err := json.Unmarshal(line, &res); err != nil {
				res = response{ID: -1, Err: fmt.Sprintf("response %q: %v", line, err)}
			}
			g.res <- res
		}
	}()
	o, err := ParseArgs(args)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		code := 0
		if err := Run(o, tier, inR, outW, g.stderr); err != nil {
			fmt.Fprintf(g.stderr, "%v\n", err)
			code = 1
		}
		outW.Close()
		inR.Close()
		g.exit <- code
	}()
	t.Cleanup(func() {
		inW.Close()
		<-g.exit
	})
	res := g.read()
	if res.ID != 0 || strings.Join(res.KnownCommands, ",") != "get,put,close" {
		t.Fatalf("first response %+v, want ID 0 with get, put and close", res)
	}
	return g
}

func (g *gcServer) read() response {
	g.t.Helper()
	select {
	case res, ok := <-g.res:
		if !ok {
			g.t.Fatalf("the server closed its output (stderr: %s)", g.stderr)
		}
		if res.ID == -1 {
			g.t.Fatal(res.Err)
		}
		return res
	case <-time.After(time.Minute):
		g.t.Fatalf("no response in a minute (stderr: %s)", g.stderr)
	}
	panic("unreachable")
}

// wait returns the response to request id.
func (g *gcServer) wait(id int64) response {
	g.t.Helper()
	for {
		if res, ok := g.got[id]; ok {
			delete(g.got, id)
			return res
		}
		res := g.read()
		if _, dup := g.got[res.ID]; dup {
			g.t.Fatalf("two responses to request %d", res.ID)
		}
		g.got[res.ID] = res
	}
}

func (g *gcServer) send(raw string) {
	g.t.Helper()
	if _, err := io.WriteString(g.in, raw); err != nil {
		g.t.Fatalf("writing %.40q: %v", raw, err)
	}
}

// request writes req as the go command does: the JSON line, an empty line,
// and the body's line if it has one.
func (g *gcServer) request(req request, body []byte) {
	g.t.Helper()
	g.send(rawRequest(req, body))
}

func rawRequest(req request, body []byte) string {
	b, err := json.Marshal(req)
	if err != nil {
		panic(err)
	}
	raw := string(b) + "\n\n"
	if len(body) > 0 {
		raw += `"` + base64.StdEncoding.EncodeToString(body) + "\"\n"
	}
	return raw
}

func (g *gcServer) put(id int64, action string, body []byte) response {
	g.t.Helper()
	out := sha256.Sum256(body)
	g.request(request{ID: id, Command: "put", ActionID: actionID(action), OutputID: out[:], BodySize: int64(len(body))}, body)
	return g.wait(id)
}

func (g *gcServer) get(id int64, action string) response {
	g.t.Helper()
	g.request(request{ID: id, Command: "get", ActionID: actionID(action)}, nil)
	return g.wait(id)
}

// close sends "close" and waits for the response and the exit.
func (g *gcServer) close(id int64) {
	g.t.Helper()
	g.request(request{ID: id, Command: "close"}, nil)
	if res := g.wait(id); res.Err != "" {
		g.t.Fatalf("close: %s", res.Err)
	}
	if code := <-g.exit; code != 0 {
		g.t.Fatalf("exit %d after close; stderr: %s", code, g.stderr)
	}
	g.exit <- 0 // for the cleanup
}

func actionID(name string) []byte { h := sha256.Sum256([]byte("action:" + name)); return h[:] }

// wantFile checks that path is an absolute path to a file holding want.
func wantFile(t *testing.T, path string, want []byte) {
	t.Helper()
	if !filepath.IsAbs(path) {
		t.Errorf("DiskPath %q is not absolute", path)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("DiskPath: %v", err)
	} else if !bytes.Equal(got, want) {
		t.Errorf("DiskPath %s holds %d bytes %.20q, want %d bytes %.20q", path, len(got), got, len(want), want)
	}
}

// wantHit checks that res is a hit for body.
func wantHit(t *testing.T, res response, body []byte) {
	t.Helper()
	out := sha256.Sum256(body)
	if res.Err != "" || res.Miss || !bytes.Equal(res.OutputID, out[:]) || res.Size != int64(len(body)) || res.Time == nil {
		t.Fatalf("get = %+v, want a hit with output %x, size %d and a time", res, out[:4], len(body))
	}
	wantFile(t, res.DiskPath, body)
}

func TestGocacheProtocol(t *testing.T) {
	for _, mode := range []string{"nosync", "sync"} {
		t.Run(mode, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "cache")
			args := []string{dir}
			if mode == "sync" {
				args = []string{"-sync", dir}
			}
			g := startGocache(t, args...)
			if res := g.get(1, "x"); !res.Miss || res.Err != "" {
				t.Fatalf("get of an empty cache = %+v, want a miss", res)
			}
			small := []byte("a small output: it waits in a NoSync store's write buffer")
			big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: written at once
			start := time.Now()
			for i, body := range [][]byte{small, big, {}} {
				id := int64(10 + i)
				res := g.put(id, fmt.Sprint("a", i), body)
				if res.Err != "" || res.ID != id {
					t.Fatalf("put %d bytes = %+v", len(body), res)
				}
				// Complete when the response is sent.
				wantFile(t, res.DiskPath, body)
				if !strings.HasPrefix(res.DiskPath, dir+string(filepath.Separator)) {
					t.Errorf("DiskPath %s is not in %s", res.DiskPath, dir)
				}
				hit := g.get(id+10, fmt.Sprint("a", i))
				wantHit(t, hit, body)
				if hit.DiskPath != res.DiskPath {
					t.Errorf("get's DiskPath %s, put's %s", hit.DiskPath, res.DiskPath)
				}
				if hit.Time.Before(start.Add(-time.Second)) || hit.Time.After(time.Now()) {
					t.Errorf("get's Time %v, want about now", hit.Time)
				}
			}
			g.close(99)

			// A new server serves what the last one stored.
			g = startGocache(t, args...)
			wantHit(t, g.get(1, "a0"), small)
			wantHit(t, g.get(2, "a1"), big)
			wantHit(t, g.get(3, "a2"), nil)
			g.close(4)
		})
	}
}

// TestGocacheConcurrent: many requests in flight at once, answered in any
// order, each answered once and right.
func TestGocacheConcurrent(t *testing.T) {
	g := startGocache(t, filepath.Join(t.TempDir(), "cache"))
	const n = 200
	body := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, i*97%5000) }
	var raw strings.Builder
	for i := range n {
		b := body(i % 50) // outputs shared between actions
		out := sha256.Sum256(b)
		raw.WriteString(rawRequest(request{ID: int64(i + 1), Command: "put", ActionID: actionID(fmt.Sprint(i)), OutputID: out[:], BodySize: int64(len(b))}, b))
	}
	g.send(raw.String())
	paths := map[string]string{}
	for i := range n {
		res := g.wait(int64(i + 1))
		if res.Err != "" {
			t.Fatalf("put %d: %s", i, res.Err)
		}
		wantFile(t, res.DiskPath, body(i%50))
		key := string(body(i % 50))
		if p, ok := paths[key]; ok && p != res.DiskPath {
			t.Errorf("one output, two DiskPaths: %s and %s", p, res.DiskPath)
		}
		paths[key] = res.DiskPath
	}
	raw.Reset()
	for i := range n {
		raw.WriteString(rawRequest(request{ID: int64(1000 + i), Command: "get", ActionID: actionID(fmt.Sprint(i))}, nil))
	}
	g.send(raw.String())
	for i := range n {
		wantHit(t, g.wait(int64(1000+i)), body(i%50))
	}
	g.close(5000)
}

// TestGocacheDiskPathStays: a second put of an output (another action with
// the same output) leaves the file whose path was handed out as it was.
func TestGocacheDiskPathStays(t *testing.T) {
	for _, p := range diskPathProblems(t) {
		t.Error(p)
	}
}

// TestGocacheSeededRewriteOutput: the seeded bug of writing an output again
// is caught.
func TestGocacheSeededRewriteOutput(t *testing.T) {
	mutation = mutRewriteOutput
	defer func() { mutation = mutNone }()
	problems := diskPathProblems(t)
	if len(problems) == 0 {
		t.Fatal("the seeded bug (an output written again) was not caught")
	}
	t.Logf("caught: %q", problems)
}

func diskPathProblems(t *testing.T) (problems []string) {
	dir := filepath.Join(t.TempDir(), "cache")
	g := startGocache(t, dir)
	body := []byte("the same output of two actions")
	first := g.put(1, "one", body)
	second := g.put(2, "two", body)
	if second.DiskPath != first.DiskPath {
		problems = append(problems, fmt.Sprintf("the second put's DiskPath %s, the first's %s", second.DiskPath, first.DiskPath))
	}
	// Close removes every superseded file: the first path must still be
	// there (until close it must, and after, the store still holds it).
	g.close(3)
	if got, err := os.ReadFile(first.DiskPath); err != nil || !bytes.Equal(got, body) {
		problems = append(problems, fmt.Sprintf("after a second put of the output, its first DiskPath holds %q, %v", got, err))
	}
	return problems
}

func TestGocacheBadRequests(t *testing.T) {
	body := []byte("twelve bytes")
	out := sha256.Sum256(body)
	b64 := base64.StdEncoding.EncodeToString(body)
	putLine := func(id int64, size int64) string {
		b, _ := json.Marshal(request{ID: id, Command: "put", ActionID: actionID("k"), OutputID: out[:], BodySize: size})
		return string(b) + "\n\n"
	}
	for _, tc := range []struct {
		name string
		raw  string
		id   int64  // 0: no answer can name the request
		want string // in the error
	}{
		{"unknown command", `{"ID":7,"Command":"frob"}` + "\n", 7, `unknown command "frob"`},
		{"unknown command with a body", `{"ID":7,"Command":"put2","BodySize":12}` + "\n\n\"" + b64 + "\"\n", 7, `unknown command "put2"`},
		{"body too short", putLine(7, 13) + `"` + b64 + "\"\n", 7, "BodySize is 13, the body has 12 bytes"},
		{"body too long", putLine(7, 5) + `"` + b64 + "\"\n", 7, "BodySize is 5, the body has 12 bytes"},
		{"body not base64", putLine(7, 12) + "\"!!not base64!!\"\n", 7, "not valid base64"},
		{"body unterminated", putLine(7, 12) + `"` + b64 + "\n", 7, "no closing quote"},
		{"body with trailing bytes", putLine(7, 12) + `"` + b64 + "\"junk\n", 7, "after its closing quote"},
		{"no body line", putLine(7, 12), 7, "no body line follows"},
		{"get with a body", `{"ID":7,"Command":"get","ActionID":"AAAA","BodySize":12}` + "\n\n\"" + b64 + "\"\n", 7, "a get request has no body"},
		{"negative BodySize", `{"ID":7,"Command":"put","BodySize":-1}` + "\n", 7, "negative BodySize"},
		{"no action ID", `{"ID":7,"Command":"get"}` + "\n", 7, "action ID of 0 bytes"},
		{"long action ID", `{"ID":7,"Command":"get","ActionID":"` + base64.StdEncoding.EncodeToString(make([]byte, 65)) + `"}` + "\n", 7, "action ID of 65 bytes"},
		{"no output ID", `{"ID":7,"Command":"put","ActionID":"AAAA"}` + "\n", 7, "output ID of 0 bytes"},
		{"malformed JSON with an ID", `{"ID":7,"Command":"get",` + "\n", 7, "malformed request"},
		{"wrong type", `{"ID":7,"Command":"get","ActionID":12}` + "\n", 7, "malformed request"},
		{"malformed JSON without an ID", `{"Command":get}` + "\n", 0, "malformed request"},
		{"malformed JSON and its body", `{"Command":"put","BodySize":12` + "\n\n\"" + b64 + "\"\n", 0, "a body line (18 bytes) with no request before it"},
		{"garbage", "hello\n", 0, "malformed request"},
		{"long line", strings.Repeat("x", maxRequestLine+10) + "\n", 0, "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "cache")
			g := startGocache(t, dir)
			g.send(tc.raw)
			// The server keeps serving: a good request after the bad one.
			res := g.put(8, "after", body)
			if res.Err != "" {
				t.Fatalf("a put after the bad request: %s", res.Err)
			}
			wantFile(t, res.DiskPath, body)
			if tc.id != 0 {
				res := g.wait(tc.id)
				if !strings.Contains(res.Err, tc.want) || !strings.Contains(res.Err, fmt.Sprint("request ", tc.id)) {
					t.Errorf("response %+v, want an error naming the request and saying %q", res, tc.want)
				}
			} else if !strings.Contains(g.stderr.String(), tc.want) {
				t.Errorf("stderr %q does not say %q", g.stderr, tc.want)
			}
			wantHit(t, g.get(9, "after"), body)
			g.close(10)
			if len(g.got) != 0 {
				t.Errorf("unexpected responses: %+v", g.got)
			}
		})
	}
}

// TestGocacheLocked: a second server on a directory in use serves without
// the cache instead of failing the go command or waiting for the first.
func TestGocacheLocked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	first := startGocache(t, dir)
	body := []byte("stored by the first server")
	first.put(1, "a", body)

	second := startGocache(t, dir)
	if res := second.get(1, "a"); !res.Miss {
		t.Errorf("get from the uncached server = %+v, want a miss", res)
	}
	res := second.put(2, "b", []byte("not cached"))
	if res.Err != "" {
		t.Fatalf("put to the uncached server: %s", res.Err)
	}
	wantFile(t, res.DiskPath, []byte("not cached"))
	if !strings.Contains(second.stderr.String(), "without the cache") {
		t.Errorf("stderr %q does not say the build is uncached", second.stderr)
	}
	second.close(3)
	if _, err := os.Stat(res.DiskPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the uncached server left %s: %v", res.DiskPath, err)
	}
	wantHit(t, first.get(4, "a"), body)
	first.close(5)
}

// TestGocacheCorruptRecord: an action record that does not decode is a
// miss, and a put replaces it.
func TestGocacheCorruptRecord(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	s, err := dirstore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set(actionKey(actionID("a")), []byte{9, 9, 9}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	g := startGocache(t, dir)
	if res := g.get(1, "a"); !res.Miss || res.Err != "" {
		t.Errorf("get of a corrupt record = %+v, want a miss", res)
	}
	g.put(2, "a", []byte("v"))
	wantHit(t, g.get(3, "a"), []byte("v"))
	g.close(4)
}

// TestActionRecordFormat pins the on-disk layout of an action record,
// version 1.
func TestActionRecordFormat(t *testing.T) {
	const fixture = "01" + "04" + "deadbeef" + "0000000000000400" + "1700000000000000"
	b, _ := hex.DecodeString(fixture)
	r, err := decodeActionRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(r.outputID) != "deadbeef" || r.size != 1024 || r.time.UnixNano() != 0x1700000000000000 {
		t.Errorf("decoded %+v", r)
	}
	if got := hex.EncodeToString(r.encode()); got != fixture {
		t.Errorf("encoded %s, want %s", got, fixture)
	}
	for _, bad := range []string{"", "02", "0104deadbeef", "0100" + "0000000000000400" + "1700000000000000",
		"01" + "04" + "deadbeef" + "8000000000000000" + "1700000000000000", fixture + "00"} {
		b, _ := hex.DecodeString(bad)
		if _, err := decodeActionRecord(b); !errors.Is(err, dirstore.ErrCorrupt) {
			t.Errorf("decode %s: %v, want ErrCorrupt", bad, err)
		}
	}
}

// TestGocacheMax: a bounded cache evicts during a build, yet every DiskPath
// it handed out holds its output until close, as the go command may read
// it at any time until then; the store stays within its budget.
func TestGocacheMax(t *testing.T) {
	for _, mode := range []string{"nosync", "sync"} {
		t.Run(mode, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "cache")
			const max = 300 << 10
			args := []string{"-max", "300KiB", dir}
			if mode == "sync" {
				args = append([]string{"-sync"}, args...)
			}
			g := startGocache(t, args...)
			body := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, 100<<10) }
			var paths []string
			const n = 12
			for i := range n {
				res := g.put(int64(i+1), fmt.Sprint("a", i), body(i))
				if res.Err != "" {
					t.Fatalf("put %d: %s", i, res.Err)
				}
				paths = append(paths, res.DiskPath)
			}
			// The first outputs were evicted: their actions miss now...
			if res := g.get(100, "a0"); !res.Miss {
				t.Fatalf("get of the first action after %d puts of 100 KiB into 300 KiB = %+v, want a miss", n, res)
			}
			wantHit(t, g.get(101, fmt.Sprint("a", n-1)), body(n-1))
			// ...but the go command still reads them where it was told.
			for i, p := range paths {
				wantFile(t, p, body(i))
			}
			// An output larger than the whole cache is served from a
			// temporary file for this build, and not cached.
			huge := bytes.Repeat([]byte("h"), 400<<10)
			res := g.put(300, "huge", huge)
			if res.Err != "" {
				t.Fatalf("put of an output larger than -max: %s", res.Err)
			}
			wantFile(t, res.DiskPath, huge)
			if res := g.get(301, "huge"); !res.Miss {
				t.Errorf("get of an output larger than -max = %+v, want a miss", res)
			}
			g.close(200)
			if _, err := os.Stat(res.DiskPath); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the temporary file of an output not cached outlived close: %v", err)
			}
			s, err := dirstore.Open(dir, &dirstore.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if st := s.Stats(); st.Bytes > max {
				t.Errorf("after close the store holds %d bytes, more than -max %d", st.Bytes, max)
			}
			if _, err := os.Stat(paths[0]); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("an evicted output's file is still there after close: %v", err)
			}
		})
	}
}
