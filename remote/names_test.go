package remote

import (
	"strings"
	"testing"
)

func TestObjectNames(t *testing.T) {
	for _, c := range []struct{ key, name string }{
		{"", "%"},
		{"abc-_.x", "abc-_.x"},
		{".", "%2E"},
		{"..", "%2E%2E"},
		{"...", "%2E.%2E"},
		{"a.", "a%2E"},
		{".well-known/acme-challenge/x", "%2Ewell-known%2Facme-challenge%2Fx"},
		{"a/b", "a%2Fb"},
		{"%", "%25"},
		{"x y#z", "x%20y%23z"},
		{"é", "%C3%A9"},
		{"\x00\xff", "%00%FF"},
	} {
		if got := escapeKey(c.key, true); got != c.name {
			t.Errorf("escapeKey(%q) = %q, want %q", c.key, got, c.name)
		}
		if got, ok := keyOf(c.name); !ok || got != c.key {
			t.Errorf("keyOf(%q) = %q, %v, want %q", c.name, got, ok, c.key)
		}
	}
	// Names objectName never writes are not keys.
	for _, name := range []string{"", "a/b", "%41", "%2e", "%G0", "a%2", ".a", "a.", "x y", "%2F%", "é"} {
		if k, ok := keyOf(name); ok {
			t.Errorf("keyOf(%q) = %q, want not ok", name, k)
		}
	}
}

// validName reports whether name is acceptable as an object name on S3,
// GCS and Azure alike, and safe in URLs and XML without special handling.
func validName(name string) bool {
	if name == "" || len(name) > maxObjectName || name[0] == '.' || name[len(name)-1] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !keep(name[i]) && name[i] != '%' {
			return false
		}
	}
	return true
}

func FuzzObjectName(f *testing.F) {
	for _, k := range []string{"", ".", "a.b", "a/b/", "%41", "\x00", "é", ".."} {
		f.Add(k, "a")
	}
	f.Fuzz(func(t *testing.T, key, other string) {
		name := escapeKey(key, true)
		if !validName(name) && len(name) <= maxObjectName {
			t.Fatalf("escapeKey(%q) = %q, not valid everywhere", key, name)
		}
		back, ok := keyOf(name)
		if !ok || back != key {
			t.Fatalf("keyOf(escapeKey(%q)) = %q, %v", key, back, ok)
		}
		if key != other && escapeKey(other, true) == name {
			t.Fatalf("%q and %q share the name %q", key, other, name)
		}
		// Every key with a prefix lies under the prefix's listing prefix.
		for i := 0; i <= len(key); i++ {
			if p := listPrefix(key[:i]); !strings.HasPrefix(name, p) {
				t.Fatalf("key %q, name %q: not under listPrefix(%q) = %q", key, name, key[:i], p)
			}
		}
	})
}
