// Package escape turns store keys into file names and back.
//
// Names follow zict.File: Python's quote(key, safe="") (the unreserved set
// A-Za-z0-9_.-~ is kept, every other byte becomes an uppercase %XX), then
// "#" and a version number. Because '#' is always escaped inside a key, the
// first '#' in a name starts the version suffix.
package escape

import (
	"strconv"
	"strings"
)

// MaxName is the longest file name most file systems accept, in bytes.
const MaxName = 255

const hexDigits = "0123456789ABCDEF"

// unreserved reports whether quote keeps b as it is.
func unreserved(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
		b == '_' || b == '.' || b == '-' || b == '~'
}

// Quote is Python's urllib.parse.quote(key, safe=""), applied to the bytes
// of key.
func Quote(key string) string {
	n := 0
	for i := 0; i < len(key); i++ {
		if !unreserved(key[i]) {
			n++
		}
	}
	if n == 0 {
		return key
	}
	var b strings.Builder
	b.Grow(len(key) + 2*n)
	for i := 0; i < len(key); i++ {
		c := key[i]
		if unreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// Unquote undoes Quote. Like Python's unquote, a '%' not followed by two hex
// digits is kept as it is; ok is false for a string Quote could not have
// produced (such a byte, or a byte outside the unreserved set).
func Unquote(s string) (key string, ok bool) {
	ok = true
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) {
			hi, lo := unhex(s[i+1]), unhex(s[i+2])
			if hi >= 0 && lo >= 0 {
				if b == nil {
					b = append(make([]byte, 0, len(s)), s[:i]...)
				}
				b = append(b, byte(hi<<4|lo))
				i += 2
				continue
			}
		}
		if !unreserved(c) {
			ok = false
		}
		if b != nil {
			b = append(b, c)
		}
	}
	if b == nil {
		return s, ok
	}
	return string(b), ok
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// Name returns the file name of version n of key: Quote(key) + "#" + n. A
// name that would be longer than MaxName is cut inside the quoted part (never
// inside a %XX escape); the version, which never repeats, keeps it unique.
func Name(key string, n uint64) string {
	q := Quote(key)
	var suffix [21]byte
	s := strconv.AppendUint(append(suffix[:0], '#'), n, 10)
	if len(q)+len(s) > MaxName {
		cut := MaxName - len(s)
		// Back up to the start of an escape if the cut lands inside one.
		for i := cut - 1; i >= 0 && i >= cut-2; i-- {
			if q[i] == '%' {
				cut = i
				break
			}
		}
		q = q[:cut]
	}
	return q + string(s)
}

// Parse splits a file name of the store's own naming into its quoted key
// part and version. ok is false for any other name: no '#', a version that
// is not a canonical decimal number, or a quoted part with bytes Quote never
// writes.
func Parse(name string) (quoted string, n uint64, ok bool) {
	i := strings.IndexByte(name, '#')
	if i < 0 {
		return "", 0, false
	}
	quoted, num := name[:i], name[i+1:]
	if len(num) == 0 || len(num) > 20 || (num[0] == '0' && len(num) > 1) {
		return "", 0, false
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return "", 0, false
	}
	if !ValidQuoted(quoted) {
		return "", 0, false
	}
	return quoted, n, true
}

// ValidQuoted reports whether s could have been written by Quote: only
// unreserved bytes and %XX escapes with uppercase hex digits.
func ValidQuoted(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			continue
		}
		if c != '%' || i+2 >= len(s) || !upperHex(s[i+1]) || !upperHex(s[i+2]) {
			return false
		}
		i += 2
	}
	return true
}

func upperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }
