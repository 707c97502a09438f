package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// object is one decoded manifest document and where it came from.
type object struct {
	source string
	obj    runtime.Object
}

// key names an object as the API server does: kind, namespace, name.
func key(o runtime.Object) string {
	m, err := meta(o)
	if err != nil {
		return "?"
	}
	return o.GetObjectKind().GroupVersionKind().Kind + " " + m.GetNamespace() + "/" + m.GetName()
}

func meta(o runtime.Object) (metav1.Object, error) {
	m, ok := o.(metav1.Object)
	if !ok {
		return nil, errors.New("no object metadata")
	}
	return m, nil
}

// decodeDocuments splits a YAML stream into its documents and decodes each
// strictly into the Kubernetes type its apiVersion and kind name: an unknown
// kind, an unknown or duplicated field, or a wrong value type fails, as the
// API server's strict field validation would. Documents holding nothing
// (only comments, as helm template emits) are skipped.
func decodeDocuments(t *testing.T, source string, data []byte) []object {
	t.Helper()
	var out []object
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", source, i, err)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Fatalf("%s: document %d: %v", source, i, err)
		}
		if s := strings.TrimSpace(string(js)); s == "null" || s == "{}" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("%s: document %d: %v", source, i, err)
		}
		gvk := schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind)
		obj, err := scheme.Scheme.New(gvk)
		if err != nil {
			t.Fatalf("%s: document %d: %v", source, i, err)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("%s: document %d (%s): %v", source, i, gvk.Kind, err)
		}
		out = append(out, object{source: source, obj: obj})
	}
	return out
}

// decodeDir decodes every YAML file directly in dir (not its
// subdirectories, as `kubectl apply -f dir` reads it), in the order kubectl
// applies them: by file name, then document order.
func decodeDir(t *testing.T, dir string) []object {
	t.Helper()
	var files []string
	for _, pattern := range []string{"*.yaml", "*.yml", "*.json"} {
		m, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	if len(files) == 0 {
		t.Fatalf("no manifests in %s", dir)
	}
	var out []object
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, decodeDocuments(t, f, data)...)
	}
	return out
}

// find returns the one object of that kind and name, failing otherwise.
func find[T runtime.Object](t *testing.T, objs []object, name string) T {
	t.Helper()
	var found []T
	for _, o := range objs {
		if typed, ok := o.obj.(T); ok {
			if m, err := meta(o.obj); err == nil && m.GetName() == name {
				found = append(found, typed)
			}
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("%d objects %T named %q, want 1", len(found), zero, name)
	}
	return found[0]
}
