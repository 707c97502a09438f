package docs

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// and is the word a package doc may need once: a package has one job.
var and = regexp.MustCompile(`\band\b`)

// TestPackageDocsSayOneJob: every package's doc comment says what the
// package is for without needing "and" more than once (details go beside
// the code they are about).
func TestPackageDocsSayOneJob(t *testing.T) {
	fset := token.NewFileSet()
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != ".." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		if f.Doc == nil {
			return nil
		}
		if n := len(and.FindAllString(f.Doc.Text(), -1)); n > 1 {
			t.Errorf("%s: the doc of package %s needs \"and\" %d times", path, f.Name.Name, n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
