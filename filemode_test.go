package dirstore_test

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/dirstore/dirstore"
	"github.com/dirstore/dirstore/internal/storetest"
)

// TestFileModes: every file and directory a store creates, the manifest's
// included, has Options.FileMode or DirMode, less the umask (as
// os.OpenFile and os.Mkdir give), after a workload that makes the manifest
// write every kind of file it has (log, tables, MANIFEST, OPTIONS,
// markers, lock).
func TestFileModes(t *testing.T) {
	for _, tc := range []struct {
		umask             int
		fileMode, dirMode fs.FileMode
		nosync            bool
	}{
		{0, 0o640, 0o750, false},
		{0, 0o666, 0o777, true},
		{0o022, 0o660, 0o770, false},
		{0o077, 0, 0, true}, // the defaults: 0600 and 0700
	} {
		{
			nosync := tc.nosync
			t.Run(fmt.Sprintf("umask=%03o,file=%03o,dir=%03o,nosync=%v", tc.umask, tc.fileMode, tc.dirMode, nosync), func(t *testing.T) {
				old := syscall.Umask(tc.umask)
				defer syscall.Umask(old)
				wantFile, wantDir := tc.fileMode, tc.dirMode
				if wantFile == 0 {
					wantFile, wantDir = 0o600, 0o700
				}
				wantFile &^= fs.FileMode(tc.umask)
				wantDir &^= fs.FileMode(tc.umask)

				dir := filepath.Join(t.TempDir(), "new", "store") // Open makes both
				o := &dirstore.Options{FileMode: tc.fileMode, DirMode: tc.dirMode, NoSync: nosync}
				for round := range 2 {
					s := storetest.Open(t, dir, o)
					big := []byte(strings.Repeat("k", 40_000))
					for i := range 40 {
						// Long keys fill the manifest's log past what a
						// clean Close flushes to a table.
						key := fmt.Sprintf("%d/%d/%s", round, i, big)
						mustSet(t, s, key, []byte("v"))
						mustSet(t, s, key, []byte("overwritten"))
						if i%3 == 0 {
							if err := s.Delete(key); err != nil {
								t.Fatal(err)
							}
						}
					}
					if _, err := s.SetFrom("streamed", strings.NewReader("from a reader")); err != nil {
						t.Fatal(err)
					}
					if err := s.Sync(); err != nil {
						t.Fatal(err)
					}
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
				}
				kinds := map[string]bool{}
				err := filepath.WalkDir(filepath.Dir(dir), func(p string, d fs.DirEntry, err error) error {
					if err != nil {
						return err
					}
					fi, err := d.Info()
					if err != nil {
						return err
					}
					want := wantFile
					if d.IsDir() {
						want = wantDir
					}
					if fi.Mode().Perm() != want {
						t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
					}
					name := d.Name()
					if i := strings.IndexAny(name, ".-0123456789"); i > 0 && strings.Contains(p, "manifest") {
						name = name[:i]
					}
					kinds[filepath.Ext(d.Name())+"|"+name] = true
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				// The workload reached every kind of the manifest's files.
				for _, k := range []string{".log|", ".sst|", "|MANIFEST", "|OPTIONS", "|LOCK", "|marker"} {
					found := false
					for kind := range kinds {
						ext, name, _ := strings.Cut(k, "|")
						if (ext == "" || strings.HasPrefix(kind, ext+"|")) && (name == "" || strings.HasSuffix(kind, "|"+name)) {
							found = true
						}
					}
					if !found {
						t.Errorf("no manifest file of kind %q among %v", k, kinds)
					}
				}
			})
		}
	}
}
