//go:build !amd64 && !arm64

package pause

// The pause task is built for x86_64 and aarch64 only (c/pause.c holds the
// system calls of those two). Building for another GOARCH stops here, with
// this identifier in the compiler's error, rather than at run time.
var binary = pauseTaskIsBuiltForAmd64AndArm64Only
