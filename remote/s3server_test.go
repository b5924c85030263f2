package remote_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"
)

// s3Server is a real S3-protocol server (gofakes3 over net/http) on a
// 127.0.0.1 port. Its objects live in memory, so that stopping and
// restarting the HTTP server keeps them, as a real service's outage would.
type s3Server struct {
	t       testing.TB
	handler http.Handler
	addr    string

	mu  sync.Mutex
	srv *http.Server
}

const testBucket = "dirstore-test"

func startS3(t testing.TB) *s3Server {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	faker := gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog()))
	s := &s3Server{t: t, handler: faker.Server()}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// start serves on s.addr (a fresh port the first time).
func (s *s3Server) start() {
	s.t.Helper()
	addr := s.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may take a moment to be free again
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	// gofakes3 logs a superfluous WriteHeader when a client gives up.
	srv := &http.Server{Handler: s.handler, ErrorLog: log.New(io.Discard, "", 0)}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(ln)
}

// stop closes the listener and every connection: requests in flight fail.
func (s *s3Server) stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

func (s *s3Server) url() string { return "http://" + s.addr }

// openS3Bucket opens the bucket at endpoint through gocloud's s3blob driver
// and the AWS SDK, which tries each request attempts times (0: the SDK's
// default, 3; -1: see below).
func openS3Bucket(t testing.TB, endpoint string, attempts int) *blob.Bucket {
	t.Helper()
	b, err := newS3Bucket(endpoint, attempts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func newS3Bucket(endpoint string, attempts int) (*blob.Bucket, error) {
	client := s3.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	}, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
		switch {
		case attempts > 0:
			o.RetryMaxAttempts = attempts
		case attempts < 0:
			// A flaky server: retry 5xx 5 times, without the SDK's retry
			// quota, which a burst of failures empties (then it stops
			// retrying until requests succeed again).
			o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = 5
				so.RateLimiter = ratelimit.None
			})
		}
	})
	return s3blob.OpenBucket(context.Background(), client, testBucket, nil)
}

// faultProxy is a reverse proxy in front of a server that adds latency to
// every request, and can fail requests with 503 or stall responses.
type faultProxy struct {
	t       testing.TB
	srv     *http.Server
	addr    string
	latency atomic.Int64 // nanoseconds added before each request
	fail    atomic.Int64 // > 0: every fail-th request gets a 503
	slow    atomic.Int64 // > 0: every slow-th request waits this long first (ns in slowFor)
	slowFor atomic.Int64
	count   atomic.Int64 // requests seen
	gets    atomic.Int64 // GET requests seen
}

func startProxy(t testing.TB, target string) *faultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	// Keep connections to the server alive as a client of S3 does (the
	// default keeps 2 idle per host and dials again beyond that).
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	rp.Transport = tr
	rp.ErrorLog = nil
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		w.WriteHeader(http.StatusBadGateway)
	}
	p := &faultProxy{t: t}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.srv = &http.Server{ErrorLog: log.New(io.Discard, "", 0), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := p.count.Add(1)
		if r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "" {
			p.gets.Add(1)
		}
		if d := p.latency.Load(); d > 0 {
			time.Sleep(time.Duration(d))
		}
		if f := p.fail.Load(); f > 0 && n%f == 0 {
			http.Error(w, "injected failure", http.StatusServiceUnavailable)
			return
		}
		if sl := p.slow.Load(); sl > 0 && n%sl == 0 {
			time.Sleep(time.Duration(p.slowFor.Load()))
		}
		rp.ServeHTTP(w, r)
	})}
	go p.srv.Serve(ln)
	t.Cleanup(func() { p.srv.Close() })
	return p
}

func (p *faultProxy) url() string { return "http://" + p.addr }

var _ = errors.New
