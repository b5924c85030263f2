package gocacheprog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/dirstore/dirstore"
)

// actionRecord is an action's value: its output, that output's size and
// when it was put. Encoded as the version byte actionRecordV1, the output
// ID's length (one byte) and bytes, the size and the time in Unix
// nanoseconds (8 bytes each, big-endian). A change of layout takes a new
// version byte; older records stay readable.
type actionRecord struct {
	outputID []byte
	size     int64
	time     time.Time
}

const actionRecordV1 = 1

var errBadRecord = fmt.Errorf("action record is not valid: %w", dirstore.ErrCorrupt)

func (r *actionRecord) encode() []byte {
	b := make([]byte, 0, 2+len(r.outputID)+16)
	b = append(b, actionRecordV1, byte(len(r.outputID)))
	b = append(b, r.outputID...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.size))
	return binary.BigEndian.AppendUint64(b, uint64(r.time.UnixNano()))
}

func decodeActionRecord(b []byte) (actionRecord, error) {
	if len(b) < 2 || b[0] != actionRecordV1 {
		return actionRecord{}, errBadRecord
	}
	n := int(b[1])
	if n == 0 || n > maxIDLen || len(b) != 2+n+16 {
		return actionRecord{}, errBadRecord
	}
	r := actionRecord{outputID: bytes.Clone(b[2 : 2+n])}
	r.size = int64(binary.BigEndian.Uint64(b[2+n:]))
	r.time = time.Unix(0, int64(binary.BigEndian.Uint64(b[2+n+8:])))
	if r.size < 0 {
		return actionRecord{}, errBadRecord
	}
	return r, nil
}
