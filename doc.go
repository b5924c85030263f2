// Package dirstore keeps bytes on local disk and in RAM behind the
// interfaces Go programmers already know.
package dirstore
