package cliflag

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"
)

// Help asked for goes to standard output; a usage error, with the usage,
// to standard error; a good parse writes nothing.
func TestParse(t *testing.T) {
	for _, tt := range []struct {
		args              []string
		wantErr           error
		wantOut, wantErrs string
	}{
		{[]string{"-h"}, flag.ErrHelp, "Usage: cmd", ""},
		{[]string{"-help"}, flag.ErrHelp, "Usage: cmd", ""},
		{[]string{"-nope"}, nil, "", "flag provided but not defined: -nope"},
		{[]string{"-n", "3"}, nil, "", ""},
	} {
		fs := flag.NewFlagSet("cmd", flag.ContinueOnError)
		fs.Int("n", 1, "a number")
		fs.Usage = func() { fmt.Fprintln(fs.Output(), "Usage: cmd [-n N]") }
		var out, errs bytes.Buffer
		err := Parse(fs, tt.args, &out, &errs)
		if tt.wantErr != nil && !errors.Is(err, tt.wantErr) || tt.wantErr == nil && tt.wantErrs == "" && err != nil {
			t.Errorf("%v: err %v", tt.args, err)
		}
		if tt.wantOut == "" && out.Len() > 0 || !strings.Contains(out.String(), tt.wantOut) {
			t.Errorf("%v: stdout %q, want %q", tt.args, out.String(), tt.wantOut)
		}
		if tt.wantErrs == "" && errs.Len() > 0 || !strings.Contains(errs.String(), tt.wantErrs) {
			t.Errorf("%v: stderr %q, want %q", tt.args, errs.String(), tt.wantErrs)
		}
		if fs.Output() != &errs {
			t.Errorf("%v: the flag set writes elsewhere than stderr after the parse", tt.args)
		}
	}
}
