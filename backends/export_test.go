package backends

// Choose is the engine choice behind Default, for a given DIRSTORE_BACKEND.
var Choose = choose

// FailUringSetup makes every uring setup fail with err until restore is
// called, as a kernel without io_uring or a seccomp filter would.
func FailUringSetup(err error) (restore func()) {
	old := uringSetupHook
	uringSetupHook = func() error { return err }
	return func() { uringSetupHook = old }
}
