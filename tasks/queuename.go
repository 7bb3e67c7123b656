package tasks

import (
	"errors"
	"strings"
	"unicode"
)

// CheckQueue checks the name of the asynq queue a worker serves or a
// producer queues in (ORDERWORKER_QUEUE, -queue): not empty, no space or
// control character at either end or within (" " is not unset: a queue
// so named would hold orders no worker of another spelling serves), at
// most 128 bytes. Its error says what is wrong, for the caller to name the
// setting.
func CheckQueue(name string) error {
	switch {
	case name == "":
		return errors.New("empty")
	case len(name) > 128:
		return errors.New("longer than 128 bytes")
	case strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return errors.New("holds a space or a control character")
	}
	return nil
}
