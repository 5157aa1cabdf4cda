package config

import (
	"fmt"
	"strings"
)

// Error is one problem found in a config file.
type Error struct {
	File string // the file's name as given to Load or Parse
	Line int    // 1-based; 0 when the problem has no single place in the file
	Msg  string // what is wrong, naming the key, e.g. "sip.listen[0]: ..."
}

// String formats e as "FILE:LINE: MSG", leaving out the parts e lacks.
func (e Error) String() string {
	switch {
	case e.File == "":
		return e.Msg
	case e.Line <= 0:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	default:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
}

// Errors is every problem found in a config file, in line order. Load and
// Parse return it as a *Errors.
type Errors []Error

// Error returns one "FILE:LINE: MSG" line per problem.
func (e *Errors) Error() string {
	lines := make([]string, len(*e))
	for i, err := range *e {
		lines[i] = err.String()
	}
	return strings.Join(lines, "\n")
}
