package pod

import (
	"os"
	"testing"
)

// TestMain keeps the tests' record copies out of the host's directory,
// where a real `shim delete` would find them.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pause-orphans-")
	if err != nil {
		panic(err)
	}
	orphanDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
