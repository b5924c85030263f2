// Command dirstore reads and writes a dirstore directory from the shell.
//
// Run "dirstore help" for the commands; "dirstore demo DIR" is a quick tour.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/gocacheprog"
	"github.com/dirstore/dirstore/internal/size"
)

// Exit codes.
const (
	exitOK      = 0
	exitError   = 1
	exitUsage   = 2
	exitCorrupt = 3
)

const usageText = `usage: dirstore [-nosync] [-mmap] [-max SIZE] COMMAND DIR [ARGS]

dirstore keeps one file per value in DIR, with a manifest in DIR/.dirstore.
A directory written by Python's zict.File becomes a store (its files are
adopted as they are) at the first put or rm; get, ls, stat and verify only read
directories that are stores already.

Commands:
  put DIR KEY [FILE|-]   store FILE (or standard input) as KEY's value
  get DIR KEY            write KEY's value to standard output
  rm DIR KEY             delete KEY
  ls DIR [PREFIX]        list the keys (starting with PREFIX), sorted, one per line
  stat DIR               print the number of keys, their total size, the mode,
                         the budget (with -max) and the counters
  trim DIR SIZE          evict least recently used keys until the values take
                         at most SIZE
  verify DIR             check every value against its recorded checksum; print
                         each corrupt key on standard output, the reasons (and,
                         on a terminal, progress) on standard error
  gocache [-max SIZE] [-sync] [-remote URL] DIR
                         serve the go command's build cache from DIR
                         (GOCACHEPROG="dirstore gocache DIR"); see
                         "dirstore gocache -h"
  sync -remote URL DIR   upload what DIR's outbox still holds to the bucket at
                         URL and wait for it (runs dirstore-remote sync)
  demo DIR               fill DIR (new, empty or a store) with a few thousand
                         keys, read them back, overwrite, delete, reopen and
                         check, with timings; its keys start with "demo/";
                         with -max, then a cache run within that budget
  help                   print this text

Flags (before COMMAND):
  -nosync   do not fsync: faster, but a crash may lose the latest writes
            (never tear a value); everything is durable once the command exits
  -mmap     read values through a memory map instead of a buffer
  -max SIZE make the store a cache of at most SIZE bytes of values: put (and
            demo's cache run) evict the least recently used keys to stay
            within it

SIZE is a number of bytes with an optional unit: 512MiB, 10GB, 1.5G, 4096.
KB, MB, GB and TB are powers of 1000; KiB, MiB, GiB, TiB and the bare
K, M, G, T are powers of 1024.

Keys are arbitrary bytes. ls prints a key as it is unless it is empty, starts
with a double quote, or holds a newline, another non-printable character or
invalid UTF-8: then it prints it as a Go string literal ("a\nb", "\xff").
A KEY or PREFIX argument that starts with a double quote is read the same way,
so every key ls prints can be passed back.

Exit status: 0 success; 1 error (a missing key, an I/O error, ...);
2 usage error; 3 corruption (verify found a corrupt value, or get read one).
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// cli is one run of the tool.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	opts           dirstore.Options
	progress       bool // stderr is a terminal: verify shows progress
}

// usageError is a command line the tool does not understand.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// run runs the tool with args (without the program name) and returns the
// exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	if f, ok := stderr.(*os.File); ok {
		c.progress = isTerminal(f.Fd())
	}
	return c.run(args)
}

func (c *cli) run(args []string) int {
	flags := flag.NewFlagSet("dirstore", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.Usage = func() {}
	flags.BoolVar(&c.opts.NoSync, "nosync", false, "")
	flags.BoolVar(&c.opts.Mmap, "mmap", false, "")
	flags.Func("max", "", func(v string) error {
		n, err := size.Parse(v)
		if err != nil {
			return err
		}
		if n <= 0 {
			return fmt.Errorf("-max %s: the budget must be positive", v)
		}
		c.opts.MaxBytes = n
		return nil
	})
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(c.stdout, usageText)
			return exitOK
		}
		return c.fail(usagef("%v", err))
	}
	args = flags.Args()
	if len(args) == 0 {
		return c.fail(usagef("no command"))
	}
	cmd, args := args[0], args[1:]
	if cmd == "gocache" && len(args) > 0 && isHelpFlag(args[0]) {
		fmt.Fprint(c.stdout, gocacheprog.Usage)
		return exitOK
	}
	if cmd == "help" || len(args) > 0 && isHelpFlag(args[0]) {
		fmt.Fprint(c.stdout, usageText)
		return exitOK
	}
	commands := map[string]struct {
		min, max int
		args     string
		fn       func([]string) error
	}{
		"put":    {2, 3, "DIR KEY [FILE|-]", c.put},
		"get":    {2, 2, "DIR KEY", c.get},
		"rm":     {2, 2, "DIR KEY", c.rm},
		"ls":     {1, 2, "DIR [PREFIX]", c.ls},
		"stat":   {1, 1, "DIR", c.stat},
		"trim":   {2, 2, "DIR SIZE", c.trim},
		"verify": {1, 1, "DIR", c.verify},
		"demo":   {1, 1, "DIR", c.demo},
		// gocache parses its own flags.
		"gocache": {1, 8, "[-max SIZE] [-sync] [-remote URL] [-v] DIR", c.gocache},
		"sync":    {3, 6, "-remote URL DIR", c.syncRemote},
	}
	sub, ok := commands[cmd]
	if !ok {
		return c.fail(usagef("unknown command %q", cmd))
	}
	if len(args) < sub.min || len(args) > sub.max {
		return c.fail(usagef("usage: dirstore %s %s", cmd, sub.args))
	}
	if err := sub.fn(args); err != nil {
		return c.fail(err)
	}
	return exitOK
}

func isHelpFlag(s string) bool {
	return s == "-h" || s == "-help" || s == "--help"
}

// corruptFound is verify's error after it listed corrupt keys (bad) and
// keys whose values could not be read (failed).
type corruptFound struct{ bad, failed, total int64 }

func (e *corruptFound) Error() string {
	msg := fmt.Sprintf("verify: %d of %d values are corrupt", e.bad, e.total)
	if e.failed > 0 {
		msg += fmt.Sprintf(", %d could not be read", e.failed)
	}
	return msg
}

// fail reports err on stderr and returns its exit code.
func (c *cli) fail(err error) int {
	var ec *exitCode
	if errors.As(err, &ec) {
		return ec.code
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(c.stderr, "dirstore: %s\nRun 'dirstore help' for usage.\n", ue.msg)
		return exitUsage
	}
	fmt.Fprintf(c.stderr, "dirstore: %s\n", message(err))
	var cf *corruptFound
	if errors.As(err, &cf) || errors.Is(err, dirstore.ErrCorrupt) {
		return exitCorrupt
	}
	return exitError
}

// exitCode is the error of a command that already reported its failure
// (a child process, on stderr) and exits with code.
type exitCode struct{ code int }

func (e *exitCode) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// message is err's text without the "dirstore: " prefix the library's
// errors carry, since the tool prints its own.
func message(err error) string {
	return strings.TrimPrefix(err.Error(), "dirstore: ")
}

// open opens dir for writing.
func (c *cli) open(dir string) (*dirstore.Store, error) {
	return dirstore.Open(dir, &c.opts)
}

// openRead opens dir for reading: read-only, unless the store was not
// closed cleanly and must be recovered first. It does not adopt a directory
// that has no manifest (a zict directory, or any other), so that reading a
// directory by mistake leaves it untouched.
func (c *cli) openRead(dir string) (*dirstore.Store, error) {
	o := c.opts
	o.ReadOnly = true
	s, err := dirstore.Open(dir, &o)
	if errors.Is(err, dirstore.ErrReadOnly) {
		return c.open(dir)
	}
	if errors.Is(err, fs.ErrNotExist) && isStore(dir) == errNoStore {
		return nil, fmt.Errorf("%s is not a store (it has no %s directory); a directory written by zict becomes one at the first put or rm", dir, metaDir)
	}
	return s, err
}

// metaDir is the hidden directory that marks a store.
const metaDir = ".dirstore"

var errNoStore = errors.New("not a store")

// isStore returns nil if dir is a store, errNoStore if it is a directory
// that is not, or the error that prevented telling.
func isStore(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	_, err = os.Stat(filepath.Join(dir, metaDir))
	if errors.Is(err, fs.ErrNotExist) {
		return errNoStore
	}
	return err
}

// closeStore closes s, keeping the first error.
func closeStore(s *dirstore.Store, err *error) {
	if cerr := s.Close(); *err == nil {
		*err = cerr
	}
}

// parseKey reads a KEY or PREFIX argument: as it is, or as a Go string
// literal if it starts with a double quote (the form ls prints).
func parseKey(arg string) (string, error) {
	if !strings.HasPrefix(arg, `"`) {
		return arg, nil
	}
	k, err := strconv.Unquote(arg)
	if err != nil {
		return "", usagef("argument %q starts with a double quote but is not a Go string literal", arg)
	}
	return k, nil
}

// formatKey is the inverse of parseKey: key as it is when that is
// unambiguous on one line, else quoted.
func formatKey(key string) string {
	if key == "" || key[0] == '"' || !utf8.ValidString(key) {
		return strconv.Quote(key)
	}
	for _, r := range key {
		if !strconv.IsPrint(r) {
			return strconv.Quote(key)
		}
	}
	return key
}

func (c *cli) put(args []string) (err error) {
	key, err := parseKey(args[1])
	if err != nil {
		return err
	}
	var r io.Reader = c.stdin
	if len(args) == 3 && args[2] != "-" {
		f, err := os.Open(args[2])
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	s, err := c.open(args[0])
	if err != nil {
		return err
	}
	defer closeStore(s, &err)
	_, err = s.SetFrom(key, r)
	return asCommand(err, "put")
}

func (c *cli) get(args []string) (err error) {
	key, err := parseKey(args[1])
	if err != nil {
		return err
	}
	s, err := c.openRead(args[0])
	if err != nil {
		return err
	}
	defer closeStore(s, &err)
	var werr error
	err = s.View(key, func(v []byte) error {
		_, werr = c.stdout.Write(v)
		return werr
	})
	if werr != nil {
		return fmt.Errorf("writing the value: %w", werr)
	}
	return asCommand(err, "get")
}

// asCommand names the command in err, if it is a *dirstore.KeyError: the
// Store's operation ("view", "delete") is not what the user typed.
func asCommand(err error, cmd string) error {
	if ke, ok := err.(*dirstore.KeyError); ok {
		e := *ke
		e.Op = cmd
		return &e
	}
	return err
}

func (c *cli) rm(args []string) (err error) {
	key, err := parseKey(args[1])
	if err != nil {
		return err
	}
	if _, err := os.Stat(args[0]); err != nil {
		return err // rather than create a store to delete nothing from
	}
	s, err := c.open(args[0])
	if err != nil {
		return err
	}
	defer closeStore(s, &err)
	return asCommand(s.Delete(key), "rm")
}

func (c *cli) ls(args []string) (err error) {
	prefix := ""
	if len(args) == 2 {
		if prefix, err = parseKey(args[1]); err != nil {
			return err
		}
	}
	s, err := c.openRead(args[0])
	if err != nil {
		return err
	}
	defer closeStore(s, &err)
	w := bufio.NewWriter(c.stdout)
	for k, err := range s.KeysWithPrefix(prefix) {
		if err != nil {
			return err
		}
		w.WriteString(formatKey(k))
		if err := w.WriteByte('\n'); err != nil {
			return err
		}
	}
	return w.Flush()
}

func (c *cli) stat(args []string) (err error) {
	s, err := c.openRead(args[0])
	if err != nil {
		return err
	}
	defer closeStore(s, &err)
	st := s.Stats()
	mode := "sync"
	if st.NoSync {
		mode = "nosync"
	}
	if st.Mmap {
		mode += " mmap"
	}
	_, err = fmt.Fprintf(c.stdout, "keys   %d\nbytes  %d (%s)\nmode   %s\n", st.Keys, st.Bytes, size.Format(st.Bytes), mode)
	if err != nil {
		return err
	}
	return c.printBudget(st)
}

// printBudget prints a store's budget, use and counters.
func (c *cli) printBudget(st dirstore.Stats) error {
	budget := "unbounded"
	if st.MaxBytes > 0 {
		budget = fmt.Sprintf("%d (%s), %.1f%% used", st.MaxBytes, size.Format(st.MaxBytes), 100*float64(st.Bytes)/float64(st.MaxBytes))
	}
	_, err := fmt.Fprintf(c.stdout, "budget %s\ncounts gets %d (misses %d), sets %d, deletes %d, evictions %d, read %s, written %s\n",
		budget, st.Gets, st.Misses, st.Sets, st.Deletes, st.Evictions, size.Format(st.BytesRead), size.Format(st.BytesWritten))
	return err
}

// trim evicts least recently used keys until the values fit in a size.
func (c *cli) trim(args []string) (err error) {
	limit, err := size.Parse(args[1])
	if err != nil {
		return usagef("trim: %v", err)
	}
	s, err := c.open(args[0])
	if err != nil {
		return err
	}
	defer closeStore(s, &err)
	before := s.Stats()
	n, err := s.Trim(limit)
	if err != nil {
		return err
	}
	after := s.Stats()
	_, err = fmt.Fprintf(c.stdout, "evicted %d keys (%s); %d keys, %s left\n", n, size.Format(before.Bytes-after.Bytes), after.Keys, size.Format(after.Bytes))
	return err
}

func (c *cli) verify(args []string) (err error) {
	s, err := c.openRead(args[0])
	if err != nil {
		return err
	}
	defer closeStore(s, &err)
	total := s.Stats().Keys
	start := time.Now()
	var n, bad, failed int64
	var last time.Time
	shown := false
	clearLine := func() {
		if shown {
			fmt.Fprint(c.stderr, "\r\x1b[K")
			shown = false
		}
	}
	out := bufio.NewWriter(c.stdout)
	var werr error
	err = s.Verify(func(key string, err error) bool {
		n++
		if err != nil {
			clearLine()
			if errors.Is(err, dirstore.ErrCorrupt) {
				bad++
			} else {
				failed++
			}
			fmt.Fprintf(c.stderr, "dirstore: %s\n", message(err))
			fmt.Fprintln(out, formatKey(key))
			if werr = out.Flush(); werr != nil {
				return false
			}
		}
		if c.progress && time.Since(last) >= 100*time.Millisecond {
			last = time.Now()
			fmt.Fprintf(c.stderr, "\rverify: %d/%d values", n, total)
			shown = true
		}
		return true
	})
	clearLine()
	switch {
	case err != nil:
		return err
	case werr != nil:
		return werr
	case bad > 0:
		return &corruptFound{bad, failed, n}
	case failed > 0:
		return fmt.Errorf("verify: %d of %d values could not be read", failed, n)
	}
	fmt.Fprintf(c.stderr, "verify: %d values, all OK (%s)\n", n, dur(time.Since(start)))
	return nil
}

// dur formats a duration with about three significant digits.
func dur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}
