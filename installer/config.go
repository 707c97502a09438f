package installer

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// ConfigInfo is what the installer needs to know of containerd's config.
type ConfigInfo struct {
	// Version is the config's version; 1 when the file has none, as
	// containerd reads it.
	Version int
	// Imports is its top-level imports array.
	Imports []string
}

// Imported tells whether the config imports glob itself.
func (c ConfigInfo) Imported(glob string) bool {
	for _, i := range c.Imports {
		if i == glob {
			return true
		}
	}
	return false
}

// ParseConfig decodes containerd's config (data read from name) with a
// TOML parser: an error names the file, line and column.
func ParseConfig(name string, data []byte) (ConfigInfo, error) {
	var c struct {
		Version *int     `toml:"version"`
		Imports []string `toml:"imports"`
	}
	if err := toml.Unmarshal(data, &c); err != nil {
		var derr *toml.DecodeError
		if errors.As(err, &derr) {
			row, col := derr.Position()
			return ConfigInfo{}, fmt.Errorf("containerd config %s:%d:%d cannot be parsed: %s", name, row, col, derr.Error())
		}
		return ConfigInfo{}, fmt.Errorf("containerd config %s cannot be parsed: %w", name, err)
	}
	info := ConfigInfo{Version: 1, Imports: c.Imports}
	if c.Version != nil {
		info.Version = *c.Version
	}
	return info, nil
}

// AddImport returns data with glob added to its top-level imports: to the
// end of an existing imports array, or as a new `imports = [glob]` line
// before the first table. Every other byte stays as it was. It returns
// data itself when glob is already imported.
func AddImport(name string, data []byte, glob string) ([]byte, error) {
	info, err := ParseConfig(name, data)
	if err != nil {
		return nil, err
	}
	if info.Imported(glob) {
		return data, nil
	}
	doc, err := scan(data)
	if err != nil {
		return nil, fmt.Errorf("containerd config %s: %w", name, err)
	}
	quoted := tomlString(glob)
	if doc.imports == nil {
		line := importsLine(glob)
		at := doc.firstTable
		if at < 0 { // no table: the end of the file is still top level
			at = len(data)
			if at > 0 && data[at-1] != '\n' {
				line = "\n" + strings.TrimSuffix(line, "\n")
			}
		}
		return splice(data, at, at, line), nil
	}
	arr := doc.imports
	if len(arr.elems) == 0 {
		return splice(data, arr.close, arr.close, quoted), nil
	}
	last := arr.elems[len(arr.elems)-1]
	return splice(data, last.end, last.end, ", "+quoted), nil
}

// RemoveImport undoes AddImport: it returns data without glob in its
// imports, taking off the line AddImport inserted when glob is the only
// import on it, else the element and the separator AddImport put before
// it. It returns data itself when glob is not imported.
func RemoveImport(name string, data []byte, glob string) ([]byte, error) {
	info, err := ParseConfig(name, data)
	if err != nil {
		return nil, err
	}
	if !info.Imported(glob) {
		return data, nil
	}
	doc, err := scan(data)
	if err != nil {
		return nil, fmt.Errorf("containerd config %s: %w", name, err)
	}
	arr := doc.imports
	idx := -1
	for i, e := range arr.elems {
		if e.value == glob {
			idx = i
			break
		}
	}
	if idx < 0 {
		return data, nil
	}
	if len(arr.elems) == 1 {
		line := strings.TrimSuffix(importsLine(glob), "\n")
		if string(data[arr.start:arr.end]) == line {
			end := arr.end
			start := arr.start
			switch {
			case end < len(data) && data[end] == '\n':
				end++
			case start > 0 && data[start-1] == '\n':
				start-- // AddImport's line at the end of a file without a final newline
			}
			return splice(data, start, end, ""), nil
		}
		e := arr.elems[0]
		return splice(data, e.start, e.end, ""), nil
	}
	if idx > 0 {
		return splice(data, arr.elems[idx-1].end, arr.elems[idx].end, ""), nil
	}
	return splice(data, arr.elems[0].start, arr.elems[1].start, ""), nil
}

// importsLine is the line AddImport inserts when the config has no imports.
func importsLine(glob string) string {
	return "imports = [" + tomlString(glob) + "]\n"
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func splice(data []byte, from, to int, insert string) []byte {
	out := make([]byte, 0, len(data)-(to-from)+len(insert))
	out = append(out, data[:from]...)
	out = append(out, insert...)
	return append(out, data[to:]...)
}

// document holds the byte offsets of the parts of a config the edits touch.
type document struct {
	firstTable int // start of the line of the first table header; -1: none
	imports    *importsArray
}

type importsArray struct {
	start, end int // the whole `imports = [...]` key/value
	close      int // offset of its closing bracket
	elems      []element
}

type element struct {
	start, end int
	value      string
}

// scan finds the first table header and the top-level imports key/value
// with the TOML library's parser, which reports byte ranges.
func scan(data []byte) (*document, error) {
	doc := &document{firstTable: -1}
	var p unstable.Parser
	p.Reset(data)
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			if doc.firstTable < 0 {
				it := e.Key()
				if !it.Next() {
					return nil, errors.New("a table without a key")
				}
				off := int(it.Node().Raw.Offset)
				doc.firstTable = bytes.LastIndexByte(data[:off], '\n') + 1
			}
		case unstable.KeyValue:
			if doc.firstTable >= 0 {
				continue
			}
			it := e.Key()
			it.Next()
			if string(it.Node().Data) != "imports" || it.Next() {
				continue
			}
			v := e.Value()
			if v.Kind != unstable.Array {
				return nil, fmt.Errorf("imports is a %s, not an array", v.Kind)
			}
			arr := &importsArray{start: int(e.Raw.Offset), end: int(e.Raw.Offset + e.Raw.Length)}
			arr.close = bytes.LastIndexByte(data[:arr.end], ']')
			for c := v.Children(); c.Next(); {
				n := c.Node()
				if n.Kind == unstable.Comment {
					continue
				}
				if n.Kind != unstable.String {
					return nil, fmt.Errorf("imports holds a %s, not only strings", n.Kind)
				}
				arr.elems = append(arr.elems, element{start: int(n.Raw.Offset), end: int(n.Raw.Offset + n.Raw.Length), value: string(n.Data)})
			}
			doc.imports = arr
		}
	}
	if err := p.Error(); err != nil {
		return nil, err
	}
	return doc, nil
}
