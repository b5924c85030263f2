package dirstore_test

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dirstore/dirstore"
)

const seededEnv = "DIRSTORE_SEEDED_BUG"

// needRoot skips a test that mounts file systems when not run as root. CI
// runs as root, so there these tests always run.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (to mount a file system or switch users); CI runs it as root")
	}
}

// seededCatchers names, for each seeded bug of the hardening (mutation.go),
// the test that must catch it.
var seededCatchers = map[string]string{
	"format check skipped":                 "^TestFormatNewerRefused$",
	"planted file taken for an I/O error":  "^TestTamperPlanted$",
	"no shared lock for ReadOnly":          "^TestReadOnlyMount$",
	"buffer callback panic not caught":     "^TestPanicBuffer$/^Marshal$",
	"read-only FS not a permission error":  "^TestReadOnlyWhileOpen$",
	"read-only FS does not fail the store": "^TestReadOnlyWhileOpen$",
	"stream stat not checked for close":    "^TestStreamStatAfterClose$",
	"recency records not rebuilt":          "^TestRecencyRebuilt$",
}

// seededNeedRoot names the seeded bugs whose catchers mount file systems
// or take Linux's shared locks: they run as root on Linux (as in CI).
var seededNeedRoot = map[string]bool{
	"no shared lock for ReadOnly":          true,
	"read-only FS not a permission error":  true,
	"read-only FS does not fail the store": true,
}

// seededLinux names the seeded bugs whose catchers are Linux's without
// needing root (they use dup3).
var seededLinux = map[string]bool{
	"stream stat not checked for close": true,
}

// TestSeededBugsCaught runs each catcher in a child process with its bug
// switched on, and wants it to fail.
func TestSeededBugsCaught(t *testing.T) {
	if name := os.Getenv(seededEnv); name != "" {
		return // a child: the bug is on (see init below)
	}
	for name := range dirstore.HardenMutations {
		run, ok := seededCatchers[name]
		if !ok {
			t.Errorf("seeded bug %q has no test named to catch it", name)
			continue
		}
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			if seededNeedRoot[name] || seededLinux[name] {
				if runtime.GOOS != "linux" {
					t.Skip("its test is Linux's (open file description locks, ext4's errors=remount-ro, dup3)")
				}
			}
			if seededNeedRoot[name] {
				needRoot(t)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run="+run, "-test.count=1")
			cmd.Env = append(os.Environ(), seededEnv+"="+name)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Errorf("with the seeded bug %q on, %s passes:\n%s", name, run, out)
			} else if o := string(out); !strings.Contains(o, "--- FAIL") && !strings.Contains(o, "fatal error:") {
				// A test that fails, or a process that dies of the bug
				// (an unlock of an unlocked mutex is fatal).
				t.Errorf("with the seeded bug %q on, %s neither failed nor crashed (%v):\n%s", name, run, err, out)
			}
		})
	}
}

func init() {
	if name := os.Getenv(seededEnv); name != "" {
		m, ok := dirstore.HardenMutations[name]
		if !ok {
			panic("unknown seeded bug " + name)
		}
		dirstore.SetMutation(m)
	}
}
