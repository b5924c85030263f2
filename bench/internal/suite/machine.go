package suite

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dirstore/dirstore/backends"
)

// Machine describes where the run happened.
type Machine struct {
	CPU        string
	Cores      int
	GOMAXPROCS int
	MemGiB     float64
	Kernel     string
	FS         string // type, device and mount options of the scratch directory
	Dir        string
	Go         string
	Engine     string
	LoadStart  string
	LoadEnd    string
	// CreateStart and CreateEnd are the time to create a file, write
	// 1 KiB and close it, at the start and the end of the run.
	CreateStart, CreateEnd string
	Date                   time.Time
	Elapsed                time.Duration
}

func describeMachine(dir string) *Machine {
	m := &Machine{
		CPU:        cpuModel(),
		Cores:      runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		Dir:        dir,
		Go:         runtime.Version(),
		Engine:     backends.Info().String(),
		LoadStart:  loadAverage(),
		Date:       time.Now(),
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Machine[:])
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		m.MemGiB = float64(si.Totalram) * float64(si.Unit) / (1 << 30)
	}
	m.FS = fileSystem(dir)
	return m
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// loadAverage returns the 1, 5 and 15 minute load averages.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// fileSystem describes the file system holding dir: its type (from
// statfs, or the mount table), its device and its mount options.
func fileSystem(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	// The longest mount point that contains dir, from /proc/self/mountinfo:
	// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ... - TYPE SOURCE SUPEROPTS
	var best, typ, src, opts string
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			pre, post, ok := strings.Cut(sc.Text(), " - ")
			if !ok {
				continue
			}
			a, b := strings.Fields(pre), strings.Fields(post)
			if len(a) < 6 || len(b) < 3 {
				continue
			}
			mp := unescapeMount(a[4])
			if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
				best, typ, src, opts = mp, b[0], b[1], a[5]+","+b[2]
			}
		}
		f.Close()
	}
	var st unix.Statfs_t
	if typ == "" && unix.Statfs(abs, &st) == nil {
		typ = fmt.Sprintf("magic %#x", st.Type)
	}
	if typ == "" {
		return "unknown"
	}
	if typ == "ext4" {
		// The file system's own view has the options that matter here
		// (delalloc, auto_da_alloc, discard), and jbd2 lists journals.
		dev := filepath.Base(src)
		if b, err := os.ReadFile(filepath.Join("/proc/fs/ext4", dev, "options")); err == nil {
			opts = strings.Join(strings.Fields(string(b)), ",")
		}
		if ents, err := os.ReadDir("/proc/fs/jbd2"); err == nil {
			journal := false
			for _, e := range ents {
				journal = journal || strings.HasPrefix(e.Name(), dev+"-")
			}
			if journal {
				typ += " with a journal"
			} else {
				typ += " without a journal"
			}
		}
	}
	return fmt.Sprintf("%s on %s at %s (%s)", typ, src, best, dedupOptions(opts))
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

func dedupOptions(s string) string {
	seen := map[string]bool{}
	var out []string
	for o := range strings.SplitSeq(s, ",") {
		if o != "" && !seen[o] {
			seen[o] = true
			out = append(out, o)
		}
	}
	return strings.Join(out, ",")
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// probeCreate times creating 300 files of 1 KiB in a new directory, the
// cost the Set rows depend on, and which ext4 inflates for minutes after
// mass deletions (~12 us on a rested file system).
func probeCreate(e *Env) (string, time.Duration) {
	const n = 300
	dir, err := e.Subdir("probe")
	if err != nil {
		return err.Error(), 0
	}
	v := value(1024)
	times := make([]float64, 0, n)
	for i := range n {
		t := time.Now()
		if err := os.WriteFile(filepath.Join(dir, key(i)), v, 0o600); err != nil {
			return err.Error(), 0
		}
		times = append(times, float64(time.Since(t)))
	}
	med := time.Duration(median(times))
	return fmt.Sprintf("median %v", med.Round(100*time.Nanosecond)), med
}
