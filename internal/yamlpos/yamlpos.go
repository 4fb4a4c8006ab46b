// Package yamlpos finds where a YAML path stands in a file, so a
// configuration error (the rules, the notify routes) names its line.
package yamlpos

import (
	"bytes"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
)

// Line finds the line of a YAML path ($.a.b[1].c) in data. A path ending in
// a key is the line of that key: the token of a mapping or list value is its
// first entry, a line too far. A setting missing from the file (required,
// or inherited) is reported at the nearest enclosing entry that is there;
// 0 when there is none.
func Line(data []byte, path string) int {
	for path != "" && path != "$" {
		if i := strings.LastIndexByte(path, '.'); i > 0 && !strings.HasSuffix(path, "]") {
			if l := keyLine(Node(data, path[:i]), path[i+1:]); l > 0 {
				return l
			}
		}
		if node := Node(data, path); node != nil && node.GetToken() != nil {
			return node.GetToken().Position.Line
		}
		path = path[:max(strings.LastIndexByte(path, '.'), strings.LastIndexByte(path, '['))]
	}
	return 0
}

// Node is the node at path in data, nil when the file does not have it.
func Node(data []byte, path string) ast.Node {
	yp, err := yaml.PathString(path)
	if err != nil {
		return nil
	}
	node, err := yp.ReadNode(bytes.NewReader(data))
	if err != nil {
		return nil
	}
	return node
}

// keyLine is the line of key in a mapping node (0 when absent).
func keyLine(n ast.Node, key string) int {
	var values []*ast.MappingValueNode
	switch m := n.(type) {
	case *ast.MappingNode:
		values = m.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{m}
	}
	for _, mv := range values {
		if tk := mv.Key.GetToken(); tk != nil && tk.Value == key {
			return tk.Position.Line
		}
	}
	return 0
}
