package size

import (
	"errors"
	"io/fs"
	"testing"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]int64{
		"1": 1, "4096": 4096, "7b": 7, "100B": 100, "2 kb": 2000, "512MiB": 512 << 20, "10GB": 10e9,
		"10gb": 10e9, "2G": 2 << 30, "1.5G": 3 << 29, "1.5KiB": 1536, "3 TB": 3e12, "64k": 64 << 10, "1TiB": 1 << 40,
	} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "-1GB", "1XB", "10XB", "1.2.3K", "99999999TiB"} {
		if got, err := Parse(in); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Parse(%q) = %d, %v; want an error matching fs.ErrInvalid", in, got, err)
		}
	}
}

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 10 << 30: "10.0 GiB", 3 << 50: "3.0 PiB"} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
}
