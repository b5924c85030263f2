package escape

import (
	"strings"
	"testing"
)

func TestQuoteMatchesZict(t *testing.T) {
	// Expected names computed with Python: quote(key, safe="") + "#1".
	for key, want := range map[string]string{
		"a/b c#%":  "a%2Fb%20c%23%25#1",
		"":         "#1",
		".":        ".#1",
		"..":       "..#1",
		"x":        "x#1",
		"A-z_0.9~": "A-z_0.9~#1",
		"\x00\x01": "%00%01#1",
		"é":        "%C3%A9#1",
		"\xff":     "%FF#1",
		"key?=&+":  "key%3F%3D%26%2B#1",
	} {
		if got := Name(key, 1); got != want {
			t.Errorf("Name(%q, 1) = %q, want %q", key, got, want)
		}
	}
}

func TestLongNamesAreCut(t *testing.T) {
	for _, k := range []string{strings.Repeat("a", 1000), strings.Repeat("/", 1000), strings.Repeat("a/", 300), strings.Repeat("ab/", 300)} {
		for _, n := range []uint64{0, 7, 1<<64 - 1} {
			name := Name(k, n)
			if len(name) > MaxName {
				t.Fatalf("len(Name) = %d", len(name))
			}
			q, m, ok := Parse(name)
			if !ok || m != n || !strings.HasPrefix(Quote(k), q) {
				t.Fatalf("Parse(%q) = %q, %d, %v", name, q, m, ok)
			}
		}
	}
}

func TestParseRejectsForeignNames(t *testing.T) {
	for _, name := range []string{"x", "x#", "x#01", "x#-1", "x#1a", "a b#1", "%zz#1", "%2f#1", "x#99999999999999999999999", ".#x"} {
		if _, _, ok := Parse(name); ok {
			t.Errorf("Parse(%q) accepted a foreign name", name)
		}
	}
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", ".", "..", "/", "#", "\x00", "a/b c#%", "\xff\xfe", "日本", strings.Repeat("%", 200)} {
		f.Add(s, uint64(3))
	}
	f.Fuzz(func(t *testing.T, key string, n uint64) {
		q := Quote(key)
		if back, ok := Unquote(q); !ok || back != key {
			t.Fatalf("Unquote(Quote(%q)) = %q, %v", key, back, ok)
		}
		name := Name(key, n)
		if len(name) > MaxName || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
			t.Fatalf("bad file name %q for key %q", name, key)
		}
		qp, m, ok := Parse(name)
		if !ok || m != n || !strings.HasPrefix(q, qp) {
			t.Fatalf("Parse(%q) = %q, %d, %v", name, qp, m, ok)
		}
		if len(q)+21 < MaxName && qp != q {
			t.Fatalf("short key %q was cut: %q", key, name)
		}
	})
}
