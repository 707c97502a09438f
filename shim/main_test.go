package shim

import (
	"testing"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/podtest"
)

func TestMain(m *testing.M) { podtest.Main(m) }
