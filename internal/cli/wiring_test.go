package cli

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// cli holds flags, formats and exit codes, never wiring (docs/DESIGN.md):
// what builds an engine, opens a store or a listener lives in daemon. This
// test fails when a call that does so comes back into cli.
func TestCLIBuildsNoEngineStoreOrListener(t *testing.T) {
	t.Parallel()
	forbidden := map[string]bool{
		"store.Open": true, "store.OpenExisting": true, "store.Backup": true,
		"detect.New": true, "policy.Compile": true, "gate.New": true, "hold.New": true,
		"daemon.NewHolder": true, "daemon.EngineFrom": true, "daemon.LoadConfig": true,
		"config.Load": true, "config.Parse": true, "config.Default": true,
		"net.Listen": true, "net.ListenPacket": true, "milter.ParseListen": true,
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); ok && forbidden[pkg.Name+"."+sel.Sel.Name] {
				t.Errorf("%s: %s.%s in cli: wiring belongs in internal/daemon", fset.Position(call.Pos()), pkg.Name, sel.Sel.Name)
			}
			return true
		})
	}
}
