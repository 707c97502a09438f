package pause

import _ "embed"

// binary is the pause task for aarch64, cross-built from c/pause.c by
// `make pause` and committed, so that `go build` and `go install` need no C
// compiler; `make check-pause` proves it is the build of its source.
//
//go:embed pause_arm64.elf
var binary []byte
