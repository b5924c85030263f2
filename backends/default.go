package backends

import (
	"fmt"
	"os"
	"strings"
	"sync"
)

// EnvBackend names the environment variable that forces Default's engine:
// "sync" or "uring". Empty or "auto" means the best engine that works.
const EnvBackend = "DIRSTORE_BACKEND"

// EngineInfo describes the engine Default chose.
type EngineInfo struct {
	// Name is the engine in use: "sync" or "uring".
	Name string
	// Async is true when waiting for the kernel does not hold an OS thread
	// per request, so the thread count stays flat at any concurrency.
	Async bool
	// Forced is true when EnvBackend chose the engine.
	Forced bool
	// Reason says why a better engine is not in use; it is empty when the
	// best engine is.
	Reason string
	// Rings, QueueDepth and FastPath describe a uring engine.
	Rings      int
	QueueDepth int
	FastPath   bool
}

func (i EngineInfo) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "engine=%s async=%t", i.Name, i.Async)
	if i.Rings > 0 {
		fmt.Fprintf(&b, " rings=%d depth=%d fastpath=%t", i.Rings, i.QueueDepth, i.FastPath)
	}
	if i.Forced {
		b.WriteString(" forced=" + EnvBackend)
	}
	if i.Reason != "" {
		b.WriteString(" reason=" + i.Reason)
	}
	return b.String()
}

// describer lets an engine fill in its details.
type describer interface{ describe(*EngineInfo) }

var defaultEngine struct {
	once sync.Once
	b    Backend
	info EngineInfo
}

// Default returns the process-wide engine: uring when io_uring works here,
// sync otherwise, unless EnvBackend forces one. The choice is made once, on
// first use, by setting up a ring and running a no-op through it (containers'
// seccomp filters often deny io_uring with ENOSYS or EPERM). The engine is
// shared: its Close does nothing.
func Default() Backend {
	defaultEngine.once.Do(func() {
		defaultEngine.b, defaultEngine.info = choose(os.Getenv(EnvBackend))
	})
	return defaultEngine.b
}

// Info describes Default's engine, and why a better one was not used.
func Info() EngineInfo {
	Default()
	return defaultEngine.info
}

// uringSetupHook, when set by a test, runs before any ring is set up and
// makes NewUring fail with its error.
var uringSetupHook func() error

// choose picks an engine for the value of EnvBackend. The engine it returns
// is marked shared.
func choose(env string) (Backend, EngineInfo) {
	var reason string
	forced := false
	switch v := strings.ToLower(strings.TrimSpace(env)); v {
	case "", "auto":
	case "sync":
		return sharedSync(), EngineInfo{Name: "sync", Forced: true, Reason: EnvBackend + "=sync"}
	case "uring", "io_uring":
		forced = true
	default:
		reason = fmt.Sprintf("ignored %s=%q (want sync or uring); ", EnvBackend, env)
	}
	b, err := NewUring(nil)
	if err == nil {
		setShared(b)
		info := EngineInfo{Name: b.Name(), Forced: forced, Reason: strings.TrimSuffix(reason, "; ")}
		if d, ok := b.(describer); ok {
			d.describe(&info)
		}
		return b, info
	}
	if forced {
		reason = EnvBackend + "=uring, but "
	}
	return sharedSync(), EngineInfo{Name: "sync", Reason: reason + "io_uring unavailable: " + err.Error()}
}

func sharedSync() Backend { return &syncEngine{shared: true} }

// setShared makes b's Close a no-op.
func setShared(b Backend) {
	if s, ok := b.(interface{ setShared() }); ok {
		s.setShared()
	}
}
