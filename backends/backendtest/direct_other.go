//go:build !linux

package backendtest

const oDirect = 0 // no O_DIRECT: the Direct check is skipped
