// Package docs holds the project's documentation with the tests that keep
// it true to the tree: links resolve to files or headings that exist, every
// page is reachable from the README, every test a page names exists.
package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// pages are the Markdown files the checks read, relative to this directory.
func pages(t *testing.T) []string {
	t.Helper()
	names, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("no Markdown page in docs/")
	}
	return append([]string{"../README.md"}, names...)
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// prose is a page without its fenced code blocks, where a bracket is not a link.
func prose(text string) string {
	var out []string
	fenced := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

var (
	linkRE    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	headingRE = regexp.MustCompile(`(?m)^#{1,6} +(.+?) *#*$`)
	testRE    = regexp.MustCompile("`((?:Test|Fuzz)[A-Z][A-Za-z0-9_]*)(\\*?)")
	funcRE    = regexp.MustCompile(`(?m)^func ((?:Test|Fuzz)[A-Za-z0-9_]+)\(`)
)

// anchors are the fragment ids GitHub gives a page's headings: lower case,
// punctuation dropped, spaces turned to hyphens, a repeat numbered.
func anchors(text string) map[string]bool {
	ids := map[string]bool{}
	seen := map[string]int{}
	for _, m := range headingRE.FindAllStringSubmatch(prose(text), -1) {
		var b strings.Builder
		for _, r := range strings.ToLower(m[1]) {
			switch {
			case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		id := b.String()
		if n := seen[id]; n > 0 {
			seen[id]++
			id = id + "-" + string(rune('0'+n))
		} else {
			seen[id] = 1
		}
		ids[id] = true
	}
	return ids
}

// TestLinksResolve fails on a relative link to a file that does not exist,
// or to a heading its page does not have.
func TestLinksResolve(t *testing.T) {
	for _, page := range pages(t) {
		text := read(t, page)
		for _, m := range linkRE.FindAllStringSubmatch(prose(text), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, frag, _ := strings.Cut(target, "#")
			path := page
			if file != "" {
				path = filepath.Join(filepath.Dir(page), file)
				if _, err := os.Stat(path); err != nil {
					t.Errorf("%s: link %q: %v", page, target, err)
					continue
				}
			}
			if frag == "" {
				continue
			}
			if !strings.HasSuffix(path, ".md") {
				t.Errorf("%s: link %q: a fragment on a file that is not Markdown", page, target)
				continue
			}
			if !anchors(read(t, path))[frag] {
				t.Errorf("%s: link %q: %s has no heading with id %q", page, target, path, frag)
			}
		}
	}
}

// TestEveryPageLinkedFromReadme fails on a page of docs/ a reader of the
// README cannot reach.
func TestEveryPageLinkedFromReadme(t *testing.T) {
	readme := prose(read(t, "../README.md"))
	for _, page := range pages(t)[1:] {
		if !strings.Contains(readme, "](docs/"+page+")") {
			t.Errorf("README.md has no link to docs/%s", page)
		}
	}
}

// TestNamedTestsExist fails when a page names a test or fuzz target (in
// backticks; a trailing * names every test with that prefix) that no
// _test.go file of the repository defines: the failure model and the
// conformance pages cite tests as proof, and a renamed test must take its
// citation along.
func TestNamedTestsExist(t *testing.T) {
	var defined []string
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != ".." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range funcRE.FindAllStringSubmatch(string(b), -1) {
				defined = append(defined, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	named := 0
	for _, page := range pages(t) {
		for _, m := range testRE.FindAllStringSubmatch(read(t, page), -1) {
			name, prefix := m[1], m[2] == "*"
			named++
			if !slices.ContainsFunc(defined, func(d string) bool {
				return d == name || prefix && strings.HasPrefix(d, name)
			}) {
				t.Errorf("%s names %s%s, which no _test.go file defines", page, name, m[2])
			}
		}
	}
	if named == 0 {
		t.Fatal("no page names a test: the pattern no longer matches how pages cite tests")
	}
}
