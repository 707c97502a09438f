package shim

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/containerd/containerd/api/types"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/options"
)

// Info is `-info`: runc.v2's answer (the runc's version and features), for
// the runc the handler's options name. containerd's CRI asks it of every
// handler at start, with the handler's options on stdin: a table arrives as
// runtimeoptions, which runc.v2's own -info cannot read, and a handler it
// cannot introspect loses user namespaces and recursive read-only mounts in
// CRI. The table is read as `start` reads it and handed on as runc options.
func (m *Manager) Info(ctx context.Context, optionsR io.Reader) (*types.RuntimeInfo, error) {
	data, err := io.ReadAll(optionsR)
	if err != nil {
		return nil, err
	}
	var a anypb.Any
	if len(data) > 0 {
		if err := proto.Unmarshal(data, &a); err != nil {
			return nil, fmt.Errorf("runtime options: %v: %w", err, errdefs.ErrInvalidArgument)
		}
	}
	if a.MessageIs(&runtimeoptions.Options{}) {
		var table runtimeoptions.Options
		if err := a.UnmarshalTo(&table); err != nil {
			return nil, fmt.Errorf("runtime options: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		opts, err := options.FromRuntimeOptions(&table)
		if err != nil {
			return nil, err
		}
		runc, err := anypb.New(opts.Runc())
		if err != nil {
			return nil, err
		}
		if data, err = proto.Marshal(runc); err != nil {
			return nil, err
		}
	}
	return m.Shim.Info(ctx, bytes.NewReader(data))
}
