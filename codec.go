package dirstore

import (
	"fmt"
	"io/fs"

	"github.com/klauspost/compress/s2"
)

// S2Codec returns a Codec that compresses what inner marshals with S2
// (github.com/klauspost/compress/s2, a faster relative of Snappy), in S2's
// block format, for a Buffer whose spilled values are worth compressing:
// what the Buffer writes to its Store, and reads back, is the compressed
// form. A nil inner is allowed for []byte values (the bytes as they are);
// for other types S2Codec panics.
//
// Incompressible data costs little: S2 gives up on it quickly and stores
// it as one literal, at most 10 bytes longer than the input (a 1 MiB
// random value grows by 7 bytes), so no raw form is needed beside it.
// A marshalled value must be smaller than 4 GiB, S2's block limit;
// Marshal reports a larger one as an error matching fs.ErrInvalid.
//
// Unmarshal of bytes that are not an S2 block (written by another Codec,
// or damaged in memory; the Store's checksum catches damage on disk)
// returns an error matching ErrCorrupt. Marshal and Unmarshal may be
// called concurrently if inner's may.
func S2Codec[V any](inner Codec[V]) Codec[V] {
	if inner == nil {
		var zero V
		if _, ok := any(zero).([]byte); !ok {
			panic(fmt.Sprintf("dirstore: S2Codec: nil inner Codec for %T values", zero))
		}
		inner = bytesCodec[V]{}
	}
	return s2Codec[V]{inner: inner}
}

type s2Codec[V any] struct{ inner Codec[V] }

// errTooLarge reports a value larger than an S2 block can hold.
var errTooLarge error = &sentinel{"dirstore: value too large for an S2 block (4 GiB)", fs.ErrInvalid}

func (c s2Codec[V]) Marshal(v V) ([]byte, error) {
	data, err := c.inner.Marshal(v)
	if err != nil {
		return nil, err
	}
	if s2.MaxEncodedLen(len(data)) < 0 {
		return nil, fmt.Errorf("%w: %d bytes", errTooLarge, len(data))
	}
	return s2.Encode(nil, data), nil
}

func (c s2Codec[V]) Unmarshal(data []byte) (V, error) {
	raw, err := s2.Decode(nil, data)
	if err != nil {
		// Whatever the reason (s2.ErrCorrupt, s2.ErrTooLarge), data is
		// not a block that Marshal wrote.
		var zero V
		return zero, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return c.inner.Unmarshal(raw)
}
