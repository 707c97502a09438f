//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeConformanceReport writes e2e-conformance.md (a table, spec by spec
// and handler by handler, the failures' messages, what is skipped and why)
// and e2e-conformance.json, and returns the regressions: "handler: spec"
// for each spec that passes on the first handler and not on that one.
func writeConformanceReport(t *testing.T, version string, handlers []string, focus string, procs int, results map[string]map[string]specResult, runs map[string]*handlerRun) []string {
	t.Helper()
	specs := make([]string, 0, len(results))
	for s := range results {
		specs = append(specs, s)
	}
	slices.Sort(specs)
	var regressions []string
	for _, spec := range specs {
		if results[spec][handlers[0]].State != "passed" {
			continue
		}
		for _, h := range handlers[1:] {
			if results[spec][h].State != "passed" {
				regressions = append(regressions, h+": "+spec)
			}
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# Kubernetes node conformance (e2e.test %s), handler by handler\n\n", version)
	fmt.Fprintf(&b, "Specs labelled `%s`", nodeConformance)
	if focus != "" {
		fmt.Fprintf(&b, " matching `%s`", focus)
	}
	fmt.Fprintf(&b, ", %d ginkgo processes, on the one-node cluster with CRI's default runtime set to each handler in turn; %s is the baseline.\n\n", procs, handlers[0])
	b.WriteString("| handler | passed | failed | skipped | e2e.test | cluster, images, drain |\n|---|---|---|---|---|---|\n")
	for _, h := range handlers {
		r := runs[h]
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %s | %s |\n", h, r.Passed, r.Failed, r.Skipped,
			time.Duration(r.Seconds)*time.Second, time.Duration(r.ClusterSeconds)*time.Second)
	}
	b.WriteString("\n## Regressions (pass on " + handlers[0] + ", not on another handler)\n\n")
	if len(regressions) == 0 {
		b.WriteString("None.\n")
	}
	for _, r := range regressions {
		fmt.Fprintf(&b, "- %s\n", r)
	}
	b.WriteString("\n## Skipped here, on every handler\n\n")
	for _, s := range activeSkips() {
		fmt.Fprintf(&b, "- `%s`: %s\n", s.pattern, s.reason)
	}
	b.WriteString("\n## Spec by spec\n\n| spec | " + strings.Join(handlers, " | ") + " |\n|---|" + strings.Repeat("---|", len(handlers)) + "\n")
	for _, spec := range specs {
		row := []string{mdCell(spec)}
		for _, h := range handlers {
			r := results[spec][h]
			if strings.HasPrefix(r.Message, "skipped here") {
				r.State = "skipped here"
			}
			row = append(row, r.State)
		}
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	b.WriteString("\n## Not passed: why\n\n")
	for _, spec := range specs {
		for _, h := range handlers {
			if r := results[spec][h]; r.State != "passed" && r.State != "" && !strings.HasPrefix(r.Message, "skipped here") {
				fmt.Fprintf(&b, "- %s, %s (%s): %s\n", h, mdCell(spec), r.State, mdCell(r.Message))
			}
		}
	}

	type skipJSON struct {
		Pattern string `json:"pattern"`
		Reason  string `json:"reason"`
	}
	var skips []skipJSON
	for _, s := range activeSkips() {
		skips = append(skips, skipJSON{s.pattern, s.reason})
	}
	data, err := json.MarshalIndent(struct {
		Version     string                           `json:"version"`
		Focus       string                           `json:"focus,omitempty"`
		Procs       int                              `json:"procs"`
		Handlers    []string                         `json:"handlers"`
		Runs        map[string]*handlerRun           `json:"runs"`
		Regressions []string                         `json:"regressions"`
		Skips       []skipJSON                       `json:"skips"`
		Specs       map[string]map[string]specResult `json:"specs"`
	}{version, focus, procs, handlers, runs, regressions, skips, results}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(conformance.out, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{"e2e-conformance.md": []byte(b.String()), "e2e-conformance.json": append(data, '\n')} {
		if err := os.WriteFile(filepath.Join(conformance.out, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range handlers {
		r := runs[h]
		t.Logf("%s: %d passed, %d failed, %d skipped", h, r.Passed, r.Failed, r.Skipped)
	}
	t.Logf("report in %s", filepath.Join(conformance.out, "e2e-conformance.md"))
	return regressions
}

// mdCell makes s fit a markdown table cell.
func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
