package manifest

import (
	"bytes"
	"errors"
	"testing"
)

// The entry encoding is pinned: entries written before ModTime was recorded
// still decode (with ModTime 0), and the encoding with it is fixed.
func TestEntryEncoding(t *testing.T) {
	for _, tc := range []struct {
		name string
		enc  []byte
		want Entry
	}{
		// flags 0, version 5, size 300 (uvarint ac 02), CRC 0x04030201.
		{"old", []byte{0, 5, 0xac, 0x02, 1, 2, 3, 4}, Entry{Version: 5, Size: 300, CRC: 0x04030201}},
		{"old legacy", []byte{1, 0, 3, 9, 0, 0, 0}, Entry{Legacy: true, Size: 3, CRC: 9}},
		// flags 2: a zigzag varint of ModTime (1 -> 02) after the CRC.
		{"modtime", []byte{2, 5, 3, 1, 0, 0, 0, 2}, Entry{Version: 5, Size: 3, CRC: 1, ModTime: 1}},
		{"modtime legacy", []byte{3, 0, 0, 0, 0, 0, 0, 0x80, 0x80, 0x84, 0xc9, 0xc1, 0x89, 0xc5, 0xfe, 0x30},
			Entry{Legacy: true, ModTime: 1_765_000_000_000_000_000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, rest, err := DecodeEntry(append(tc.enc, 0xee))
			if err != nil || got != tc.want || !bytes.Equal(rest, []byte{0xee}) {
				t.Fatalf("DecodeEntry(% x) = %+v, rest % x, %v; want %+v", tc.enc, got, rest, err, tc.want)
			}
			if enc := tc.want.AppendEncode(nil); !bytes.Equal(enc, tc.enc) {
				t.Fatalf("AppendEncode(%+v) = % x, want % x", tc.want, enc, tc.enc)
			}
		})
	}
	for _, bad := range [][]byte{
		{4, 5, 3, 1, 0, 0, 0},    // unknown flag
		{2, 5, 3, 1, 0, 0, 0},    // ModTime flagged but missing
		{2, 5, 3, 1, 0, 0, 0, 0}, // ModTime flagged but zero
		{2, 5, 3, 1, 0, 0, 0, 0x80},
	} {
		if _, _, err := DecodeEntry(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("DecodeEntry(% x) = %v, want ErrCorrupt", bad, err)
		}
	}
}
