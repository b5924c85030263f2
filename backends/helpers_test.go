package backends_test

import (
	"testing"

	"github.com/dirstore/dirstore/backends"
)

type engine struct {
	name string
	new  func() (backends.Backend, error)
}

func engines(tb testing.TB) []engine {
	es := []engine{{"sync", func() (backends.Backend, error) { return backends.NewSync(), nil }}}
	if b, err := backends.NewUring(nil); err != nil {
		tb.Logf("uring engine not run: %v", err)
	} else {
		b.Close()
		es = append(es, engine{"uring", func() (backends.Backend, error) { return backends.NewUring(nil) }})
	}
	return es
}
