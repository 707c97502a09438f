package pause

import _ "embed"

// binary is the pause task for x86_64, built from c/pause.c by `make pause`
// and committed, so that `go build` and `go install` need no C compiler;
// `make check-pause` proves it is the build of its source.
//
//go:embed pause_amd64.elf
var binary []byte
