package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryDeploySentinelHasAKind finds the exported sentinel errors of
// deploy/* (var ErrX = errors.New(...)) and checks that errorKinds names
// each one, so that none reaches people as an internal error by omission.
func TestEveryDeploySentinelHasAKind(t *testing.T) {
	wire, err := os.ReadFile("wire.go")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("deploy/*/*.go")
	found := 0
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		pkg := f.Name.Name
		if pkg == "catalog" {
			continue // commands maps the catalog's (it imports it)
		}
		for _, decl := range f.Decls {
			g, ok := decl.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				for _, name := range spec.(*ast.ValueSpec).Names {
					if !name.IsExported() || !strings.HasPrefix(name.Name, "Err") {
						continue
					}
					found++
					if ref := pkg + "." + name.Name; !strings.Contains(string(wire), "Err: "+ref+",") {
						t.Errorf("%s (%s) has no entry in errorKinds", ref, path)
					}
				}
			}
		}
	}
	if found == 0 {
		t.Fatal("no sentinel found under deploy/: the test looks in the wrong place")
	}
}
