package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dirstore/dirstore/internal/gocacheprog"
)

// gocache is "dirstore gocache": a GOCACHEPROG server (package
// gocacheprog). With -remote it runs "dirstore-remote gocache", which
// lives in the remote module so that this one carries no cloud SDK.
func (c *cli) gocache(args []string) error {
	o, err := gocacheprog.ParseArgs(args)
	var ue *gocacheprog.UsageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(c.stdout, gocacheprog.Usage)
		return nil
	case errors.As(err, &ue):
		return usagef("%s", ue.Msg)
	case err != nil:
		return err
	}
	if o.Remote == "" {
		return gocacheprog.Run(o, nil, c.stdin, c.stdout, c.stderr)
	}
	return c.runRemote("gocache", args)
}

// syncRemote is "dirstore sync -remote URL DIR": "dirstore-remote sync".
func (c *cli) syncRemote(args []string) error {
	if !slices.ContainsFunc(args, func(a string) bool { return a == "-remote" || strings.HasPrefix(a, "-remote=") }) {
		return usagef("usage: dirstore sync -remote URL DIR")
	}
	return c.runRemote("sync", args)
}

// runRemote runs "dirstore-remote cmd args...", which lives in the remote
// module so that this one carries no cloud SDK, with this command's
// standard input and output.
func (c *cli) runRemote(cmd string, args []string) error {
	bin, err := remoteCommand()
	if err != nil {
		return fmt.Errorf("%s -remote: %w", cmd, err)
	}
	x := exec.Command(bin, append([]string{cmd}, args...)...)
	x.Stdin, x.Stdout, x.Stderr = c.stdin, c.stdout, c.stderr
	if err := x.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return &exitCode{code: ee.ExitCode()} // it said why on stderr
		}
		return fmt.Errorf("%s -remote: %w", cmd, err)
	}
	return nil
}

// remoteCommand finds dirstore-remote beside this executable, or else in
// PATH.
func remoteCommand() (string, error) {
	const name = "dirstore-remote"
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if _, err := exec.LookPath(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is not installed beside dirstore or in PATH (go install github.com/dirstore/dirstore/remote/cmd/dirstore-remote@latest): %w", name, os.ErrNotExist)
	}
	return p, nil
}
