package dirstore_test

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

const lockChildEnv = "DIRSTORE_LOCK_CHILD"

// TestLockedAcrossProcesses: a directory open in one process cannot be
// opened by another (ErrLocked), and can once the first one exits.
func TestLockedAcrossProcesses(t *testing.T) {
	if dir := os.Getenv(lockChildEnv); dir != "" {
		s, err := dirstore.Open(dir, nil)
		if err != nil {
			os.Stdout.WriteString("error: " + err.Error() + "\n")
			os.Exit(2)
		}
		os.Stdout.WriteString("open\n")
		bufio.NewReader(os.Stdin).ReadString('\n') // hold it until told
		s.Close()
		os.Exit(0)
	}
	dir := filepath.Join(t.TempDir(), "store")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockedAcrossProcesses$", "-test.count=1")
	cmd.Env = append(os.Environ(), lockChildEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "open\n" {
		t.Fatalf("the other process said %q", line)
	}
	if _, err := dirstore.Open(dir, nil); !errors.Is(err, dirstore.ErrLocked) {
		t.Fatalf("Open of a directory another process has open = %v, want ErrLocked", err)
	}
	stdin.Write([]byte("done\n"))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the other process: %v", err)
	}
	s := storetest.Open(t, dir, nil)
	mustSet(t, s, "k", []byte("v"))
}
