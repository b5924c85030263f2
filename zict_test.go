package dirstore_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

// zictPython is the system Python, which Debian's python3-zict extends
// (not a pyenv or virtualenv python3 that may come first on PATH).
const zictPython = "/usr/bin/python3"

// zictScript writes two directories: argv[1] with the real zict.File (zict
// 2.x as Debian ships it names a file quote(key)), argv[2] by hand with
// zict 3's names (quote(key) + "#" + N). It prints, as JSON, what each
// directory holds and which files a reader must drop.
const zictScript = `
import base64, json, os, random, sys
from urllib.parse import quote
try:
    import zict
except ImportError as e:
    print("cannot import zict:", e, file=sys.stderr)
    sys.exit(3)

dir2, dir3 = sys.argv[1], sys.argv[2]
rng = random.Random(1)
items = {
    "plain": b"plain value",
    "a/b": b"slash",
    "/a/b/c/": b"slashes",
    "with space": b"space",
    "a#b": b"hash",
    "#": b"hash only",
    "#7": b"hash and digit",
    "100%": b"percent",
    "%41%zz%": b"percent escapes",
    "na\u00efve caf\u00e9": "\u00fc".encode(),
    "\u65e5\u672c\u8a9e": b"cjk",
    "emoji \U0001F600": b"astral",
    "...": b"dots",
    ".hidden": b"dot file",
    "-dash~tilde_under.score": b"unreserved",
    "tab\tnew\nline\r": b"controls",
    "quote\"back\\slash'": b"quotes",
    "?&=+;:@$,!*()[]{}|^` + "`" + `<>": b"reserved",
    "k" * 80: b"a long key",
    "empty": b"",
    "nul": b"\x00",
    "binary": bytes(range(256)) * 4,
    "big": rng.randbytes(1 << 20),
}
chars = "".join(chr(i) for i in range(1, 128))
for i in range(0, len(chars), 16):
    items[chars[i:i + 16]] = chars[i:i + 16].encode() + b"!"

# zict 2: the real thing, with an overwrite, a deletion and buffers.
z = zict.File(dir2)
for k, v in items.items():
    z[k] = v
z["over"] = b"first"
z["over"] = b"second"
z["gone"] = b"deleted"
del z["gone"]
z["buffers"] = [b"123", b"4567"]
want2 = dict(items, over=b"second", buffers=b"1234567")
z = zict.File(dir2)
assert len(z) == len(want2), (len(z), len(want2))
for k, v in want2.items():
    assert bytes(z[k]) == v, k

# zict 3's names, written as zict 3 writes them, plus keys only zict 3 can
# name and a stale version left by a crash between write and remove.
want3 = dict(items)
want3.update({"": b"empty key", ".": b"dot", "..": b"dot dot", "dup": b"new"})
n = 0
stale = []
for k, v in want3.items():
    if k == "dup":
        stale.append("dup#%d" % n)
        with open(os.path.join(dir3, stale[0]), "wb") as f:
            f.write(b"old")
        n += 5
    with open(os.path.join(dir3, quote(k, safe="") + "#%d" % n), "wb") as f:
        f.write(v)
    n += 1

enc = lambda d: {k: base64.b64encode(v).decode() for k, v in d.items()}
json.dump({"version": zict.__version__, "zict2": enc(want2), "zict3": enc(want3), "stale3": stale}, sys.stdout)
`

// TestZictInterop opens directories written by Python's zict.File and checks
// that they are adopted whole, in place, and then behave as any store.
func TestZictInterop(t *testing.T) {
	zict2, zict3 := t.TempDir(), t.TempDir()
	cmd := exec.CommandContext(t.Context(), zictPython, "-c", zictScript, zict2, zict3)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) || errors.As(err, &ee) && ee.ExitCode() == 3 {
		t.Fatalf("this test needs Python's zict: install it with `apt-get install -y python3-zict` "+
			"(.ci/run does) so that %s can import it: %v\n%s", zictPython, err, stderr.String())
	}
	if err != nil {
		t.Fatalf("%s: %v\n%s", zictPython, err, stderr.String())
	}
	var res struct {
		Version      string
		Zict2, Zict3 map[string]string
		Stale3       []string
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("decoding the script's output: %v\n%.200s", err, out)
	}
	t.Logf("zict %s, %d and %d keys", res.Version, len(res.Zict2), len(res.Zict3))
	decode := func(m map[string]string) map[string]string {
		for k, v := range m {
			b, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				t.Fatal(err)
			}
			m[k] = string(b)
		}
		return m
	}

	t.Run("zict2-names", func(t *testing.T) {
		if strings.HasPrefix(res.Version, "2.") {
			for _, name := range valueFiles(t, zict2) {
				if strings.Contains(name, "#") {
					t.Fatalf("zict %s wrote %q, not a zict 2 name", res.Version, name)
				}
			}
		} else {
			t.Logf("zict %s is not 2.x: its own naming is tested instead", res.Version)
		}
		checkAdoption(t, zict2, decode(res.Zict2), nil)
	})
	t.Run("zict3-names", func(t *testing.T) {
		checkAdoption(t, zict3, decode(res.Zict3), res.Stale3)
	})
}

// checkAdoption opens dir, which holds want in zict's files (plus the stale
// files, which must go), and checks every key and value, that the files were
// adopted in place, and that the store then works and survives reopening.
func checkAdoption(t *testing.T, dir string, want map[string]string, stale []string) {
	before := map[string]os.FileInfo{}
	for _, name := range valueFiles(t, dir) {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		before[name] = fi
	}
	if len(before) != len(want)+len(stale) {
		t.Fatalf("%d files for %d keys and %d stale files", len(before), len(want), len(stale))
	}

	s := storetest.Open(t, dir, nil)
	checkItems(t, s, want)
	for k, v := range want {
		if ok, err := s.Has(k); !ok || err != nil {
			t.Fatalf("Has(%q) = %v, %v", k, ok, err)
		}
		if err := s.View(k, func(b []byte) error {
			if string(b) != v {
				t.Errorf("View(%q) = %d bytes, want %d", k, len(b), len(v))
			}
			return nil
		}); err != nil {
			t.Fatalf("View(%q): %v", k, err)
		}
	}
	if err := s.Verify(func(k string, err error) bool {
		if err != nil {
			t.Errorf("Verify: %v", err)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	// Adopted in place: the very same files, not copies.
	for name, fi := range before {
		if slices.Contains(stale, name) {
			continue
		}
		now, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !os.SameFile(fi, now) {
			t.Errorf("%s was not adopted in place: %v", name, err)
		}
	}

	// The adopted store takes writes like any other.
	want = maps.Clone(want)
	for k, v := range map[string]string{
		"go/new": "written by Go",
		"plain":  "overwritten by Go",
		"big":    "no longer big",
	} {
		mustSet(t, s, k, []byte(v))
		want[k] = v
	}
	for _, k := range []string{"a/b", "empty", "#"} {
		if err := s.Delete(k); err != nil {
			t.Fatalf("Delete(%q): %v", k, err)
		}
		delete(want, k)
	}
	checkItems(t, s, want)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if files := valueFiles(t, dir); len(files) != len(want) {
		t.Errorf("after Close: %d files for %d keys: superseded, deleted or stale files remain", len(files), len(want))
	}

	s = storetest.Open(t, dir, nil)
	checkItems(t, s, want)
	mustSet(t, s, "plain", []byte("again"))
	want["plain"] = "again"
	if err := s.Delete("go/new"); err != nil {
		t.Fatal(err)
	}
	delete(want, "go/new")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = storetest.Open(t, dir, &dirstore.Options{ReadOnly: true})
	checkItems(t, s, want)
}
