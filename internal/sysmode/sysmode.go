//go:build unix

// Package sysmode converts io/fs file modes to the mode bits of open(2).
package sysmode

import (
	"io/fs"

	"golang.org/x/sys/unix"
)

// Of converts a fs.FileMode to open(2)'s mode, as package os does.
func Of(m fs.FileMode) uint32 {
	o := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		o |= unix.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		o |= unix.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		o |= unix.S_ISVTX
	}
	return o
}
