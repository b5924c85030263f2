package backends_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dirstore/dirstore/backends"
	"github.com/dirstore/dirstore/backends/backendtest"
	"golang.org/x/sys/unix"
)

func TestSync(t *testing.T) {
	backendtest.TestBackend(t, func() (backends.Backend, error) { return backends.NewSync(), nil })
}

// uringOrSkip returns a uring engine, or skips with the probe's reason when
// io_uring does not work on this machine (or build).
func uringOrSkip(t *testing.T, opts *backends.Options) backends.Backend {
	t.Helper()
	b, err := backends.NewUring(opts)
	if err != nil {
		t.Skipf("io_uring unavailable, uring engine not tested: %v", err)
	}
	return b
}

func TestUring(t *testing.T) {
	for _, opts := range []backends.Options{
		{},
		{QueueDepth: 1, Rings: 1}, // everything waits in the user-space queue
		{QueueDepth: 4, Rings: 3}, // rings shared by more Ps than exist
		{NoFastPath: true},        // every operation through the ring
		{NoFastPath: true, QueueDepth: 2},
		{InlineWriters: -1}, // buffered writes through io-wq
		{InlineWriters: 1},
	} {
		name := fmt.Sprintf("depth=%d,rings=%d,nofastpath=%t,inline=%d", opts.QueueDepth, opts.Rings, opts.NoFastPath, opts.InlineWriters)
		t.Run(name, func(t *testing.T) {
			uringOrSkip(t, &opts).Close()
			backendtest.TestBackend(t, func() (backends.Backend, error) { return backends.NewUring(&opts) })
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	_, err := backends.NewUring(&backends.Options{QueueDepth: -1, Rings: 5000, MaxWorkers: -2})
	if err == nil {
		t.Fatal("invalid options accepted")
	}
	for _, field := range []string{"QueueDepth", "Rings", "MaxWorkers"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not mention %s", err, field)
		}
	}
	if _, err := backends.New("aio", nil); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("New(aio) = %v, want ErrUnsupported", err)
	}
}

func TestDefault(t *testing.T) {
	b := backends.Default()
	info := backends.Info()
	t.Logf("Default: %v", info)
	if b.Name() != info.Name {
		t.Errorf("Default().Name() = %q, Info().Name = %q", b.Name(), info.Name)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close of the shared engine = %v", err)
	}
	if _, err := b.ReadAt(-1, make([]byte, 1), 0, 0); !errors.Is(err, unix.EBADF) {
		t.Errorf("shared engine after Close: %v, want EBADF (Close must be a no-op)", err)
	}
	if probe, err := backends.NewUring(nil); err == nil {
		probe.Close()
		if info.Name != "uring" && !info.Forced {
			t.Errorf("io_uring works, but Default chose %v", info)
		}
	} else if info.Name == "uring" || info.Reason == "" {
		t.Errorf("io_uring fails (%v), but Default reports %v", err, info)
	}
}

func TestChoose(t *testing.T) {
	check := func(t *testing.T, env, wantName string, wantForced bool, wantReason ...string) {
		t.Helper()
		b, info := backends.Choose(env)
		defer func() {
			if c, ok := b.(interface{ Close() error }); ok {
				c.Close() // no-op: the chosen engine is shared
			}
		}()
		if info.Name != wantName || b.Name() != wantName || info.Forced != wantForced {
			t.Errorf("Choose(%q) = %v, want engine %s forced %t", env, info, wantName, wantForced)
		}
		if info.Async != (wantName == "uring") {
			t.Errorf("Choose(%q): Async = %t", env, info.Async)
		}
		for _, w := range wantReason {
			if !strings.Contains(info.Reason, w) {
				t.Errorf("Choose(%q): reason %q does not mention %q", env, info.Reason, w)
			}
		}
	}
	t.Run("sync", func(t *testing.T) { check(t, "sync", "sync", true, "DIRSTORE_BACKEND=sync") })

	t.Run("setup fails", func(t *testing.T) {
		restore := backends.FailUringSetup(fmt.Errorf("io_uring_setup: %w", unix.EPERM))
		defer restore()
		check(t, "", "sync", false, "io_uring unavailable", "operation not permitted")
		check(t, "uring", "sync", false, "DIRSTORE_BACKEND=uring", "operation not permitted")
		check(t, "bogus", "sync", false, `ignored DIRSTORE_BACKEND="bogus"`, "io_uring unavailable")
	})

	if _, err := backends.NewUring(nil); err != nil {
		t.Logf("io_uring unavailable, automatic choice of uring not tested: %v", err)
		return
	}
	t.Run("auto", func(t *testing.T) { check(t, "", "uring", false) })
	t.Run("uring", func(t *testing.T) { check(t, "uring", "uring", true) })
	t.Run("bogus", func(t *testing.T) { check(t, "bogus", "uring", false, `ignored DIRSTORE_BACKEND="bogus"`) })
}
