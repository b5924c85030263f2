// Command gocache times "go build ./..." of the dirstore module with its
// build cache served by "dirstore gocache" (GOCACHEPROG) against the go
// command's own GOCACHE, cold (an empty cache) and warm (a second build),
// and prints a markdown table of medians and ratios. See ../README.md.
//
//	cd bench && go run ./gocache [-cold 3] [-warm 5] [-dir DIR]
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

func main() {
	cold := flag.Int("cold", 3, "cold builds per contender")
	warm := flag.Int("warm", 5, "warm builds per contender")
	dir := flag.String("dir", "", "scratch directory: the file system measured (default $TMPDIR)")
	parallel := flag.Int("p", 0, "go build -p (default: the go command's, GOMAXPROCS)")
	first := flag.String("first", "gocache", "the contender that goes first in the first round: gocache or GOCACHE")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("gocache bench: ")

	goCmd, err := exec.LookPath("go")
	if err != nil {
		log.Fatal(err)
	}
	out, err := exec.Command(goCmd, "env", "GOMOD").Output()
	if err != nil {
		log.Fatal(err)
	}
	// The bench module's go.mod is in bench/: the module measured is the
	// one above it.
	repo := filepath.Dir(filepath.Dir(strings.TrimSpace(string(out))))
	if _, err := os.Stat(filepath.Join(repo, "cmd", "dirstore")); err != nil {
		log.Fatalf("run from the bench module of a dirstore checkout: %v", err)
	}
	scratch, err := os.MkdirTemp(*dir, "gocache-bench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(scratch)
	bin := filepath.Join(scratch, "dirstore")
	build := exec.Command(goCmd, "build", "-o", bin, "./cmd/dirstore")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		log.Fatalf("building dirstore: %v\n%s", err, out)
	}

	args := []string{"build"}
	if *parallel > 0 {
		args = append(args, "-p", fmt.Sprint(*parallel))
	}
	args = append(args, "./...")
	n := 0
	// run times one build with a cache in cacheDir (fresh when it does not
	// exist yet) and returns the wall time.
	run := func(contender, cacheDir string) time.Duration {
		env := []string{"GOFLAGS=", "GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local"}
		switch contender {
		case "gocache":
			env = append(env, "GOCACHE="+cacheDir+"-gocache", "GOCACHEPROG="+bin+" gocache "+cacheDir)
		case "GOCACHE":
			env = append(env, "GOCACHE="+cacheDir, "GOCACHEPROG=")
		}
		for _, kv := range os.Environ() {
			switch k, _, _ := strings.Cut(kv, "="); k {
			case "GOCACHE", "GOCACHEPROG", "GOFLAGS", "GOPROXY", "GOWORK", "GOTOOLCHAIN":
			default:
				env = append(env, kv)
			}
		}
		cmd := exec.Command(goCmd, args...)
		cmd.Dir, cmd.Env = repo, env
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			log.Fatalf("%s: go %s: %v\n%s", contender, strings.Join(args, " "), err, out)
		}
		d := time.Since(start)
		n++
		fmt.Fprintf(os.Stderr, "%3d %-8s %s\n", n, contender, d.Round(time.Millisecond))
		return d
	}
	contenders := []string{"gocache", "GOCACHE"}
	if *first == "GOCACHE" {
		contenders = []string{"GOCACHE", "gocache"}
	}
	loadStart := loadavg()
	times := map[string][]time.Duration{}
	// Cold: each round builds into a fresh cache of each contender, in
	// turn, alternating who goes first; the caches of the last round are
	// the warm ones.
	caches := map[string]string{}
	for r := range *cold {
		order := contenders
		if r%2 == 1 {
			order = []string{contenders[1], contenders[0]}
		}
		for _, c := range order {
			if old := caches[c]; old != "" {
				os.RemoveAll(old)
				os.RemoveAll(old + "-gocache")
			}
			caches[c] = filepath.Join(scratch, fmt.Sprintf("%s-%d", c, r))
			times["cold "+c] = append(times["cold "+c], run(c, caches[c]))
		}
	}
	for r := range *warm {
		order := contenders
		if r%2 == 1 {
			order = []string{contenders[1], contenders[0]}
		}
		for _, c := range order {
			times["warm "+c] = append(times["warm "+c], run(c, caches[c]))
		}
	}

	host, _ := os.Hostname()
	fsType := fsName(scratch)
	fmt.Printf("`go %s` of %s, %s, %d CPUs, %s, scratch on %s; %s; load average %s at the start, %s at the end\n\n", strings.Join(args, " "),
		"github.com/dirstore/dirstore", runtime.Version(), runtime.NumCPU(), host, fsType, time.Now().UTC().Format("2006-01-02 15:04 UTC"), loadStart, loadavg())
	fmt.Println("| build | dirstore gocache (median) | GOCACHE (median) | ratio | goal | runs (gocache / GOCACHE, s) |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, kind := range []struct{ name, goal string }{{"cold", "≤ 1.10"}, {"warm", "≤ 1.15"}} {
		a, b := times[kind.name+" gocache"], times[kind.name+" GOCACHE"]
		if len(a) == 0 {
			continue
		}
		ma, mb := median(a), median(b)
		fmt.Printf("| %s | %s | %s | %.2fx | %s | %s / %s |\n", kind.name, secs(ma), secs(mb), float64(ma)/float64(mb), kind.goal, list(a), list(b))
	}
}

// loadavg is the one-minute load average, or "?".
func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func list(ds []time.Duration) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, fmt.Sprintf("%.2f", d.Seconds()))
	}
	return strings.Join(parts, " ")
}

// fsName is the file system type of path, from /proc/self/mounts (the
// longest mount point that is a prefix of path), or "unknown".
func fsName(path string) string {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return "unknown"
	}
	best, typ := "", "unknown"
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		mp := f[1]
		if (path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best, typ = mp, f[2]
		}
	}
	return typ
}
