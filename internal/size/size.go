// Package size reads byte counts as people write them on command lines.
package size

import (
	"fmt"
	"io/fs"
	"math"
	"strconv"
	"strings"
)

// Parse reads a size such as 512MiB, 10GB, 1.5G or 4096. KB, MB, GB and TB
// are powers of 1000; K, M, G and T alone, and KiB to TiB, powers of 1024.
// An error matches fs.ErrInvalid.
func Parse(v string) (int64, error) {
	s := strings.TrimSpace(v)
	i := len(s)
	for i > 0 && (s[i-1] < '0' || s[i-1] > '9') && s[i-1] != '.' {
		i--
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	mult := map[string]float64{"": 1, "b": 1,
		"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
		"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}[unit]
	f, err := strconv.ParseFloat(num, 64)
	if mult == 0 || err != nil || f < 0 || f*mult > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is not a size (such as 512MiB, 10GB or 4096): %w", v, fs.ErrInvalid)
	}
	return int64(f * mult), nil
}

// Format writes a byte count for people: 512 B, 1.5 KiB, 10.0 GiB.
func Format(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n)/unit, 0
	for f >= unit && i < 4 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGTP"[i])
}
