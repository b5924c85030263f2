package remote

import (
	"fmt"
	"strings"

	"github.com/dirstore/dirstore"
)

// maxObjectName is the longest object name every service accepts: S3 and
// GCS allow 1,024 bytes, Azure 1,024 characters (ours are ASCII).
const maxObjectName = 1024

// The escaping keeps ASCII letters, digits, '-', '_' and '.' and writes
// every other byte as %XX (upper-case hex). Those characters are safe in
// object names on S3, GCS and Azure, in URLs and in XML listings. Names
// are flat (no '/', so no empty, "." or ".." path segments on Azure or
// GCS), never begin or end with '.' (Azure refuses a trailing dot; ".",
// ".." and ".well-known/..." are special on GCS), and are never empty:
// the empty key is "%", which no escape of another key can be.
func keep(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
		b == '-' || b == '_' || b == '.'
}

const upperHex = "0123456789ABCDEF"

// objectName returns the object name of key, or an error matching
// dirstore.ErrInvalidKey (fs.ErrInvalid) when it would be longer than the
// services allow.
func objectName(op, key string) (string, error) {
	name := escapeKey(key, true)
	if len(name) > maxObjectName {
		return "", &dirstore.KeyError{Op: op, Key: key,
			Err: fmt.Errorf("%w: its object name would have %d bytes, more than %d", dirstore.ErrInvalidKey, len(name), maxObjectName)}
	}
	return name, nil
}

// escapeKey escapes key. A whole key (whole=true) also has a last '.'
// escaped; a prefix does not, since the '.' may be inside the key.
func escapeKey(key string, whole bool) string {
	if key == "" {
		if whole {
			return "%"
		}
		return ""
	}
	var b strings.Builder
	b.Grow(len(key))
	for i := 0; i < len(key); i++ {
		c := key[i]
		if keep(c) && !(c == '.' && (i == 0 || whole && i == len(key)-1)) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&15])
	}
	return b.String()
}

// keyOf is the inverse of objectName; ok is false for a name that
// objectName never returns (an object someone else put in the bucket).
func keyOf(name string) (key string, ok bool) {
	if name == "%" {
		return "", true
	}
	if name == "" {
		return "", false
	}
	var b strings.Builder
	b.Grow(len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c != '%' {
			if !keep(c) || c == '.' && (i == 0 || i == len(name)-1) {
				return "", false
			}
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(name) {
			return "", false
		}
		hi, lo := unhex(name[i+1]), unhex(name[i+2])
		if hi < 0 || lo < 0 {
			return "", false
		}
		d := byte(hi<<4 | lo)
		// One spelling per key: a byte kept as it is is never escaped,
		// except a '.' at either end.
		if keep(d) && !(d == '.' && (i == 0 || i+2 == len(name)-1)) {
			return "", false
		}
		b.WriteByte(d)
		i += 2
	}
	return b.String(), true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// listPrefix returns the object-name prefix under which every key that
// begins with prefix lies. Trailing dots are left off (a key's last '.' is
// escaped, an inner one is not), so the listing is filtered by key after.
func listPrefix(prefix string) string {
	trimmed := strings.TrimRight(prefix, ".")
	if trimmed == "" && prefix != "" {
		// A prefix of dots: the first is escaped in every key.
		return "%2E"
	}
	return escapeKey(trimmed, false)
}
