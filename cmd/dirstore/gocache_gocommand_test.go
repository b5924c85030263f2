//go:build linux

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestGocacheGoCommand runs the real go command with GOCACHEPROG set to a
// dirstore binary built here and a fresh GOCACHE, on a small module of its
// own and on this repository's module, killing the server with SIGKILL in
// the middle of a build on the way. It takes a few minutes on two cores:
// the first build compiles the standard library and this module's
// dependencies.
func TestGocacheGoCommand(t *testing.T) {
	goCmd, err := exec.LookPath("go") // go test puts GOROOT/bin first in PATH
	if err != nil {
		t.Fatalf("this test runs the go command: %v", err)
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "dirstore")
	if out, err := exec.Command(goCmd, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building dirstore: %v\n%s", err, out)
	}
	store := filepath.Join(tmp, "store")
	env := []string{
		"GOCACHE=" + filepath.Join(tmp, "gocache"),
		"GOCACHEPROG=" + bin + " gocache " + store,
		"GOFLAGS=", "GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local",
	}
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "GOCACHE", "GOCACHEPROG", "GOFLAGS", "GOPROXY", "GOWORK", "GOTOOLCHAIN":
		default:
			env = append(env, kv)
		}
	}
	mod := filepath.Join(tmp, "mod")
	writeFiles(t, mod, map[string]string{
		"go.mod":      "module example.com/m\n\ngo 1.24\n",
		"p/p.go":      "package p\n\nimport \"strings\"\n\nfunc Shout(s string) string { return strings.ToUpper(s) + \"!\" }\n",
		"p/p_test.go": "package p\n\nimport \"testing\"\n\nfunc TestShout(t *testing.T) {\n\tif got := Shout(\"hi\"); got != \"HI!\" {\n\t\tt.Fatal(got)\n\t}\n}\n",
	})
	goRun := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command(goCmd, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	compiles := regexp.MustCompile(`(?m)^\S*/compile\s`)
	noCompile := func(dir string, args ...string) {
		t.Helper()
		out := goRun(dir, append([]string{"build", "-x"}, args...)...)
		if m := compiles.FindAllString(out, 3); len(m) > 0 {
			t.Errorf("go build -x %s ran the compiler again (%d+ times):\n%.2000s", strings.Join(args, " "), len(m), out)
		}
	}

	// Twice through a fresh cache: the second run is served from it.
	start := time.Now()
	if out := goRun(mod, "test", "./..."); !strings.Contains(out, "ok  \texample.com/m/p") || strings.Contains(out, "(cached)") {
		t.Fatalf("first go test:\n%s", out)
	}
	t.Logf("first go test: %v", time.Since(start).Round(time.Millisecond))
	if out := goRun(mod, "test", "./..."); !strings.Contains(out, "(cached)") {
		t.Errorf("second go test does not say (cached):\n%s", out)
	}
	// go test built p's test variant; go build builds p itself, and the
	// second go build compiles nothing.
	goRun(mod, "build", "./p")
	noCompile(mod, "./p")
	// The check sees a compile step when there is one.
	writeFiles(t, mod, map[string]string{"p/q.go": "package p\n\nconst Q = 1\n"})
	if out := goRun(mod, "build", "-x", "./p"); !compiles.MatchString(out) {
		t.Fatalf("go build -x after a change shows no compile step:\n%s", out)
	}
	if err := os.Remove(filepath.Join(mod, "p", "q.go")); err != nil {
		t.Fatal(err)
	}

	// This repository's module, killing the server mid-build.
	start = time.Now()
	killMidBuild(t, goCmd, repo, env, store, bin)
	t.Logf("build killed after %v", time.Since(start).Round(time.Millisecond))
	if out, err := exec.Command(bin, "verify", store).CombinedOutput(); err != nil {
		t.Errorf("dirstore verify after SIGKILL: %v\n%s", err, out)
	}
	start = time.Now()
	goRun(repo, "build", "-p", "8", "./...")
	t.Logf("go build -p 8 ./... after the kill: %v", time.Since(start).Round(time.Millisecond))
	noCompile(repo, "-p", "8", "./...")

	// The small module after the kill: still served (p is as it was before
	// q.go came and went).
	if out := goRun(mod, "test", "./..."); !strings.Contains(out, "(cached)") {
		t.Errorf("go test after the kill does not say (cached):\n%s", out)
	}
	noCompile(mod, "./p")

	// A bounded cache far smaller than one build's outputs: it evicts
	// outputs the go command was handed and still reads, and the build
	// must not notice; afterwards the store is within its budget.
	bounded := filepath.Join(tmp, "bounded")
	for i, kv := range env {
		switch {
		case strings.HasPrefix(kv, "GOCACHE="):
			env[i] = "GOCACHE=" + filepath.Join(tmp, "gocache-bounded")
		case strings.HasPrefix(kv, "GOCACHEPROG="):
			env[i] = "GOCACHEPROG=" + bin + " gocache -v -max 2MiB " + bounded
		}
	}
	for i := range 2 {
		out := goRun(mod, "test", "-count=1", "./...")
		if !strings.Contains(out, "ok  \texample.com/m/p") {
			t.Fatalf("go test through a cache of 2 MiB:\n%s", out)
		}
		// The server's log (-v) reaches the go command's stderr.
		if i == 0 && !strings.Contains(out, "evicted keys") {
			t.Errorf("the first go test through a cache of 2 MiB evicted nothing:\n%.3000s", out)
		}
	}
	out, err := exec.Command(bin, "-max", "2MiB", "stat", bounded).CombinedOutput()
	if err != nil {
		t.Fatalf("dirstore stat: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`(?m)^bytes\s+(\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("dirstore stat printed no bytes line:\n%s", out)
	}
	if n, _ := strconv.ParseInt(string(m[1]), 10, 64); n > 2<<20 || n == 0 {
		t.Errorf("the bounded cache holds %d bytes after two builds, want 1 to %d:\n%s", n, 2<<20, out)
	}
	t.Logf("bounded cache after two go test runs:\n%s", out)
}

// killMidBuild starts "go build -p 8 ./..." in dir and kills its
// GOCACHEPROG server with SIGKILL once the store has grown by some files.
func killMidBuild(t *testing.T, goCmd, dir string, env []string, store, bin string) {
	t.Helper()
	before := countFiles(t, store)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goCmd, "build", "-p", "8", "./...")
	cmd.Dir, cmd.Env = dir, env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	killed := false
	for !killed {
		select {
		case err := <-done:
			t.Fatalf("the build ended (%v) before the store grew by 100 files (from %d to %d):\n%s", err, before, countFiles(t, store), out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if countFiles(t, store) < before+100 {
			continue
		}
		pid := childByExe(t, cmd.Process.Pid, bin)
		if pid == 0 {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("killing the server: %v", err)
		}
		killed = true
	}
	if err := <-done; err == nil {
		t.Fatalf("the build succeeded with its GOCACHEPROG server killed:\n%s", out.String())
	}
	t.Logf("the build, its server killed at %d files in the store (%d before):\n%.500s", countFiles(t, store), before, out.String())
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		t.Fatal(err)
	}
	return len(names)
}

// childByExe returns the pid of a child of parent running exe, or 0.
func childByExe(t *testing.T, parent int, exe string) int {
	t.Helper()
	procs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("finding the server: %v", err)
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", p.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(parent) {
			continue
		}
		if path, err := os.Readlink(filepath.Join("/proc", p.Name(), "exe")); err == nil && path == exe {
			return pid
		}
	}
	return 0
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
