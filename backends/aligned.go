package backends

import "unsafe"

// Alignment is the address and size alignment AlignedBuffer provides: a page,
// enough for O_DIRECT on common file systems and devices.
const Alignment = 4096

// AlignedBuffer returns a zeroed n-byte buffer whose address is a multiple of
// Alignment, as O_DIRECT I/O requires. It is ordinary Go memory.
func AlignedBuffer(n int) []byte {
	b := make([]byte, n+Alignment)
	skip := (Alignment - int(uintptr(unsafe.Pointer(unsafe.SliceData(b)))%Alignment)) % Alignment
	return b[skip : skip+n : skip+n]
}
