package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
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

// TestPackageRules checks the house rules with go list: no deploy/* package
// depends on another (but deploy/stack on deploy/docker), bot imports no
// deploy/* package, commands depends on no adapter, and only main imports
// the packages that compose the adapters.
func TestPackageRules(t *testing.T) {
	const mod = "github.com/toolbox-collective/toolbox/"
	list := func(args ...string) map[string][]string {
		out, err := exec.Command("go", append([]string{"list", "-f", `{{.ImportPath}} {{join .Imports " "}}`}, args...)...).Output()
		if err != nil {
			t.Fatalf("go list %v: %v", args, err)
		}
		pkgs := map[string][]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(line)
			var own []string
			for _, imp := range f[1:] {
				if rel, ok := strings.CutPrefix(imp, mod); ok {
					own = append(own, rel)
				}
			}
			if rel, ok := strings.CutPrefix(f[0], mod); ok { // the project's packages only
				pkgs[rel] = own
			}
		}
		return pkgs
	}
	deps := func(pkg string) []string {
		var own []string
		for p := range list("-deps", mod+pkg) {
			if p != pkg {
				own = append(own, p)
			}
		}
		return own
	}
	for _, pkg := range []string{"deploy/catalog", "deploy/docker", "deploy/dockerguard", "deploy/proxy", "deploy/stack", "deploy/backup"} {
		for _, d := range deps(pkg) {
			if strings.HasPrefix(d, "deploy/") && !(pkg == "deploy/stack" && d == "deploy/docker") {
				t.Errorf("%s depends on %s", pkg, d)
			}
		}
	}
	for _, pkg := range []string{"deploy/backup", "deploy/docker", "deploy/dockerguard", "schedule", "state", "internal/names"} {
		if d := deps(pkg); len(d) > 0 {
			t.Errorf("%s, which imports nothing of the project, depends on %v", pkg, d)
		}
	}
	for _, d := range deps("commands") {
		if d == "deploy/docker" || d == "deploy/proxy" || d == "deploy/stack" || d == "deploy/backup" || d == "engine" || d == "host" || d == "control" || d == "bot" {
			t.Errorf("commands depends on %s", d)
		}
	}
	direct := list("./...")
	for _, imp := range direct["bot"] {
		if strings.HasPrefix(imp, "deploy/") {
			t.Errorf("bot imports %s", imp)
		}
	}
	for pkg, imps := range direct {
		if pkg == "" || pkg == "github.com/toolbox-collective/toolbox" {
			continue // main
		}
		for _, imp := range imps {
			if (imp == "engine" || imp == "host" || imp == "control") && !strings.HasPrefix(pkg, imp) && !strings.HasPrefix(pkg, "e2e") {
				t.Errorf("%s imports %s, which only main wires", pkg, imp)
			}
		}
	}
}
