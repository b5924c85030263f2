package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dirstore/dirstore"
)

// TestMain lets TestExec run this test binary as the dirstore tool.
func TestMain(m *testing.M) {
	if os.Getenv("DIRSTORE_TEST_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

type result struct {
	stdout, stderr string
	code           int
}

// dirstoreRun runs the tool in-process with stdin as its standard input.
func dirstoreRun(stdin string, args ...string) result {
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return result{out.String(), errb.String(), code}
}

// mustRun runs the tool and fails the test unless it exits with 0.
func mustRun(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	r := dirstoreRun(stdin, args...)
	if r.code != 0 {
		t.Fatalf("dirstore %q: exit %d, stderr:\n%s", args, r.code, r.stderr)
	}
	return r.stdout
}

// wantExit runs the tool, expecting exit code and a message on stderr that
// contains every string in msgs.
func wantExit(t *testing.T, code int, args []string, msgs ...string) result {
	t.Helper()
	r := dirstoreRun("", args...)
	if r.code != code {
		t.Fatalf("dirstore %q: exit %d, want %d; stderr:\n%s", args, r.code, code, r.stderr)
	}
	for _, m := range msgs {
		if !strings.Contains(r.stderr, m) {
			t.Errorf("dirstore %q: stderr %q does not contain %q", args, r.stderr, m)
		}
	}
	if code != 0 && !strings.HasPrefix(r.stderr, "dirstore: ") {
		t.Errorf("dirstore %q: stderr %q does not start with \"dirstore: \"", args, r.stderr)
	}
	return r
}

func TestPutGetRmLs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store") // put creates it
	file := filepath.Join(t.TempDir(), "value")
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB, streamed
	if err := os.WriteFile(file, []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "from stdin", "put", dir, "a/1")
	mustRun(t, "from dash", "put", dir, "a/2", "-")
	mustRun(t, "", "put", dir, "b", file)
	mustRun(t, "", "put", dir, "empty")
	mustRun(t, "-x", "put", dir, "-flaglike")

	for key, want := range map[string]string{
		"a/1": "from stdin", "a/2": "from dash", "b": big, "empty": "", "-flaglike": "-x",
	} {
		if got := mustRun(t, "", "get", dir, key); got != want {
			t.Errorf("get %q = %d bytes %.20q, want %.20q", key, len(got), got, want)
		}
		if got := mustRun(t, "", "-mmap", "get", dir, key); got != want {
			t.Errorf("-mmap get %q = %.20q, want %.20q", key, got, want)
		}
	}
	mustRun(t, "new", "put", dir, "a/1")
	if got := mustRun(t, "", "get", dir, "a/1"); got != "new" {
		t.Errorf("get after overwrite = %q", got)
	}

	if got, want := mustRun(t, "", "ls", dir), "-flaglike\na/1\na/2\nb\nempty\n"; got != want {
		t.Errorf("ls = %q, want %q", got, want)
	}
	if got, want := mustRun(t, "", "ls", dir, "a/"), "a/1\na/2\n"; got != want {
		t.Errorf("ls a/ = %q, want %q", got, want)
	}
	if got := mustRun(t, "", "ls", dir, "zzz"); got != "" {
		t.Errorf("ls zzz = %q", got)
	}

	if out := mustRun(t, "", "rm", dir, "a/2"); out != "" {
		t.Errorf("rm printed %q", out)
	}
	if got, want := mustRun(t, "", "ls", dir, "a/"), "a/1\n"; got != want {
		t.Errorf("ls after rm = %q, want %q", got, want)
	}

	// A missing key is exit 1 with a message that names it.
	r := wantExit(t, 1, []string{"get", dir, "a/2"}, `get "a/2"`, "not found")
	if r.stdout != "" {
		t.Errorf("get of a missing key printed %q", r.stdout)
	}
	wantExit(t, 1, []string{"rm", dir, "nope"}, `rm "nope"`, "not found")
	wantExit(t, 1, []string{"put", dir, "k", filepath.Join(dir, "no-such-file")}, "no-such-file")
}

func TestStat(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "12345", "put", dir, "x")
	mustRun(t, "", "put", dir, "y")
	const noBudget = "budget unbounded\ncounts gets 0 (misses 0), sets 0, deletes 0, evictions 0, read 0 B, written 0 B\n"
	if got, want := mustRun(t, "", "stat", dir), "keys   2\nbytes  5 (5 B)\nmode   sync\n"+noBudget; got != want {
		t.Errorf("stat = %q, want %q", got, want)
	}
	mustRun(t, strings.Repeat("z", 3000), "-nosync", "put", dir, "z")
	if got, want := mustRun(t, "", "-nosync", "-mmap", "stat", dir), "keys   3\nbytes  3005 (2.9 KiB)\nmode   nosync mmap\n"+noBudget; got != want {
		t.Errorf("stat = %q, want %q", got, want)
	}
}

// TestBudget: -max bounds put, stat shows the budget, trim evicts the
// least recently used keys.
func TestBudget(t *testing.T) {
	dir := t.TempDir()
	for _, k := range []string{"a", "b", "c", "d"} {
		mustRun(t, strings.Repeat(k, 400), "-max", "1KiB", "put", dir, k)
	}
	if got := mustRun(t, "", "ls", dir); got != "c\nd\n" {
		t.Fatalf("after puts within -max 1KiB, ls = %q", got)
	}
	if got, want := mustRun(t, "", "-max", "1KiB", "stat", dir), "keys   2\nbytes  800 (800 B)\nmode   sync\nbudget 1024 (1.0 KiB), 78.1% used\n"; !strings.HasPrefix(got, want) {
		t.Fatalf("stat = %q, want it to start with %q", got, want)
	}
	if r := dirstoreRun(strings.Repeat("x", 1025), "-max", "1KiB", "put", dir, "big"); r.code != 1 || !strings.Contains(r.stderr, "value larger than MaxBytes") {
		t.Fatalf("put of a value over -max: exit %d, %q", r.code, r.stderr)
	}
	if got := mustRun(t, "", "trim", dir, "0.5K"); got != "evicted 1 keys (400 B); 1 keys, 400 B left\n" {
		t.Fatalf("trim = %q", got)
	}
	if got := mustRun(t, "", "ls", dir); got != "d\n" {
		t.Fatalf("after trim, ls = %q", got)
	}
	wantExit(t, 2, []string{"trim", dir, "lots"}, `"lots" is not a size`)
	wantExit(t, 2, []string{"-max", "0", "put", dir, "x"}, "must be positive")
}

// TestKeyQuoting checks that ls quotes exactly the keys that need it and
// that every line ls prints names its key when passed back.
func TestKeyQuoting(t *testing.T) {
	dir := t.TempDir()
	keys := map[string]string{ // key -> ls line
		"plain":      "plain",
		"with space": "with space",
		"ünïcödé 日本": "ünïcödé 日本",
		"a#b%c/d":    "a#b%c/d",
		"new\nline":  `"new\nline"`,
		"tab\tkey":   `"tab\tkey"`,
		"\x01ctl":    `"\x01ctl"`,
		"bad\xffutf": `"bad\xffutf"`,
		`"quoted`:    `"\"quoted"`,
		"":           `""`,
		"nbsp\u00a0": `"nbsp\u00a0"`,
	}
	var want []string
	for k, line := range keys {
		// Store through the quoted form, which works for every key.
		mustRun(t, "v:"+k, "put", dir, line)
		want = append(want, line)
	}
	got := strings.Split(strings.TrimSuffix(mustRun(t, "", "ls", dir), "\n"), "\n")
	if len(got) != len(keys) {
		t.Fatalf("ls printed %d lines, want %d: %q", len(got), len(keys), got)
	}
	for _, line := range got {
		k, err := parseKey(line)
		if err != nil || keys[k] != line {
			t.Errorf("ls line %q: key %q, %v; want the line %q", line, k, err, keys[k])
		}
		if v := mustRun(t, "", "get", dir, line); v != "v:"+k {
			t.Errorf("get %s = %q, want %q", line, v, "v:"+k)
		}
	}
	// Unquoted keys can be given as they are, too.
	if v := mustRun(t, "", "get", dir, "new\nline"); v != "v:new\nline" {
		t.Errorf("get of a raw key = %q", v)
	}
	mustRun(t, "", "rm", dir, `"tab\tkey"`)
	if got := mustRun(t, "", "ls", dir, `"tab\t"`); got != "" {
		t.Errorf("ls after rm = %q", got)
	}
	wantExit(t, 2, []string{"get", dir, `"unterminated`}, "Go string literal")
}

// valueFile returns the one value file of key (which must need no escaping).
func valueFile(t *testing.T, dir, key string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, key+"#*"))
	if err != nil || len(m) != 1 {
		t.Fatalf("value files of %q: %q, %v", key, m, err)
	}
	return m[0]
}

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	for _, k := range []string{"k1", "k2", "k3"} {
		mustRun(t, strings.Repeat(k, 1000), "put", dir, k)
	}
	r := wantExit(t, 0, []string{"verify", dir}, "3 values, all OK")
	if r.stdout != "" {
		t.Errorf("verify of a sound store printed %q on stdout", r.stdout)
	}
	if strings.Contains(r.stderr, "\r") {
		t.Errorf("verify drew progress on a non-terminal: %q", r.stderr)
	}

	for _, k := range []string{"k1", "k3"} {
		p := valueFile(t, dir, k)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x20
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r = wantExit(t, 3, []string{"verify", dir}, `"k1"`, `"k3"`, "corrupt", "2 of 3 values")
	if r.stdout != "k1\nk3\n" {
		t.Errorf("verify listed %q, want the corrupt keys k1 and k3", r.stdout)
	}
	if strings.Contains(r.stderr, `"k2"`) {
		t.Errorf("verify blamed k2: %q", r.stderr)
	}
	r = wantExit(t, 3, []string{"get", dir, "k1"}, `get "k1"`, "corrupt")
	if r.stdout != "" {
		t.Errorf("get of a corrupt value printed %d bytes", len(r.stdout))
	}
	if got := mustRun(t, "", "get", dir, "k2"); got != strings.Repeat("k2", 1000) {
		t.Errorf("get k2 = %.20q", got)
	}
}

func TestVerifyProgress(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "v", "put", dir, "k")
	var out, errb bytes.Buffer
	c := &cli{stdout: &out, stderr: &errb, progress: true}
	if err := c.verify([]string{dir}); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\rverify: 1/1 values\r\x1b\[K`).MatchString(errb.String()) {
		t.Errorf("stderr on a terminal = %q, want a progress line that is then cleared", errb.String())
	}
}

func TestUsage(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"-h"}, {"-help"}, {"help"}, {"get", "-h"}, {"-nosync", "help"},
	} {
		r := wantExit(t, 0, args)
		if !strings.HasPrefix(r.stdout, "usage: dirstore") || !strings.Contains(r.stdout, "Exit status") {
			t.Errorf("dirstore %q printed %.40q", args, r.stdout)
		}
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{nil, "no command"},
		{[]string{"-nosync"}, "no command"},
		{[]string{"-bogus", "ls", dir}, "-bogus"},
		{[]string{"frobnicate", dir}, `unknown command "frobnicate"`},
		{[]string{"get", dir}, "usage: dirstore get DIR KEY"},
		{[]string{"get", dir, "a", "b"}, "usage: dirstore get DIR KEY"},
		{[]string{"put", dir}, "usage: dirstore put DIR KEY [FILE|-]"},
		{[]string{"put", dir, "k", "f", "extra"}, "usage: dirstore put"},
		{[]string{"rm", dir}, "usage: dirstore rm DIR KEY"},
		{[]string{"ls"}, "usage: dirstore ls DIR [PREFIX]"},
		{[]string{"ls", dir, "p", "q"}, "usage: dirstore ls"},
		{[]string{"stat"}, "usage: dirstore stat DIR"},
		{[]string{"verify", dir, "x"}, "usage: dirstore verify DIR"},
		{[]string{"demo"}, "usage: dirstore demo DIR"},
		{[]string{"ls", dir, `"\q"`}, "Go string literal"},
	} {
		r := wantExit(t, 2, tc.args, tc.msg, "dirstore help")
		if r.stdout != "" {
			t.Errorf("dirstore %q printed %q on stdout", tc.args, r.stdout)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("usage errors touched the directory: %v", ents)
	}
}

// TestReadNotStore checks that the reading commands neither create a
// missing directory nor adopt one that is not a store yet.
func TestReadNotStore(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	for _, cmd := range []string{"ls", "stat", "verify"} {
		wantExit(t, 1, []string{cmd, missing}, missing)
	}
	wantExit(t, 1, []string{"get", missing, "k"}, missing)
	wantExit(t, 1, []string{"rm", missing, "k"}, missing)
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("reading created %s: %v", missing, err)
	}

	// A directory written by zict: read commands leave it alone, put adopts it.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a%2Fb"), []byte("zict value"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"ls", "stat", "verify"} {
		wantExit(t, 1, []string{cmd, dir}, dir+" is not a store", "first put or rm")
	}
	wantExit(t, 1, []string{"demo", dir}, "neither empty nor a store")
	if _, err := os.Stat(filepath.Join(dir, ".dirstore")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ls of a zict directory created .dirstore: %v", err)
	}
	mustRun(t, "mine", "put", dir, "c")
	if got, want := mustRun(t, "", "ls", dir), "a/b\nc\n"; got != want {
		t.Errorf("ls after adoption = %q, want %q", got, want)
	}
	if got := mustRun(t, "", "get", dir, "a/b"); got != "zict value" {
		t.Errorf("get of an adopted key = %q", got)
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := dirstore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wantExit(t, 1, []string{"put", dir, "k"}, "already open")
	wantExit(t, 1, []string{"ls", dir}, "already open")
}

func TestDemo(t *testing.T) {
	defer func(n int) { demoKeys = n }(demoKeys)
	demoKeys = 200
	dir := t.TempDir()
	for run, mode := range []string{"-mmap", "-nosync"} {
		out := mustRun(t, "", mode, "demo", dir)
		t.Logf("dirstore %s demo:\n%s", mode, out)
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		want := []string{"dirstore demo: ", "  write ", "  read ", "  overwrite ", "  delete ", "  close+open ", "  check ", "Try: "}
		if run > 0 {
			want = append(want[:1], append([]string{"  clear "}, want[1:]...)...)
		}
		if len(lines) != len(want) {
			t.Fatalf("demo printed %d lines, want %d", len(lines), len(want))
		}
		for i, w := range want {
			if !strings.HasPrefix(lines[i], w) {
				t.Errorf("line %d = %q, want it to start with %q", i, lines[i], w)
			}
		}
		for _, w := range []string{"200 keys", "ops/s", "all match, deleted keys gone", "180 keys", map[string]string{"-mmap": ", sync mode", "-nosync": ", nosync mode"}[mode]} {
			if !strings.Contains(out, w) {
				t.Errorf("demo output lacks %q", w)
			}
		}
	}
	if got := mustRun(t, "", "stat", dir); !strings.HasPrefix(got, "keys   180\n") {
		t.Errorf("stat after demo = %q", got)
	}
	wantExit(t, 0, []string{"verify", dir}, "180 values, all OK")
	// With -max, a cache run follows within the budget.
	out := mustRun(t, "", "-max", "256KiB", "demo", dir)
	t.Logf("dirstore -max 256KiB demo:\n%s", out)
	for _, w := range []string{"  bound ", "keys evicted", "  cache ", "% hits", "of 256.0 KiB used", "budget 262144 (256.0 KiB)"} {
		if !strings.Contains(out, w) {
			t.Errorf("demo -max output lacks %q", w)
		}
	}
	if got := mustRun(t, "", "-max", "256KiB", "stat", dir); !strings.Contains(got, "budget 262144") {
		t.Errorf("stat after demo -max = %q", got)
	}
	if got := mustRun(t, "", "ls", dir, "demo/0000"); got != "demo/00000\ndemo/00001\ndemo/00002\ndemo/00004\ndemo/00005\ndemo/00006\ndemo/00007\ndemo/00008\ndemo/00009\n" {
		t.Errorf("ls demo/0000 = %q", got)
	}
}

// TestExec runs the real main: exit codes through os.Exit, standard
// streams through pipes.
func TestExec(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tool := func(stdin string, args ...string) (string, string, int) {
		cmd := exec.Command(exe, args...)
		cmd.Env = append(os.Environ(), "DIRSTORE_TEST_MAIN=1")
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("running %q: %v", args, err)
		}
		return out.String(), errb.String(), cmd.ProcessState.ExitCode()
	}
	value := strings.Repeat("piped value\n", 10000)
	if _, stderr, code := tool(value, "put", dir, "key"); code != 0 {
		t.Fatalf("put: exit %d: %s", code, stderr)
	}
	if out, stderr, code := tool("", "get", dir, "key"); code != 0 || out != value {
		t.Fatalf("get: exit %d, %d bytes: %s", code, len(out), stderr)
	}
	if _, stderr, code := tool("", "get", dir, "missing"); code != 1 || stderr != "dirstore: get \"missing\": key not found\n" {
		t.Errorf("get missing: exit %d, stderr %q", code, stderr)
	}
	if _, stderr, code := tool("", "bogus"); code != 2 || !strings.Contains(stderr, "unknown command") {
		t.Errorf("bogus: exit %d, stderr %q", code, stderr)
	}
	p := valueFile(t, dir, "key")
	if err := os.WriteFile(p, []byte(strings.Replace(value, "piped", "PIPED", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, stderr, code := tool("", "verify", dir); code != 3 || out != "key\n" {
		t.Errorf("verify: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}
