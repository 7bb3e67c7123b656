package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// enqueueRun is an enqueue command line as the Makefile and the README
// suggest it: `go run ./cmd/enqueue` and what follows on its line, up to a
// backquote or a comment.
var enqueueRun = regexp.MustCompile("go run \\./cmd/enqueue([^`#\\n]*)")

// Every enqueue command the Makefile and the README suggest names its
// input (a file, flags or a subcommand): enqueue without one reads
// standard input, and seems to hang. A file it names exists.
func TestSuggestedEnqueueCommandsNameTheirInput(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"Makefile", "README.md"} {
		b, err := os.ReadFile(filepath.Join(repoRoot, path))
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		for _, m := range enqueueRun.FindAllStringSubmatch(string(b), -1) {
			found++
			var args []string
			for _, f := range strings.Fields(m[1]) {
				if !strings.HasPrefix(f, "-") || f == "-" {
					args = append(args, f)
				}
			}
			if len(args) == 0 && !strings.Contains(m[1], "-provider") {
				t.Errorf("%s: %q reads standard input: name a file, flags or a subcommand", path, strings.TrimSpace(m[0]))
				continue
			}
			if a := args[0]; strings.HasSuffix(a, ".json") || strings.HasSuffix(a, ".jsonl") {
				if _, err := os.Stat(filepath.Join(repoRoot, a)); err != nil {
					t.Errorf("%s: %q names %s: %v", path, strings.TrimSpace(m[0]), a, err)
				}
			}
		}
		if found == 0 {
			t.Errorf("%s suggests no enqueue command", path)
		}
	}
}
