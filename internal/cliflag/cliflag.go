// Package cliflag parses a command's flags with its help on standard
// output when asked for (-h, -help), as a user piping it to grep or less
// expects, and on standard error with a usage error.
package cliflag

import (
	"bytes"
	"errors"
	"flag"
	"io"
)

// Parse parses args with fs. What fs writes while parsing (its usage, or
// an error and its usage) goes to stdout when the parse asked for help
// (flag.ErrHelp), else to stderr; fs writes to stderr from then on. fs's
// Usage must write to fs.Output().
func Parse(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	to := stderr
	if errors.Is(err, flag.ErrHelp) {
		to = stdout
	}
	_, _ = to.Write(buf.Bytes())
	return err
}
